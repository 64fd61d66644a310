package platform_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// TestAttackMatrix: every refused publish reaches nobody, stores nothing,
// tells the sender why on im/u/{me}/error (MQTT 3.1.1) or in the PUBACK
// reason code (MQTT 5), and leaves the connection usable.
func TestAttackMatrix(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.BodyLimit = 1024 })
	tok := s.User("alice")
	btok := s.User("bob")
	s.User("carol")
	// alice is bob's contact: her DMs raise no message request, so bob's inbox holds only what this test counts.
	s.MustAPI(200, "POST", "/api/v1/contacts", btok, map[string]string{"user": "alice"}, nil)
	s.MustAPI(201, "POST", "/api/v1/groups", btok, map[string]any{"id": "secret", "members": []string{"carol"}}, nil)

	alice := s.MustConnect("alice", imtest.ClientOpts{})
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	carol := s.MustConnect("carol", imtest.ClientOpts{})
	raw := s.MustDialRaw5("alice:v5", "alice", imtest.Password)

	cases := []struct {
		name, topic string
		payload     []byte
		code        string
		reason      byte
	}{
		{"spoofed sender", "im/u/bob/dm/carol", []byte("I am carol"), "forbidden", 0x87},
		{"non-member group post", "im/g/secret", []byte("let me in"), "forbidden", 0x87},
		{"server-only group inbox", "im/u/bob/g/secret", []byte("fake fan-out"), "forbidden", 0x87},
		{"server-only error topic", "im/u/bob/error", []byte(`{"code":"forbidden"}`), "forbidden", 0x87},
		{"someone else's presence", "im/presence/bob", []byte(`{"status":"away"}`), "forbidden", 0x87},
		{"oversize body", "im/u/bob/dm/alice", []byte(`{"body":"` + strings.Repeat("x", 2000) + `"}`), "too_large", 0x97},
		{"oversize plain text", "im/u/bob/dm/alice", []byte(strings.Repeat("y", 1025)), "too_large", 0x97},
		{"malformed JSON", "im/u/bob/dm/alice", []byte(`{"body":"unterminated`), "invalid", 0x99},
		{"body not a string", "im/u/bob/dm/alice", []byte(`{"body":42}`), "invalid", 0x99},
		{"invalid UTF-8", "im/u/bob/dm/alice", []byte{'h', 0xff, 0xfe, 'i'}, "invalid", 0x99},
		{"unknown recipient", "im/u/nobody/dm/alice", []byte("hello?"), "not_found", 0x90},
		{"unknown group", "im/g/nogroup", []byte("hello?"), "forbidden", 0x87},
		{"unknown im/ topic shape", "im/u/bob/whatever/alice", []byte("x"), "invalid", 0x99},
		{"malformed receipt", "im/u/bob/receipt/alice", []byte(`{"type":"seen","seq":-1}`), "invalid", 0x99},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			alice.Publish(c.topic, 1, c.payload)
			// alice's MQTT 5 device below is alice too, so each case
			// produces two notices here: one per publish.
			notes := alice.WaitFor("im/u/alice/error", 2*i+1)
			var n envelope.Notice
			if err := json.Unmarshal(notes[2*i].Payload, &n); err != nil {
				t.Fatalf("notice %q: %v", notes[2*i].Payload, err)
			}
			if string(n.Code) != c.code || n.Topic != c.topic || n.Detail == "" {
				t.Fatalf("notice %+v, want code %s for %s", n, c.code, c.topic)
			}
			reason, err := raw.Publish(c.topic, c.payload)
			if err != nil || reason != c.reason {
				t.Fatalf("MQTT 5 PUBACK reason %#x (err %v), want %#x", reason, err, c.reason)
			}
			alice.WaitFor("im/u/alice/error", 2*i+2)
		})
	}

	// The 3.1.1 connection survived every refusal and still works.
	alice.Publish("im/u/bob/dm/alice", 1, "still here")
	got := bob.WaitFor("im/u/bob/", 1)
	if len(got) != 1 || !strings.Contains(string(got[0].Payload), "still here") {
		t.Fatalf("bob received %d messages; first %q", len(got), got[0].Payload)
	}
	if n := len(carol.Messages("im/u/carol/")); n != 0 {
		t.Fatalf("carol received %d messages from refused publishes", n)
	}
	// Nothing refused was stored: bob's feed holds only the one good message.
	var sync struct{ Messages []envelope.Message }
	s.MustAPI(200, "GET", "/api/v1/sync", s.Login("bob"), nil, &sync)
	if len(sync.Messages) != 1 || sync.Messages[0].Body != "still here" {
		t.Fatalf("bob's feed: %+v", sync.Messages)
	}
	s.MustAPI(200, "GET", "/api/v1/sync", s.Login("carol"), nil, &sync)
	if len(sync.Messages) != 0 {
		t.Fatalf("carol's feed: %+v", sync.Messages)
	}
	var page struct{ Messages []envelope.Message }
	s.MustAPI(200, "GET", "/api/v1/history/dm/carol", tok, nil, &page)
	if len(page.Messages) != 0 {
		t.Fatalf("alice-carol history: %+v", page.Messages)
	}
}

