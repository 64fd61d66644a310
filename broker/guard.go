package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrMalformed is the read error of a connection that sent a packet the
// broker refuses to hand to mochi.
var ErrMalformed = errors.New("broker: malformed packet")

// guardReadBuffer is the guard's read buffer per connection; a packet larger
// than it is read straight into its own buffer.
const guardReadBuffer = 2048

// packetGuard sits between a client's socket and mochi's reader. It frames
// the byte stream into MQTT control packets and lets mochi read only packets
// that mochi's own decoder has already decoded once, under recover.
//
// mochi decodes each packet on the connection's read goroutine and recovers
// no panic there, so a packet that trips a decoder bug exits the whole
// process (v2.7.9: an MQTT 5 SUBSCRIBE whose last filter has no options byte,
// docs/upstream/mochi-subscribe-decode.md). Decoding is deterministic: mochi
// decodes the same bytes with the same protocol version after the guard, so
// whatever decoded here decodes there. A packet that does not decode (an
// error or a panic) or is larger than the broker's maximum ends the
// connection, as does a packet type only servers send: an MQTT 5 client gets
// DISCONNECT 0x81 Malformed Packet, 0x82 Protocol Error or 0x95 Packet too
// large with a reason string [MQTT-4.13.1-1], a 3.1.1 client a close
// [MQTT-4.8.0-1]. Nothing of that packet reaches mochi.
type packetGuard struct {
	net.Conn
	r       *bufio.Reader
	version byte   // protocol version from the CONNECT; 0 until then
	out     []byte // the current checked packet, not yet read by mochi
	buf     []byte // out's backing buffer, returned to bufPool when read
	err     error
	maxSize int
	refused func(reason string, err error) // reports a refusal (log, metrics)
}

func newPacketGuard(c net.Conn, maxSize int, refused func(string, error)) *packetGuard {
	return &packetGuard{Conn: c, r: bufio.NewReaderSize(c, guardReadBuffer), maxSize: maxSize, refused: refused}
}

// smallPacket is the size of the pooled packet buffers: most chat packets
// (publishes, acks, pings) fit, larger ones get a buffer of their own.
const smallPacket = 4096

var bufPool = sync.Pool{New: func() any { b := make([]byte, smallPacket); return &b }}

func (g *packetGuard) Read(p []byte) (int, error) {
	if len(g.out) == 0 {
		g.release()
		if g.err != nil {
			return 0, g.err
		}
		if err := g.next(); err != nil {
			g.err = err
			return 0, err
		}
	}
	n := copy(p, g.out)
	g.out = g.out[n:]
	if len(g.out) == 0 {
		g.release()
	}
	return n, nil
}

func (g *packetGuard) release() {
	if g.buf != nil && cap(g.buf) == smallPacket {
		b := g.buf[:smallPacket]
		bufPool.Put(&b)
	}
	g.buf, g.out = nil, nil
}

// next reads and checks one packet into g.out.
func (g *packetGuard) next() error {
	var hdr [5]byte
	b, err := g.r.ReadByte()
	if err != nil {
		return err
	}
	hdr[0] = b
	remaining, n := 0, 1
	for shift := 0; ; shift += 7 {
		if n == len(hdr) { // [MQTT-1.5.5]: at most four length bytes
			return g.refuse(packets.ErrMalformedVariableByteInteger, "remaining length over four bytes")
		}
		c, err := g.r.ReadByte()
		if err != nil {
			return err
		}
		hdr[n] = c
		n++
		remaining |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
	}
	if n+remaining > g.maxSize {
		return g.refuse(packets.ErrPacketTooLarge, fmt.Sprintf("packet of %d bytes, maximum %d", n+remaining, g.maxSize))
	}
	size := n + remaining
	if size <= smallPacket {
		g.buf = (*bufPool.Get().(*[]byte))[:size]
	} else {
		g.buf = make([]byte, size)
	}
	copy(g.buf, hdr[:n])
	if _, err := io.ReadFull(g.r, g.buf[n:]); err != nil {
		g.release()
		return err
	}
	pk, err := decodePacket(g.version, hdr[0], remaining, g.buf[n:])
	if err != nil {
		g.release()
		code := packets.ErrMalformedPacket
		if errors.Is(err, errProtocol) {
			code = packets.ErrProtocolViolation
		}
		return g.refuse(code, err.Error())
	}
	if pk.FixedHeader.Type == packets.Connect && g.version == 0 {
		g.version = pk.ProtocolVersion
	}
	g.out = g.buf
	return nil
}

// refuse tells an MQTT 5 client why its connection ends (the write is
// queued; mochi's close flushes it) and returns the read error.
func (g *packetGuard) refuse(code packets.Code, why string) error {
	err := fmt.Errorf("%w: %s", ErrMalformed, why)
	if code == packets.ErrPacketTooLarge {
		err = fmt.Errorf("%w: %s", packets.ErrPacketTooLarge, why)
	}
	if g.version == 5 {
		pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode: code.Code, Properties: packets.Properties{ReasonString: truncate(why, 128)}}
		var b bytes.Buffer
		if pk.DisconnectEncode(&b) == nil {
			_, _ = g.Conn.Write(b.Bytes())
		}
	}
	if g.refused != nil {
		g.refused(code.Reason, err)
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// errProtocol marks a packet that decodes but no client may send.
var errProtocol = errors.New("protocol error")

// decodePacket decodes one packet body with mochi's codec, as mochi's
// Client.ReadPacket would for a client of protocol version v, and turns a
// decoder panic into an error.
func decodePacket(v byte, first byte, remaining int, body []byte) (pk packets.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("packet type %d does not decode (decoder panic: %v)", first>>4, r)
		}
	}()
	pk.ProtocolVersion = v
	if err := pk.FixedHeader.Decode(first); err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = remaining
	switch pk.FixedHeader.Type {
	case packets.Connect:
		if v != 0 {
			return pk, nil // a second CONNECT: mochi refuses it [MQTT-3.1.0-2]
		}
		err = pk.ConnectDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Connack, packets.Suback, packets.Unsuback, packets.Pingresp:
		// Server-to-client packets [MQTT-2.1.2]: from a client they are a
		// Protocol Error [MQTT-4.13.1-1].
		err = fmt.Errorf("%w: packet type %d is sent by servers only", errProtocol, pk.FixedHeader.Type)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Subscribe:
		err = pk.SubscribeDecode(body)
	case packets.Unsubscribe:
		err = pk.UnsubscribeDecode(body)
	case packets.Pingreq:
	case packets.Auth:
		err = pk.AuthDecode(body)
	default:
		err = fmt.Errorf("invalid packet type %d", pk.FixedHeader.Type)
	}
	if err == nil && v == 0 && pk.FixedHeader.Type != packets.Connect {
		err = fmt.Errorf("%w: first packet is not CONNECT", errProtocol) // [MQTT-3.1.0-1]
	}
	return pk, err
}
