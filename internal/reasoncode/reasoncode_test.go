package reasoncode

import "testing"

// TestTables spot-checks the tables against the spec's text, including the
// code that started them: 0x95 Packet too large is a CONNACK and DISCONNECT
// code, never a PUBACK one.
func TestTables(t *testing.T) {
	cases := []struct {
		name string
		s    Set
		code byte
		want bool
	}{
		{"PUBACK quota exceeded", Puback, 0x97, true},
		{"PUBACK packet too large", Puback, 0x95, false},
		{"PUBACK no matching subscribers", Puback, 0x10, true},
		{"PUBREC packet too large", Pubrec, 0x95, false},
		{"CONNACK identifier not valid", Connack, 0x85, true},
		{"CONNACK session taken over", Connack, 0x8E, false},
		{"SUBACK topic filter invalid", Suback, 0x8F, true},
		{"UNSUBACK no subscription existed", Unsuback, 0x11, true},
		{"DISCONNECT packet too large", Disconnect, 0x95, true},
		{"DISCONNECT with will (client only)", Disconnect, 0x04, false},
		{"DISCONNECT receive maximum exceeded", Disconnect, 0x93, true},
		{"3.1.1 CONNACK identifier rejected", Connack3, 2, true},
		{"3.1.1 CONNACK unspecified", Connack3, 0x80, false},
	}
	for _, c := range cases {
		if got := c.s.Allows(c.code); got != c.want {
			t.Errorf("%s (%#x): allowed %v, want %v", c.name, c.code, got, c.want)
		}
	}
}