func TestSubscriptionsToOtherInboxesRefused(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	s.User("bob")
	raw := s.MustDialRaw5("alice:v5", "alice", imtest.Password)
	filters := []string{"im/u/+/dm/#", "im/u/bob/#", "im/#", "#", "+/u/bob/#", "$share/x/im/u/bob/#", "$SYS/#", "im/g/+", "im/u/#", "other/topic"}
	codes, err := raw.Subscribe(filters...)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range filters {
		if codes[i] < 0x80 {
			t.Errorf("subscription %q granted (code %#x)", f, codes[i])
		}
	}
	ok, err := raw.Subscribe("im/u/alice/#", "$share/mine/im/u/alice/#", "im/presence/+", "im/presence/bob")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range ok {
		if c >= 0x80 {
			t.Errorf("own subscription %d refused: %#x", i, c)
		}
	}
}

func TestConnectRefusals(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	bobTok := s.User("bob")
	bob := s.MustConnect("bob", imtest.ClientOpts{})

	cases := []struct {
		name, clientID, user, password string
		code                           byte
	}{
		// Client ids are all accepted, keyed by user: TestAnyClientID.
		{"client id over 256 bytes", strings.Repeat("a", 257), "alice", imtest.Password, 0x85},
		{"wrong password", "alice:x", "alice", "wrong password!", 0x86},
		{"someone else's token", "alice:x", "alice", bobTok, 0x86},
		{"unknown user", "zed:x", "zed", imtest.Password, 0x86},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, code, err := imtest.DialRaw5(s.MQTT, c.clientID, c.user, c.password)
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			if code != c.code {
				t.Fatalf("CONNACK %#x, want %#x", code, c.code)
			}
		})
	}
	// MQTT 3.1.1 gets the return code of the same reason (mochi alone sent
	// 5 not authorized for bad credentials).
	for _, c := range cases {
		if r, code, err := imtest.DialRaw(s.MQTT, 4, c.clientID, c.user, c.password); err != nil {
			t.Fatalf("3.1.1 %s: %v", c.name, err)
		} else if r.Close(); code != map[byte]byte{0x85: 2, 0x86: 4}[c.code] {
			t.Fatalf("3.1.1 %s: return code %d", c.name, code)
		}
	}
	// A token works as the MQTT password, and bob's session was never taken over.
	r, code, err := imtest.DialRaw5(s.MQTT, "alice:tok", "alice", s.Login("alice"))
	if err != nil || code != 0 {
		t.Fatalf("token connect: %#x %v", code, err)
	}
	r.Close()
	if !bob.IsConnectionOpen() {
		t.Fatal("bob was disconnected by a takeover attempt")
	}
}

func TestWebSocketOrigin(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.AllowedOrigins = []string{"https://chat.example"} })
	dial := func(origin string) (int, error) {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		c, resp, err := d.Dial(s.WS, h)
		if c != nil {
			c.Close()
		}
		if resp == nil {
			return 0, err
		}
		return resp.StatusCode, nil
	}
	for _, c := range []struct {
		origin string
		want   int
	}{
		{"https://evil.example", 403},
		{"null", 403},
		{"https://chat.example", 101},
		{"http://" + strings.TrimPrefix(s.HTTP, "http://"), 101},
		{"", 101},
	} {
		if got, err := dial(c.origin); got != c.want {
			t.Errorf("origin %q: status %d (%v), want %d", c.origin, got, err, c.want)
		}
	}
}
