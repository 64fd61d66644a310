package platform_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// badPackets are packets a client can send after CONNECT that mochi v2.7.9
// must never decode unguarded. The first panicked its decoder and took the
// whole process down (docs/upstream/mochi-subscribe-decode.md).
var badPackets = []struct {
	name    string
	version byte
	raw     []byte
	reason  byte // the DISCONNECT reason an MQTT 5 client gets
}{
	{"v5 SUBSCRIBE filter without options byte", 5, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 'a'}, 0x81},
	{"v5 SUBSCRIBE second filter without options byte", 5, []byte{0x82, 0x0a, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x01, 0x00, 0x01, 'b'}, 0x81},
	{"v5 SUBSCRIBE properties longer than packet", 5, []byte{0x82, 0x04, 0x00, 0x01, 0x09, 0x0b}, 0x81},
	{"v5 PUBLISH topic longer than packet", 5, []byte{0x30, 0x03, 0x00, 0x09, 'a'}, 0x81},
	{"v3.1.1 SUBSCRIBE filter without QoS byte", 4, []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'}, 0},
	{"remaining length over four bytes", 5, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, 0x81},
	{"packet over the broker's maximum", 5, []byte{0x30, 0xff, 0xff, 0x7f}, 0x95},
	{"server-only packet type", 5, []byte{0x90, 0x03, 0x00, 0x01, 0x00}, 0x82},
	{"v5 CONNACK from a client", 5, []byte{0x20, 0x03, 0x00, 0x00, 0x00}, 0x82},
}

// TestMalformedPacketEndsOnlyItsConnection: each bad packet, over TCP and
// over WebSocket, ends the connection that sent it (MQTT 5: DISCONNECT with
// a reason code and a reason string first) and nothing else: a bystander
// stays connected and receives, new clients connect and subscribe.
func TestMalformedPacketEndsOnlyItsConnection(t *testing.T) {
	s := imtest.Start(t, "")
	tok := s.User("alice")
	s.User("bob")
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	sent := 0
	for _, url := range []string{s.MQTT, s.WS} {
		for _, c := range badPackets {
			t.Run(strings.SplitN(url, ":", 2)[0]+"/"+c.name, func(t *testing.T) {
				raw, code, err := imtest.DialRaw(url, c.version, "alice:raw", "alice", tok)
				if err != nil || code != 0 {
					t.Fatalf("connect: code %#x, %v", code, err)
				}
				defer raw.Close()
				if err := raw.Write(c.raw); err != nil {
					t.Fatal(err)
				}
				pk, err := raw.Read(5 * time.Second)
				if c.version == 5 {
					if err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != c.reason || pk.Properties.ReasonString == "" {
						t.Fatalf("got type %d reason %#x %q (err %v), want DISCONNECT %#x with a reason string",
							pk.FixedHeader.Type, pk.ReasonCode, pk.Properties.ReasonString, err, c.reason)
					}
					pk, err = raw.Read(5 * time.Second)
				}
				if !isClosed(err) {
					t.Fatalf("connection still open after the bad packet: read type %d, err %v", pk.FixedHeader.Type, err)
				}

				// Everyone else carries on.
				fresh, code, err := imtest.DialRaw(url, 5, "alice:fresh", "alice", tok)
				if err != nil || code != 0 {
					t.Fatalf("a new connection after the bad packet: code %#x, %v", code, err)
				}
				defer fresh.Close()
				if err := fresh.Ping(5 * time.Second); err != nil {
					t.Fatalf("ping on a new connection: %v", err)
				}
				if !bob.IsConnectionOpen() {
					t.Fatal("a bystander was disconnected")
				}
				alice := s.MustConnect("alice", imtest.ClientOpts{Clean: true, NoSub: true})
				alice.Publish("im/u/bob/dm/alice", 1, "after "+c.name)
				alice.Disconnect(0)
				sent++
				bob.WaitFor("im/u/bob/dm/alice", sent)
			})
		}
	}
	if got := counterValue(s.Metrics.PacketsRefused.WithLabelValues(packets.ErrMalformedPacket.Reason)); got == 0 {
		t.Fatal("mqim_packets_refused_total did not count the refusals")
	}
}

