package platform_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/internal/imtest"
)

// deviceRules: each device owns its telemetry subtree; people may read all
// telemetry; everyone may use the bots/ namespace.
var deviceRules = []acl.Rule{
	{Role: "device", Access: "readwrite", Topics: []string{"devices/%u/#"}},
	{Role: "person", Access: "read", Topics: []string{"devices/+/telemetry"}},
	{User: "*", Access: "deny", Topics: []string{"bots/secret/#"}},
	{User: "*", Access: "readwrite", Topics: []string{"bots/#"}},
}

// newDevice creates a device account owned by owner and returns an API key.
func newDevice(t *testing.T, s *imtest.Server, ownerTok, id, clientID string) (key, keyID string) {
	t.Helper()
	s.MustAPI(201, "POST", "/api/v1/devices", ownerTok, map[string]string{"id": id}, nil)
	var k struct{ Key, ID string }
	s.MustAPI(201, "POST", "/api/v1/devices/"+id+"/keys", ownerTok, map[string]string{"client_id": clientID}, &k)
	if !strings.HasPrefix(k.Key, "mqk_") {
		t.Fatalf("key %q", k.Key)
	}
	return k.Key, k.ID
}

func TestOperatorRulesForDevices(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Rules = deviceRules })
	tok := s.User("alice")
	k1, _ := newDevice(t, s, tok, "sensor-1", "")
	k2, _ := newDevice(t, s, tok, "sensor-2", "")

	s1 := s.MustDialRaw5("sensor-1:a", "sensor-1", k1)
	s2, code, _ := imtest.DialRaw5(s.MQTT, "sensor-2:a", "sensor-2", k2)
	if code != 0 {
		t.Fatalf("sensor-2 connect: %#x", code)
	}
	defer s2.Close()

	cases := []struct {
		who      *imtest.Raw5
		op       string // pub or sub
		topic    string
		granted  bool
		describe string
	}{
		{s1, "pub", "devices/sensor-1/telemetry", true, "own subtree (%u)"},
		{s1, "pub", "devices/sensor-1/status/x", true, "own subtree, deeper"},
		{s1, "pub", "devices/sensor-2/telemetry", false, "foreign subtree"},
		{s1, "sub", "devices/sensor-2/#", false, "read foreign subtree"},
		{s1, "sub", "devices/+/telemetry", false, "read everyone's telemetry (people only)"},
		{s1, "sub", "devices/sensor-1/#", true, "read own subtree"},
		{s1, "pub", "bots/echo", true, "shared namespace"},
		{s1, "pub", "bots/secret/x", false, "deny rule before the allow"},
		{s1, "sub", "bots/#", true, "filter overlapping a denied subtree (what is denied is not delivered on it)"},
		{s1, "pub", "elsewhere/x", false, "no rule: deny by default"},
		{s1, "sub", "#", false, "everything"},
		{s1, "sub", "$SYS/#", false, "$SYS"},
	}
	for _, c := range cases {
		t.Run(c.describe, func(t *testing.T) {
			var got bool
			if c.op == "pub" {
				rc, err := c.who.Publish(c.topic, []byte("21.5"))
				if err != nil {
					t.Fatal(err)
				}
				got = rc < 0x80
			} else {
				rcs, err := c.who.Subscribe(c.topic)
				if err != nil {
					t.Fatal(err)
				}
				got = rcs[0] < 0x80
			}
			if got != c.granted {
				t.Fatalf("%s %s: granted=%v, want %v", c.op, c.topic, got, c.granted)
			}
		})
	}
	// A person reads all telemetry; the device's own im/ inbox works as for anyone.
	alice := s.MustConnect("alice", imtest.ClientOpts{NoSub: true})
	recv := make(chan string, 4)
	alice.Subscribe("devices/+/telemetry", 1, func(_ pahoClient, m pahoMessage) { recv <- m.Topic() + " " + string(m.Payload()) }).Wait()
	s2.Publish("devices/sensor-2/telemetry", []byte("19.0"))
	select {
	case got := <-recv:
		if got != "devices/sensor-2/telemetry 19.0" {
			t.Fatalf("got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("telemetry did not reach a person")
	}
}

// TestRulesCannotOpenIM: a rule naming im/ or $SYS is refused at load; a
// rule starting with a wildcard is accepted but opens nothing of im/, which
// is decided before the rules (TestConformanceWildcardFiltersInAnOpenedNamespace
// shows it live).
func TestRulesCannotOpenIM(t *testing.T) {
	for _, topic := range []string{"im/u/%u/#", "im/u/bob/#", "im/#", "$SYS/#"} {
		if _, err := acl.CompileRules([]acl.Rule{{Access: "read", Topics: []string{topic}}}); err == nil {
			t.Errorf("rule on %q accepted", topic)
		}
	}
	for _, topic := range []string{"+/u/bob/#", "#"} {
		rules, err := acl.CompileRules([]acl.Rule{{User: "alice", Access: "readwrite", Topics: []string{topic}}})
		if err != nil {
			t.Fatalf("rule on %q: %v", topic, err)
		}
		p := &acl.Policy{}
		p.SetRules(rules)
		for _, im := range []string{"im/u/bob/#", "im/u/bob/dm/carol", "im/u/+/#"} {
			if p.CanSubscribe("alice", "alice:dev", im) {
				t.Errorf("rule %q lets alice read %s", topic, im)
			}
		}
		if p.CanWrite("alice", "alice:dev", "im/u/bob/dm/alice") {
			t.Errorf("rule %q lets alice write im/ directly", topic)
		}
	}
	if _, err := acl.CompileRules([]acl.Rule{{Access: "sometimes", Topics: []string{"a/#"}}}); err == nil {
		t.Error("bad access accepted")
	}
}

func TestRevokingKeyDropsDeviceAndRefusesReconnect(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Rules = deviceRules })
	tok := s.User("alice")
	s.User("mallory")
	key, keyID := newDevice(t, s, tok, "cam-1", "cam-1:main")

	// The key is bound to its client id.
	if _, code, _ := imtest.DialRaw5(s.MQTT, "cam-1:other", "cam-1", key); code != 0x86 {
		t.Fatalf("bound key with another client id: %#x", code)
	}
	dev, err := s.Connect("cam-1", imtest.ClientOpts{Device: "main", Password: key})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Disconnect(0)
	// Only the owner manages the device's keys.
	s.MustAPI(403, "DELETE", "/api/v1/devices/cam-1/keys/"+keyID, s.Login("mallory"), nil, nil)
	var keys struct{ Keys []struct{ ID string } }
	s.MustAPI(200, "GET", "/api/v1/devices/cam-1/keys", tok, nil, &keys)
	if len(keys.Keys) != 1 || keys.Keys[0].ID != keyID {
		t.Fatalf("keys %+v", keys)
	}

	s.MustAPI(200, "DELETE", "/api/v1/devices/cam-1/keys/"+keyID, tok, nil, nil)
	imtest.Eventually(t, "revoked device disconnected", 5*time.Second, func() bool { return !dev.IsConnectionOpen() })
	if _, code, _ := imtest.DialRaw5(s.MQTT, "cam-1:main", "cam-1", key); code != 0x86 {
		t.Fatalf("revoked key connect: %#x", code)
	}
}

