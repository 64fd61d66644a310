package broker

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/hooks"
	"github.com/mqim/mqim/imerr"
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
//
// The guard also holds the topic limits, where mochi would otherwise pay for
// a hostile topic under its global topic-tree lock (O(levels^2) per
// subscribe: one 240 KB SUBSCRIBE of 120 000 levels held it for seconds):
// see limitTopics.
type packetGuard struct {
	net.Conn
	r       *guardReader
	version byte   // protocol version from the CONNECT; 0 until then
	id      string // client identifier from the CONNECT
	key     string // the session key mochi will know the client by (hooks.SessionKey); "" for an empty id
	cl      *mqtt.Client
	out     []byte // the current checked packet, not yet read by mochi
	buf     []byte // out's backing buffer, returned to bufPool when read
	err     error
	maxSize int
	lim     GuardLimits
	env     guardEnv
}

// GuardLimits bound what one client's packets may ask of the broker; a
// zero field is no limit.
type GuardLimits struct {
	TopicLevels   int // levels of a topic name or filter
	TopicBytes    int // bytes of a topic name or filter
	Subscriptions int // subscriptions one client holds
}

// guardEnv is what a guard needs of the broker around it.
type guardEnv interface {
	// refused reports a refusal (log line, metrics).
	refused(g *packetGuard, reason string, err error)
	// client is the mochi client reading from g, once it is connected.
	client(g *packetGuard) *mqtt.Client
	// notify tells cl's user why something on topic was refused.
	notify(cl *mqtt.Client, topic string, e *imerr.Error)
}

