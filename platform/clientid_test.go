package platform_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/imtest"
)

// TestAnyClientID: a CONNECT is accepted with any client id, the session
// being keyed by user and id, so one user's id never reaches another's
// session; an empty id is assigned one (MQTT 5: told in the CONNACK).
func TestAnyClientID(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	s.User("bob")
	bob := s.MustConnect("bob", imtest.ClientOpts{}) // bob:dev, persistent
	cases := []struct {
		name, id string
		version  byte
		clean    bool
		code     byte
		assigned bool   // MQTT 5 CONNACK carries an Assigned Client Identifier
		reason   string // in the MQTT 5 CONNACK's reason string
	}{
		{"MQTT.js default id", "mqttjs_1f2e3d4c", 5, true, 0, false, ""},
		{"mosquitto v5 without -i", "", 5, true, 0, true, ""},
		{"3.1.1 empty id, clean session", "", 4, true, 0, false, ""},
		{"3.1.1 empty id, persistent session: identifier rejected", "", 4, false, 2, false, ""},
		{"someone else's id is alice's own session", "bob:dev", 5, false, 0, false, ""},
		{"topic characters in the id", "a/b+#c d", 4, false, 0, false, ""},
		{"mochi's reserved inline id", "inline", 5, true, 0, false, ""},
		{"over 256 bytes", strings.Repeat("x", 257), 5, true, 0x85, false, "at most 256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cp := packets.ConnectParams{ClientIdentifier: c.id, Username: []byte("alice"), UsernameFlag: true,
				Password: []byte(imtest.Password), PasswordFlag: true}
			r, code, err := imtest.DialRawPersistent(s.MQTT, c.version, cp)
			if c.clean {
				r, code, err = imtest.DialRawConnect(s.MQTT, c.version, cp)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if code != c.code {
				t.Fatalf("CONNACK %#x (%q), want %#x", code, r.Connack.Properties.ReasonString, c.code)
			}
			if got := r.Connack.Properties.AssignedClientID; (got != "") != c.assigned {
				t.Errorf("assigned client id %q, want one: %v", got, c.assigned)
			}
			if !strings.Contains(r.Connack.Properties.ReasonString, c.reason) {
				t.Errorf("reason string %q, want %q in it", r.Connack.Properties.ReasonString, c.reason)
			}
			if code != 0 {
				return
			}
			// The session is alice's: she publishes as herself and bob gets it.
			if rc, err := r.Client().Publish("im/u/bob/dm/alice", []byte(c.name)); err != nil || rc != 0 {
				t.Fatalf("publish: %#x %v", rc, err)
			}
		})
	}
	msgs := bob.WaitFor("im/u/bob/dm/alice", 6)
	if len(msgs) != 6 {
		t.Fatalf("bob got %d messages, want 6", len(msgs))
	}
	if !bob.IsConnectionOpen() {
		t.Fatal("bob's session was taken over by alice's client id \"bob:dev\"")
	}
}

// TestMosquittoWithoutClientID: mosquitto_sub and mosquitto_pub without -i
// (the way people debug) connect, subscribe and publish, MQTT 3.1.1 and 5.
func TestMosquittoWithoutClientID(t *testing.T) {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: scripts/test installs mosquitto-clients (apt-get)", tool)
		}
	}
	s := imtest.Start(t, "")
	s.User("alice")
	s.User("bob")
	port := s.MQTTAddr.String()[strings.LastIndex(s.MQTTAddr.String(), ":")+1:]
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out imtest.Buffer
			sub := exec.CommandContext(ctx, "mosquitto_sub", "-V", v, "-h", "127.0.0.1", "-p", port,
				"-u", "bob", "-P", imtest.Password, "-t", "im/u/bob/#", "-C", "1", "-W", "15")
			sub.Stdout, sub.Stderr = &out, &out
			if err := sub.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- sub.Wait() }()
			// mosquitto_sub says nothing when it has subscribed (its stdout is
			// not a terminal, so even -d output is buffered): publish until it
			// has printed a message and exited.
			var subErr error
			imtest.Eventually(t, "mosquitto_sub got a message", 15*time.Second, func() bool {
				select {
				case subErr = <-done:
					return true
				default:
				}
				pub := exec.CommandContext(ctx, "mosquitto_pub", "-V", v, "-h", "127.0.0.1", "-p", port,
					"-u", "alice", "-P", imtest.Password, "-t", "im/u/bob/dm/alice", "-q", "1", "-m", "hello from "+v)
				if b, err := pub.CombinedOutput(); err != nil {
					t.Fatalf("mosquitto_pub: %v: %s", err, b)
				}
				return false
			})
			if subErr != nil {
				t.Fatalf("mosquitto_sub: %v: %s", subErr, out.String())
			}
			if !strings.Contains(out.String(), "hello from "+v) {
				t.Fatalf("mosquitto_sub printed %q", out.String())
			}
		})
	}
}

// TestConnackAdvertisesLimits: an MQTT 5 CONNACK tells the client the
// broker's maximum packet size and topic alias maximum (mochi enforces the
// one and accepts the other without saying so); a 3.1.1 CONNACK has no
// properties.
func TestConnackAdvertisesLimits(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	r := s.MustDialRaw5("", "alice", imtest.Password)
	if p := r.Connack.Properties; p.MaximumPacketSize != 256<<10 || p.TopicAliasMaximum != 64 {
		t.Fatalf("CONNACK Maximum Packet Size %d, Topic Alias Maximum %d; want %d and 64", p.MaximumPacketSize, p.TopicAliasMaximum, 256<<10)
	}
}
