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