func newPacketGuard(c net.Conn, maxSize int, lim GuardLimits, env guardEnv) *packetGuard {
	return &packetGuard{Conn: c, r: newGuardReader(c), maxSize: maxSize, lim: lim, env: env}
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
		// Wait for the next packet here, not inside read: an idle
		// connection's goroutine is parked with this short call chain on
		// its stack instead of read's large frame (the decoded packet),
		// which lets the collector shrink the stack to half the size.
		if err := g.r.wait(); err != nil {
			g.err = err
			return 0, err
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

// next reads and checks packets until one is for mochi, into g.out.
func (g *packetGuard) next() error {
	for {
		pass, err := g.read()
		if err != nil || pass {
			return err
		}
	}
}

// read reads and checks one packet. It returns pass=false for a packet the
// guard answered itself, which mochi never sees.
func (g *packetGuard) read() (pass bool, err error) {
	var hdr [5]byte
	b, err := g.r.ReadByte()
	if err != nil {
		return false, err
	}
	hdr[0] = b
	remaining, n := 0, 1
	for shift := 0; ; shift += 7 {
		if n == len(hdr) { // [MQTT-1.5.5]: at most four length bytes
			return false, g.refuse(packets.ErrMalformedVariableByteInteger, "remaining length over four bytes")
		}
		c, err := g.r.ReadByte()
		if err != nil {
			return false, err
		}
		hdr[n] = c
		n++
		remaining |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
	}
	if n+remaining > g.maxSize {
		return false, g.refuse(packets.ErrPacketTooLarge, fmt.Sprintf("packet of %d bytes, maximum %d", n+remaining, g.maxSize))
	}
	size := n + remaining
	if size <= smallPacket {
		g.buf = (*bufPool.Get().(*[]byte))[:size]
	} else {
		g.buf = make([]byte, size)
	}
	copy(g.buf, hdr[:n])
	if err := g.r.ReadFull(g.buf[n:]); err != nil {
		g.release()
		return false, err
	}
	// Strings in pk alias g.buf (mochi's decoder does not copy), and g.buf
	// goes back to the pool on release: everything that uses pk comes first,
	// and whatever outlives this call is cloned.
	pk, err := decodePacket(g.version, hdr[0], remaining, g.buf[n:])
	if err != nil {
		code := packets.ErrMalformedPacket
		if errors.Is(err, errProtocol) {
			code = packets.ErrProtocolViolation
		}
		why := strings.Clone(err.Error())
		g.release()
		return false, g.refuse(code, why)
	}
	switch pk.FixedHeader.Type {
	case packets.Connect:
		if g.version == 0 {
			g.version, g.id = pk.ProtocolVersion, strings.Clone(pk.Connect.ClientIdentifier)
			if g.id != "" {
				g.key = hooks.SessionKey(string(pk.Connect.Username), g.id)
			} else if g.version < 5 && !pk.Connect.Clean {
				g.release()
				return false, g.refuseEmptyID()
			}
		}
	case packets.Publish:
		if why := g.topicProblem(pk.TopicName); why != "" {
			err := g.refusePublish(pk, why)
			g.release()
			return false, err
		}
	case packets.Subscribe, packets.Unsubscribe:
		if g.limitFilters(&pk) {
			b, err := encodeFilters(pk)
			g.release()
			if err != nil {
				return false, err
			}
			g.buf = b
		}
	}
	g.out = g.buf
	return true, nil
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
	if bc, ok := g.Conn.(*boundedConn); ok {
		bc.lingerOnClose() // the rest of the refused packet may be on its way
	}
	if g.env != nil {
		g.env.refused(g, code.Reason, err)
	}
	return err
}

// refuseEmptyID answers a 3.1.1 CONNECT with an empty client id and a
// persistent session with return code 2 identifier rejected, as 3.1.1
// requires [MQTT-3.1.3-8]: there is no session to come back to. (mochi
// would refuse it with 0x80, which is no 3.1.1 return code.)
func (g *packetGuard) refuseEmptyID() error {
	_, _ = g.Conn.Write([]byte{0x20, 0x02, 0x00, packets.Err3ClientIdentifierNotValid.Code})
	err := fmt.Errorf("%w: empty client id with a persistent session", ErrMalformed)
	if g.env != nil {
		g.env.refused(g, "client_id", err)
	}
	return err
}

// topicProblem says what is wrong with a topic name or filter under the
// guard's limits ("" when nothing is).
func (g *packetGuard) topicProblem(t string) string {
	if g.lim.TopicBytes > 0 && len(t) > g.lim.TopicBytes {
		return fmt.Sprintf("topic of %d bytes: at most %d", len(t), g.lim.TopicBytes)
	}
	if g.lim.TopicLevels > 0 {
		if n := strings.Count(t, "/") + 1; n > g.lim.TopicLevels {
			return fmt.Sprintf("topic of %d levels: at most %d", n, g.lim.TopicLevels)
		}
	}
	return ""
}

// refusePublish answers a PUBLISH whose topic is over the limits and drops
// it: QoS 1 gets PUBACK, QoS 2 PUBREC, with 0x90 Topic Name invalid for an
// MQTT 5 client (3.4.2.1 allows it) and a plain acknowledgement for 3.1.1,
// which has no reason codes: acknowledge and drop, with the error notice,
// never a disconnect (a persistent 3.1.1 session would resend it at every
// reconnect).
func (g *packetGuard) refusePublish(pk packets.Packet, why string) error {
	g.report(pk.TopicName, imerr.New(imerr.Invalid, "%s", why))
	if pk.FixedHeader.Qos == 0 {
		return nil
	}
	ack := packets.Packet{ProtocolVersion: g.version, PacketID: pk.PacketID, ReasonCode: packets.ErrTopicNameInvalid.Code,
		FixedHeader: packets.FixedHeader{Type: packets.Puback}}
	enc := (*packets.Packet).PubackEncode
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type, enc = packets.Pubrec, (*packets.Packet).PubrecEncode
	}
	var b bytes.Buffer
	if err := enc(&ack, &b); err != nil {
		return err
	}
	_, err := g.Conn.Write(b.Bytes())
	return err
}

// limitFilters blanks every filter of a SUBSCRIBE or UNSUBSCRIBE that is
// over the topic limits or, subscribing, past the client's subscription
// cap, and says whether it changed any. mochi answers a blank filter with
// 0x8F Topic Filter invalid (3.1.1: 0x80) in the SUBACK [MQTT-4.7.3-1]
// (UNSUBACK: 0x11 no subscription), so the client still gets one answer per
// filter, in order, and the other filters of the packet take effect.
func (g *packetGuard) limitFilters(pk *packets.Packet) bool {
	changed := false
	var cl *mqtt.Client
	have := 0
	if pk.FixedHeader.Type == packets.Subscribe && g.lim.Subscriptions > 0 && g.env != nil {
		if cl = g.env.client(g); cl != nil {
			have = cl.State.Subscriptions.Len()
		}
	}
	for i := range pk.Filters {
		f := pk.Filters[i].Filter
		why := g.topicProblem(f)
		code := imerr.Invalid
		if why == "" && cl != nil {
			if _, ok := cl.State.Subscriptions.Get(f); !ok {
				if have >= g.lim.Subscriptions {
					why, code = fmt.Sprintf("subscription limit reached (%d per client): unsubscribe first", g.lim.Subscriptions), imerr.QuotaExceeded
				} else {
					have++
				}
			}
		}
		if why != "" {
			g.report(f, imerr.New(code, "%s", why))
			pk.Filters[i].Filter = ""
			changed = true
		}
	}
	return changed
}

// report logs and counts a refused topic, and tells the user why.
func (g *packetGuard) report(topic string, e *imerr.Error) {
	if g.env == nil {
		return
	}
	g.env.refused(g, string(e.Code), fmt.Errorf("broker: topic %q refused: %s", truncate(topic, 64), e.Detail))
	if cl := g.env.client(g); cl != nil {
		g.env.notify(cl, strings.Clone(truncate(topic, 128)), e)
	}
}

// encodeFilters re-encodes a SUBSCRIBE or UNSUBSCRIBE whose filters changed.
func encodeFilters(pk packets.Packet) ([]byte, error) {
	var b bytes.Buffer
	var err error
	if pk.FixedHeader.Type == packets.Subscribe {
		err = pk.SubscribeEncode(&b)
	} else {
		err = pk.UnsubscribeEncode(&b)
	}
	return b.Bytes(), err
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