func TestDeviceInChat(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Rules = deviceRules })
	tok := s.User("alice")
	key, _ := newDevice(t, s, tok, "boiler", "")
	s.MustAPI(201, "POST", "/api/v1/groups", tok, map[string]any{"id": "home", "members": []string{"boiler"}}, nil)
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	boiler := s.MustConnect("boiler", imtest.ClientOpts{Password: key})
	// Presence marks it as a device.
	imtest.Eventually(t, "device presence", 5*time.Second, func() bool {
		for _, m := range alice.Messages("im/presence/boiler") {
			if strings.Contains(string(m.Payload), `"device":true`) && strings.Contains(string(m.Payload), `"online"`) {
				return true
			}
		}
		return false
	})
	boiler.Publish("im/g/home", 1, "pressure low")
	alice.WaitFor("im/u/alice/g/home", 1)
	alice.Publish("im/u/boiler/dm/alice", 1, "status?")
	got := boiler.WaitFor("im/u/boiler/dm/alice", 1)
	if !strings.Contains(string(got[0].Payload), "status?") {
		t.Fatalf("device got %q", got[0].Payload)
	}
	var pr struct {
		Presence map[string]struct{ Device bool }
	}
	s.MustAPI(200, "GET", "/api/v1/presence?users=boiler,alice", tok, nil, &pr)
	if !pr.Presence["boiler"].Device || pr.Presence["alice"].Device {
		t.Fatalf("presence device flags %+v", pr)
	}
	var u struct{ Kind string }
	s.MustAPI(200, "GET", "/api/v1/users/boiler", tok, nil, &u)
	if u.Kind != "device" {
		t.Fatalf("kind %q", u.Kind)
	}
	// A device cannot log in with a password nor manage devices.
	var out struct{ Error struct{ Code string } }
	code, _ := s.API("POST", "/api/v1/login", "", map[string]string{"user": "boiler", "password": key}, &out)
	if code != 401 {
		t.Fatalf("device password login: %d", code)
	}
}
