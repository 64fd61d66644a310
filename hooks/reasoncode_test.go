package hooks

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/internal/reasoncode"
)

// TestRefusalCodesAllowed checks every reason code a refused publish can be
// answered with against the spec's PUBACK and PUBREC lists (3.4.2.1,
// 3.5.2.1): MQTT.js drops a connection's acknowledgements after one code
// outside them.
func TestRefusalCodesAllowed(t *testing.T) {
	for code, rc := range refusal {
		if !reasoncode.Puback.Allows(rc.Code) || !reasoncode.Pubrec.Allows(rc.Code) {
			t.Errorf("%s is refused with %#x (%s), which a PUBACK/PUBREC may not carry", code, rc.Code, rc.Reason)
		}
	}
	if got := refusal[imerr.TooLarge]; got.Code != packets.ErrQuotaExceeded.Code {
		t.Errorf("too_large is refused with %#x, want 0x97", got.Code)
	}
}

// TestConnackCodesAllowed checks the codes a refused CONNECT is answered
// with, for both protocol versions, against the spec's CONNACK lists
// (MQTT 5 3.2.2.2, MQTT 3.1.1 3.2.2.3).
func TestConnackCodesAllowed(t *testing.T) {
	for _, r := range connectRefusals {
		if !reasoncode.Connack.Allows(r.v5.Code) {
			t.Errorf("%s: MQTT 5 CONNACK %#x is not allowed", r.why, r.v5.Code)
		}
		if !reasoncode.Connack3.Allows(r.v3.Code) {
			t.Errorf("%s: MQTT 3.1.1 CONNACK %#x is not allowed", r.why, r.v3.Code)
		}
	}
}

// TestSessionKey: any client id gives a key of its own user; the older
// "{user}:{device}" form keeps its key; nothing one user sends is a key of
// another's.
func TestSessionKey(t *testing.T) {
	cases := []struct{ user, id, want string }{
		{"bob", "bob:phone", "bob:phone"},
		{"bob", "phone", "bob:phone"},
		{"bob", "alice:phone", "bob:alice:phone"},
		{"bob", "bob:a:b", "bob:a:b"},
		{"bob", "mqttjs_1f2e", "bob:mqttjs_1f2e"},
		{"bob", "a/b+#c d\x00", "bob:a%2Fb%2B%23c%20d%00"},
		{"bob", "inline", "bob:inline"},
	}
	for _, c := range cases {
		got := SessionKey(c.user, c.id)
		if got != c.want {
			t.Errorf("SessionKey(%q, %q) = %q, want %q", c.user, c.id, got, c.want)
		}
		if UserOf(got) != c.user {
			t.Errorf("UserOf(%q) = %q, want %q", got, UserOf(got), c.user)
		}
	}
}