func isClosed(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") ||
		strings.Contains(err.Error(), "close"))
}

// panicHook panics on the read goroutine for publishes to one topic: a
// stand-in for any bug in mochi's packet path or in a hook.
type panicHook struct {
	mqtt.HookBase
	topic string
}

func (h *panicHook) ID() string           { return "test-panic" }
func (h *panicHook) Provides(b byte) bool { return b == mqtt.OnPacketRead }
func (h *panicHook) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.TopicName == h.topic {
		panic("test: boom on " + h.topic)
	}
	return pk, nil
}

// TestPanicOnAConnectionIsRecovered: a panic on a connection's goroutine
// drops that connection only, and the cleanup mochi would have done after
// its read loop still happens (the user goes offline).
func TestPanicOnAConnectionIsRecovered(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	s.User("bob")
	if err := s.Broker.Server.AddHook(&panicHook{topic: "test/boom"}, nil); err != nil {
		t.Fatal(err)
	}
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	alice := s.MustConnect("alice", imtest.ClientOpts{Clean: true})
	waitPresence(t, bob, "alice", "online")

	alice.Client.Publish("test/boom", 1, false, "boom")
	imtest.Eventually(t, "alice's connection to close", 10*time.Second, func() bool { return !alice.IsConnectionOpen() })
	waitPresence(t, bob, "alice", "offline")
	if !bob.IsConnectionOpen() {
		t.Fatal("a bystander was disconnected")
	}
	again := s.MustConnect("alice", imtest.ClientOpts{Clean: true, NoSub: true})
	again.Publish("im/u/bob/dm/alice", 1, "after the panic")
	bob.WaitFor("im/u/bob/dm/alice", 1)
	if got := counterValue(s.Metrics.ConnPanics); got != 1 {
		t.Fatalf("mqim_connection_panics_total = %v, want 1", got)
	}
}

func waitPresence(t *testing.T, c *imtest.Client, user, status string) {
	t.Helper()
	imtest.Eventually(t, user+" "+status, 10*time.Second, func() bool {
		msgs := c.Messages("im/presence/" + user)
		if len(msgs) == 0 {
			return false
		}
		var p envelope.Presence
		return json.Unmarshal(msgs[len(msgs)-1].Payload, &p) == nil && p.Status == status
	})
}

