package broker

import (
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// outboundFixes adjusts packets mochi writes to a client, where what it
// writes trips clients that follow the spec strictly:
//   - the acknowledgements of a publish (PUBACK, PUBREC, PUBREL, PUBCOMP)
//     carry no reason string: mochi sets one on every refusal, the reason
//     code's own name ("not authorized"), which tells nothing the code does
//     not (the refusal's detail goes to the error notice on
//     im/u/{me}/error), and some clients do not parse properties on acks
//     (the Paho interoperability suite's own client takes a PUBACK of at
//     most 4 bytes);
//   - after a DISCONNECT that answers what the client sent (lingerAfter:
//     Receive Maximum exceeded 0x93, Topic Alias invalid 0x94, ...), the
//     connection closes gracefully: it
//     half-closes and reads away what the client still sends, within
//     lingerTime, instead of closing with unread data, which makes the
//     kernel answer the client's next packet (a PUBREL for one of the PUBRECs
//     before the DISCONNECT, say) with a reset, and the client may lose the
//     DISCONNECT and its reason code before it reads them.
//     Not after a takeover (0x8E) or a shutdown: the old connection is
//     closed on the new one's CONNECT path, which must not wait.
type outboundFixes struct{ mqtt.HookBase }

// lingerAfter are the DISCONNECT reason codes after which the client may
// still be sending: they answer its packets.
var lingerAfter = map[byte]bool{
	packets.ErrMalformedPacket.Code: true, packets.ErrProtocolViolation.Code: true,
	packets.ErrReceiveMaximum.Code: true, packets.ErrTopicAliasInvalid.Code: true,
	packets.ErrPacketTooLarge.Code: true,
}

func (h *outboundFixes) ID() string           { return "mqim-outbound" }
func (h *outboundFixes) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (h *outboundFixes) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		pk.Properties.ReasonString = ""
	case packets.Disconnect:
		if lingerAfter[pk.ReasonCode] {
			if bc := boundedOf(cl.Net.Conn); bc != nil {
				bc.lingerOnClose()
			}
		}
	}
	return pk
}

// boundedOf finds the boundedConn under a client's connection (TCP and
// WebSocket listeners both wrap one), nil if there is none.
func boundedOf(c net.Conn) *boundedConn {
	for c != nil {
		switch v := c.(type) {
		case *boundedConn:
			return v
		case *attachConn:
			c = v.Conn
		case *packetGuard:
			c = v.Conn
		default:
			return nil
		}
	}
	return nil
}
