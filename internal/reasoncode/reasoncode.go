// Package reasoncode holds, per MQTT control packet, the reason codes the
// MQTT specifications allow a server to send in it. Clients check them:
// MQTT.js, for one, rejects a PUBACK whose code is not in the spec's list
// ("Invalid puback reason code"), so the publish never resolves and nothing
// after it on that connection is acknowledged. Every code the server sends
// is checked against these tables by tests in the packages that send them.
package reasoncode

// Set is the reason codes one packet type allows.
type Set map[byte]bool

// Allows reports whether code may be sent in the packet.
func (s Set) Allows(code byte) bool { return s[code] }

func set(codes ...byte) Set {
	s := make(Set, len(codes))
	for _, c := range codes {
		s[c] = true
	}
	return s
}

// MQTT 5 (OASIS mqtt-v5.0-os) reason codes per packet, as sent by a server.
var (
	// Connack is spec 3.2.2.2.
	Connack = set(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
		0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
	// Puback is spec 3.4.2.1.
	Puback = set(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
	// Pubrec is spec 3.5.2.1 (the same list as PUBACK).
	Pubrec = set(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
	// Suback is spec 3.9.3.
	Suback = set(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
	// Unsuback is spec 3.11.3.
	Unsuback = set(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	// Disconnect is spec 3.14.2.1 without 0x04 Disconnect with Will
	// Message, which only a client sends.
	Disconnect = set(0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F,
		0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2)
)

// MQTT 3.1.1 (OASIS mqtt-v3.1.1-os) return codes.
var (
	// Connack3 is spec 3.2.2.3: 0 accepted, 1 unacceptable protocol
	// version, 2 identifier rejected, 3 server unavailable, 4 bad user
	// name or password, 5 not authorized.
	Connack3 = set(0, 1, 2, 3, 4, 5)
	// Suback3 is spec 3.9.3: granted QoS 0-2, or 0x80 failure.
	Suback3 = set(0x00, 0x01, 0x02, 0x80)
)
