package broker

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/reasoncode"
)

var connect5 = []byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x1e, 0x00, 0x00, 0x00}
var connect4 = []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x1e, 0x00, 0x00}

// TestGuard feeds byte streams through a packetGuard and checks what mochi
// would read and what the client is told.
func TestGuard(t *testing.T) {
	publish := []byte{0x30, 0x05, 0x00, 0x01, 'a', 'h', 'i'}
	publish5 := []byte{0x30, 0x06, 0x00, 0x01, 'a', 0x00, 'h', 'i'} // with an empty property list
	cases := []struct {
		name     string
		in       []byte
		passed   []byte // what mochi reads
		wantErr  error  // the read error after passed
		toClient []byte // what the guard writes back
	}{
		{"v5 connect then publish", cat(connect5, publish5), cat(connect5, publish5), io.EOF, nil},
		{"v3 connect then publish", cat(connect4, publish), cat(connect4, publish), io.EOF, nil},
		{"v5 subscribe without options byte", cat(connect5, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 'a'}), connect5, ErrMalformed,
			[]byte{0xe0}},
		{"v3 subscribe without qos", cat(connect4, []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'}), connect4, ErrMalformed, nil},
		{"first packet not connect", publish, nil, ErrMalformed, nil},
		{"too large", cat(connect5, []byte{0x30, 0xff, 0xff, 0x7f}), connect5, packets.ErrPacketTooLarge, []byte{0xe0}},
		{"length over four bytes", cat(connect4, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}), connect4, ErrMalformed, nil},
		{"v3 publish QoS 1 too deep: acknowledged, not passed", cat(connect4, []byte{0x32, 0x0b, 0x00, 0x07, 'a', '/', 'b', '/', 'c', '/', 'd', 0x00, 0x07, 'x'}), connect4, io.EOF,
			[]byte{0x40, 0x02, 0x00, 0x07}},
		{"v5 publish QoS 1 too long: PUBACK 0x90", cat(connect5, []byte{0x32, 0x17, 0x00, 0x11, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 0x00, 0x05, 0x00, 'x'}), connect5, io.EOF,
			[]byte{0x40, 0x03, 0x00, 0x05, 0x90}},
		{"v3 publish QoS 0 too deep: dropped", cat(connect4, []byte{0x30, 0x09, 0x00, 0x07, 'a', '/', 'b', '/', 'c', '/', 'd'}), connect4, io.EOF, nil},
		{"v3 subscribe too deep: filter blanked for mochi", cat(connect4, []byte{0x82, 0x0c, 0x00, 0x01, 0x00, 0x07, 'a', '/', 'b', '/', 'c', '/', 'd', 0x01}),
			cat(connect4, []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x01}), io.EOF, nil},
		{"truncated stream", cat(connect5, publish5[:4]), connect5, io.ErrUnexpectedEOF, nil},
		{"v3 persistent session with empty client id: identifier rejected", []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x00, 0x00, 0x1e, 0x00, 0x00},
			nil, ErrMalformed, []byte{0x20, 0x02, 0x00, 0x02}},
		{"v5 length over four bytes: DISCONNECT 0x81", cat(connect5, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}), connect5, ErrMalformed, []byte{0xe0}},
		{"v5 server-only packet: DISCONNECT 0x82", cat(connect5, []byte{0x90, 0x03, 0x00, 0x01, 0x00}), connect5, ErrMalformed, []byte{0xe0}},
		{"v5 publish QoS 2 too deep: PUBREC 0x90", cat(connect5, []byte{0x34, 0x0d, 0x00, 0x07, 'a', '/', 'b', '/', 'c', '/', 'd', 0x00, 0x05, 0x00, 'x'}), connect5, io.EOF,
			[]byte{0x50, 0x03, 0x00, 0x05, 0x90}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wire := &fakeConn{in: bytes.NewReader(c.in)}
			g := newPacketGuard(wire, 1024, GuardLimits{TopicLevels: 3, TopicBytes: 16}, nil)
			var got []byte
			p := make([]byte, 3) // small reads: packets span Read calls
			var err error
			for {
				var n int
				n, err = g.Read(p)
				got = append(got, p[:n]...)
				if err != nil {
					break
				}
			}
			if !bytes.Equal(got, c.passed) {
				t.Errorf("mochi read % x, want % x", got, c.passed)
			}
			if !errors.Is(err, c.wantErr) {
				t.Errorf("read error %v, want %v", err, c.wantErr)
			}
			if !bytes.HasPrefix(wire.out.Bytes(), c.toClient) || (c.toClient == nil) != (wire.out.Len() == 0) {
				t.Errorf("client got % x, want prefix % x", wire.out.Bytes(), c.toClient)
			}
			checkReasonCodes(t, wire.out.Bytes())
		})
	}
}