// FuzzBrokerPackets sends arbitrary bytes after a CONNECT (MQTT 3.1.1 or 5,
// by the first byte) to a live broker. Whatever the bytes, the process must
// survive (a panic anywhere fails the fuzz run) and keep serving: the next
// iteration connects again.
func FuzzBrokerPackets(f *testing.F) {
	for _, c := range badPackets {
		f.Add(append([]byte{c.version}, c.raw...))
	}
	for _, seed := range [][]byte{
		{5, 0x82, 0x09, 0x00, 0x01, 0x00, 0x00, 0x03, 'a', '/', 'b', 0x01},      // SUBSCRIBE
		{4, 0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', 'b', 0x01},            // SUBSCRIBE
		{5, 0x32, 0x0a, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x02, 0x00, 'h', 'i'},  // PUBLISH QoS 1
		{4, 0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'},                    // PUBLISH QoS 0
		{5, 0xa2, 0x07, 0x00, 0x02, 0x00, 0x00, 0x02, 'a', 'b'},                 // UNSUBSCRIBE
		{5, 0xe0, 0x02, 0x00, 0x00},                                             // DISCONNECT
		{5, 0xf0, 0x02, 0x00, 0x00},                                             // AUTH
		{5, 0x40, 0x04, 0x00, 0x01, 0x00, 0x00},                                 // PUBACK
		{5, 0x62, 0x02, 0x00, 0x01},                                             // PUBREL
		{5, 0x10, 0x0a, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x1e}, // second CONNECT
	} {
		f.Add(seed)
	}
	s := imtest.Start(f, "")
	tok := s.User("alice")
	var mu sync.Mutex // one connection at a time: they share a client id
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		version := byte(4)
		if data[0]&1 == 1 {
			version = 5
		}
		mu.Lock()
		defer mu.Unlock()
		raw, code, err := imtest.DialRaw(s.MQTT, version, "alice:fuzz", "alice", tok)
		if err != nil || code != 0 {
			t.Fatalf("the broker stopped serving: connect code %#x, %v", code, err)
		}
		defer raw.Close()
		if raw.Write(data[1:]) != nil {
			return
		}
		_ = raw.Ping(100 * time.Millisecond)
	})
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestRefusedPublishLogsOneConciseLine: an ordinary refused publish leaves
// one short warning (client, topic, reason), not mochi's dump of the packet
// with its payload at error level.
func TestRefusedPublishLogsOneConciseLine(t *testing.T) {
	var logs imtest.Buffer
	s := imtest.StartLogged(t, "", slog.New(slog.NewTextHandler(&logs, nil)))
	s.User("alice")
	s.User("bob")
	raw := s.MustDialRaw5("alice:v5", "alice", imtest.Password)
	secret := strings.Repeat("payload-", 100)
	if reason, err := raw.Publish("im/u/bob/dm/carol", []byte(secret)); err != nil || reason != 0x87 {
		t.Fatalf("PUBACK %#x %v, want 0x87", reason, err)
	}
	var lines []string
	imtest.Eventually(t, "a log line for the refusal", 5*time.Second, func() bool {
		lines = nil
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "im/u/bob/dm/carol") {
				lines = append(lines, l)
			}
		}
		return len(lines) > 0
	})
	if len(lines) != 1 {
		t.Fatalf("%d log lines for one refusal:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	l := lines[0]
	if len(l) > 400 || strings.Contains(l, "payload-") || strings.Contains(l, "level=ERROR") ||
		!strings.Contains(l, "alice:v5") || !strings.Contains(l, "not authorized") {
		t.Fatalf("refusal logged as %d bytes: %s", len(l), l)
	}
}

// TestOversizePublishGetsItsDisconnect: a client that sends a whole PUBLISH
// over the maximum packet size (not just its header) still reads the
// DISCONNECT 0x95 that says why: the server reads away the rest of the
// packet before closing, where a plain close would answer the unread bytes
// with a TCP reset that can destroy the DISCONNECT first.
func TestOversizePublishGetsItsDisconnect(t *testing.T) {
	s := imtest.Start(t, "")
	tok := s.User("alice")
	for i := 0; i < 3; i++ {
		raw, code, err := imtest.DialRaw(s.MQTT, 5, "alice:big", "alice", tok)
		if err != nil || code != 0 {
			t.Fatalf("connect: %#x %v", code, err)
		}
		body := bytes.Repeat([]byte("x"), 400<<10)
		pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1,
			TopicName: "im/u/alice/dm/alice", Payload: body}
		var b bytes.Buffer
		if err := pk.PublishEncode(&b); err != nil {
			t.Fatal(err)
		}
		go raw.Write(b.Bytes()) // may block once the server stops reading; it ends with the connection
		// A client busy writing reads late: by then a plain close would
		// have answered the unread bytes with a reset.
		time.Sleep(300 * time.Millisecond)
		got, err := raw.Read(5 * time.Second)
		if err != nil || got.FixedHeader.Type != packets.Disconnect || got.ReasonCode != 0x95 {
			t.Fatalf("run %d: got type %d reason %#x, err %v; want DISCONNECT 0x95", i, got.FixedHeader.Type, got.ReasonCode, err)
		}
		raw.Close()
	}
}