// checkReasonCodes checks every reason code in the MQTT 5 packets the guard
// wrote against the spec's list for that packet type (internal/reasoncode).
func checkReasonCodes(t *testing.T, out []byte) {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(out))
	for {
		first, err := r.ReadByte()
		if err != nil {
			return
		}
		n, err := r.ReadByte() // the guard's answers are all under 128 bytes
		if err != nil || n&0x80 != 0 {
			t.Fatalf("guard wrote % x: not a short packet", out)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("guard wrote % x: truncated", out)
		}
		var allowed reasoncode.Set
		at := 2 // after the packet id
		switch first >> 4 {
		case packets.Puback:
			allowed = reasoncode.Puback
		case packets.Pubrec:
			allowed = reasoncode.Pubrec
		case packets.Disconnect:
			allowed, at = reasoncode.Disconnect, 0
		case packets.Connack: // only to 3.1.1 clients
			allowed, at = reasoncode.Connack3, 1
		default:
			t.Fatalf("guard wrote packet type %d", first>>4)
		}
		if len(body) > at && !allowed.Allows(body[at]) {
			t.Errorf("guard sent packet type %d with reason code %#x, which the spec does not allow in it", first>>4, body[at])
		}
	}
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

type fakeConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (f *fakeConn) Read(p []byte) (int, error)       { return f.in.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error)      { return f.out.Write(p) }
func (f *fakeConn) Close() error                     { return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzDecodePacket: the guard's trial decode never panics, whatever bytes
// and protocol version it is given.
func FuzzDecodePacket(f *testing.F) {
	f.Add(byte(5), byte(0x82), []byte{0x00, 0x01, 0x00, 0x00, 0x01, 'a'})
	f.Add(byte(4), byte(0x30), []byte{0x00, 0x01, 'a', 'h', 'i'})
	f.Add(byte(0), byte(0x10), connect5[2:])
	f.Fuzz(func(t *testing.T, v, first byte, body []byte) {
		_, _ = decodePacket(v%6, first, len(body), body)
	})
}

// BenchmarkGuard reads a stream of 256-byte MQTT 5 QoS 1 publishes through
// the packet guard, beside the same bytes read through a plain bufio.Reader
// (what mochi reads through without the guard): the guard's cost per packet.
func BenchmarkGuard(b *testing.B) {
	pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName: "im/u/bob/dm/alice", PacketID: 7, Payload: bytes.Repeat([]byte("x"), 256)}
	var one bytes.Buffer
	if err := pk.PublishEncode(&one); err != nil {
		b.Fatal(err)
	}
	const perRun = 1000
	stream := cat(connect5, bytes.Repeat(one.Bytes(), perRun))
	read := func(b *testing.B, wrap func(net.Conn) io.Reader) {
		p := make([]byte, 2048)
		b.SetBytes(int64(len(stream)))
		for i := 0; i < b.N; i++ {
			r := wrap(&fakeConn{in: bytes.NewReader(stream)})
			for {
				if _, err := r.Read(p); err != nil {
					break
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perRun), "ns/packet")
	}
	b.Run("bufio (baseline)", func(b *testing.B) {
		read(b, func(c net.Conn) io.Reader { return bufio.NewReaderSize(c, guardReadBuffer) })
	})
	b.Run("guard", func(b *testing.B) {
		read(b, func(c net.Conn) io.Reader {
			return newPacketGuard(c, MaxPacketSize, GuardLimits{TopicLevels: 16, TopicBytes: 512}, nil)
		})
	})
}
