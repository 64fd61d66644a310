package platform_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// device is a plain MQTT device (raw packets: no client-side reordering or
// deduplication) that records what it receives, acknowledging QoS 1.
type device struct {
	t    *testing.T
	raw  *imtest.Raw
	got  []received
	acks bool
}

type received struct {
	topic string
	qos   byte
	id    uint16 // packet id
	msg   envelope.Message
}

func dialDevice(t *testing.T, url string, version byte, id, user string, clean bool, props packets.Properties) *device {
	t.Helper()
	raw, code, err := imtest.DialRawSession(url, version, packets.ConnectParams{ClientIdentifier: id,
		Username: []byte(user), UsernameFlag: true, Password: []byte(imtest.Password), PasswordFlag: true}, clean, props)
	if err != nil || code != 0 {
		t.Fatalf("connect %s: code %#x, %v", id, code, err)
	}
	t.Cleanup(func() { raw.Close() })
	return &device{t: t, raw: raw, acks: true}
}

// readUntil reads until n chat messages have arrived (acknowledging each),
// failing after d without progress.
func (dv *device) readUntil(n int, d time.Duration) {
	dv.t.Helper()
	for len(dv.got) < n {
		pk, err := dv.raw.Read(d)
		if err != nil {
			dv.t.Fatalf("after %d of %d messages: %v", len(dv.got), n, err)
		}
		dv.take(pk)
	}
}

func (dv *device) take(pk packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	if pk.FixedHeader.Qos > 0 && dv.acks {
		if err := dv.raw.Puback(pk.PacketID); err != nil {
			dv.t.Fatal(err)
		}
	}
	var m envelope.Message
	if json.Unmarshal(pk.Payload, &m) != nil || m.ID == "" {
		return // not a chat message (a receipt, presence)
	}
	dv.got = append(dv.got, received{pk.TopicName, pk.FixedHeader.Qos, pk.PacketID, m})
}

// quiet reads for a moment (a PINGREQ's round trip after the server has
// had time to send more) and fails on any further chat message.
func (dv *device) quiet() {
	dv.t.Helper()
	before := len(dv.got)
	time.Sleep(300 * time.Millisecond) // nothing to poll for: absence is the point
	if err := dv.raw.Write([]byte{0xc0, 0x00}); err != nil {
		dv.t.Fatal(err)
	}
	for {
		pk, err := dv.raw.Read(5 * time.Second)
		if err != nil {
			dv.t.Fatal(err)
		}
		if pk.FixedHeader.Type == packets.Pingresp {
			break
		}
		dv.take(pk)
	}
	if extra := len(dv.got) - before; extra > 0 {
		dv.t.Fatalf("%d chat messages more than expected, first: %+v", extra, dv.got[before])
	}
}

// checkOrder fails unless, per conversation topic, seqs run from first
// without gaps or repeats, and returns the count per topic.
func (dv *device) checkOrder(first map[string]uint64) map[string]int {
	dv.t.Helper()
	next := map[string]uint64{}
	for k, v := range first {
		next[k] = v
	}
	count := map[string]int{}
	for i, r := range dv.got {
		want, ok := next[r.topic]
		if !ok {
			want = 1
		}
		if r.msg.Seq != want {
			dv.t.Fatalf("message %d on %s has seq %d, want %d (out of order, repeated or missing)", i, r.topic, r.msg.Seq, want)
		}
		next[r.topic] = want + 1
		count[r.topic]++
	}
	return count
}

// TestPlainDeviceBacklogInOrderAcrossRestart: a persistent 3.1.1 session is
// offline while three conversations send it 1500 messages; the server
// restarts; the device reconnects and gets every message exactly once, in
// seq order per conversation, from its session alone (no sync call).
func TestPlainDeviceBacklogInOrderAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s1 := imtest.Start(t, dir)
	atok := s1.User("alice")
	ctok := s1.User("carol")
	s1.User("bob")
	s1.MustAPI(201, "POST", "/api/v1/groups", atok, map[string]any{"id": "team", "members": []string{"bob", "carol"}}, nil)

	bob := dialDevice(t, s1.MQTT, 4, "bob:plain", "bob", false, packets.Properties{})
	if codes, err := bob.raw.Subscribe(1, "im/u/bob/#"); err != nil || codes[0] != 1 {
		t.Fatalf("subscribe: %v %v", codes, err)
	}
	bob.raw.Disconnect()

	const each = 500
	for i := 0; i < each; i++ {
		s1.MustAPI(200, "POST", "/api/v1/publish", atok, map[string]any{"topic": "im/u/bob/dm/alice", "payload": fmt.Sprintf(`{"body":"a%d"}`, i)}, nil)
		s1.MustAPI(200, "POST", "/api/v1/publish", ctok, map[string]any{"topic": "im/u/bob/dm/carol", "payload": fmt.Sprintf(`{"body":"c%d"}`, i)}, nil)
		s1.MustAPI(200, "POST", "/api/v1/publish", atok, map[string]any{"topic": "im/g/team", "payload": fmt.Sprintf(`{"body":"g%d"}`, i)}, nil)
	}
	s1.Close()

	s2 := imtest.Start(t, dir)
	bob = dialDevice(t, s2.MQTT, 4, "bob:plain", "bob", false, packets.Properties{})
	if !bob.raw.Connack.SessionPresent {
		t.Fatal("CONNACK: session not present after restart")
	}
	bob.readUntil(3*each, 10*time.Second)
	bob.quiet()
	count := bob.checkOrder(nil)
	for _, tp := range []string{"im/u/bob/dm/alice", "im/u/bob/dm/carol", "im/u/bob/g/team"} {
		if count[tp] != each {
			t.Errorf("%s: %d messages, want %d", tp, count[tp], each)
		}
	}
}

// TestDeviceSessionCursor: what a device session gets, by the MQTT rules.
func TestDeviceSessionCursor(t *testing.T) {
	s := imtest.Start(t, "")
	atok := s.User("alice")
	// alice is bob's contact: her DMs raise no message request, so bob's inbox holds only what this test counts.
	s.MustAPI(200, "POST", "/api/v1/contacts", s.User("bob"), map[string]string{"user": "alice"}, nil)
	send := func(body string) {
		t.Helper()
		s.MustAPI(200, "POST", "/api/v1/publish", atok, map[string]any{"topic": "im/u/bob/dm/alice", "payload": `{"body":"` + body + `"}`}, nil)
	}

	t.Run("a clean session starts at the end of the feed", func(t *testing.T) {
		send("before")
		dv := dialDevice(t, s.MQTT, 4, "bob:clean", "bob", true, packets.Properties{})
		dv.raw.Subscribe(1, "im/u/bob/#")
		send("after")
		dv.readUntil(1, 5*time.Second)
		dv.quiet()
		if dv.got[0].msg.Body != "after" {
			t.Fatalf("a new session got %q", dv.got[0].msg.Body)
		}
	})

	t.Run("a QoS 0 subscription gets QoS 0, and only what it matches", func(t *testing.T) {
		dv := dialDevice(t, s.MQTT, 4, "bob:q0", "bob", true, packets.Properties{})
		dv.raw.Subscribe(0, "im/u/bob/dm/alice")
		s.MustAPI(201, "POST", "/api/v1/groups", atok, map[string]any{"id": "q0", "members": []string{"bob"}}, nil)
		s.MustAPI(200, "POST", "/api/v1/publish", atok, map[string]any{"topic": "im/g/q0", "payload": `{"body":"group"}`}, nil)
		send("dm")
		dv.readUntil(1, 5*time.Second)
		dv.quiet()
		if r := dv.got[0]; r.qos != 0 || r.msg.Body != "dm" {
			t.Fatalf("got %+v", r)
		}
	})

	t.Run("a later SUBSCRIBE takes effect for what comes next", func(t *testing.T) {
		dv := dialDevice(t, s.MQTT, 4, "bob:later", "bob", true, packets.Properties{})
		dv.raw.Subscribe(1, "im/u/bob/dm/alice")
		s.MustAPI(201, "POST", "/api/v1/groups", atok, map[string]any{"id": "later", "members": []string{"bob"}}, nil)
		group := func(body string) {
			s.MustAPI(200, "POST", "/api/v1/publish", atok, map[string]any{"topic": "im/g/later", "payload": `{"body":"` + body + `"}`}, nil)
		}
		group("unseen")
		send("dm")
		dv.readUntil(1, 5*time.Second)
		dv.raw.Subscribe(1, "im/u/bob/g/+")
		group("seen")
		dv.readUntil(2, 5*time.Second)
		dv.quiet()
		if dv.got[0].msg.Body != "dm" || dv.got[1].msg.Body != "seen" {
			t.Fatalf("got %q then %q", dv.got[0].msg.Body, dv.got[1].msg.Body)
		}
	})

	t.Run("MQTT 5 Receive Maximum bounds unacknowledged messages", func(t *testing.T) {
		dv := dialDevice(t, s.MQTT, 5, "bob:rm", "bob", true, packets.Properties{ReceiveMaximum: 3})
		dv.raw.Subscribe(1, "im/u/bob/#")
		dv.acks = false
		for i := 0; i < 8; i++ {
			send(fmt.Sprint("w", i))
		}
		var ids []uint16
		for len(ids) < 3 {
			pk, err := dv.raw.Read(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if pk.FixedHeader.Type == packets.Publish {
				ids = append(ids, pk.PacketID)
				dv.take(pk)
			}
		}
		dv.quiet() // a fourth would break [MQTT-3.3.4-9]
		dv.raw.Puback(ids[0])
		dv.acks = true
		dv.readUntil(8, 5*time.Second)
		dv.quiet()
		dv.checkOrder(map[string]uint64{"im/u/bob/dm/alice": dv.got[0].msg.Seq})
	})

	t.Run("unacknowledged messages come again after a reconnect, in order", func(t *testing.T) {
		props := packets.Properties{SessionExpiryInterval: 300, SessionExpiryIntervalFlag: true}
		dv := dialDevice(t, s.MQTT, 5, "bob:resume", "bob", true, props)
		dv.raw.Subscribe(1, "im/u/bob/#")
		dv.acks = false
		for i := 0; i < 5; i++ {
			send(fmt.Sprint("r", i))
		}
		dv.readUntil(5, 5*time.Second)
		first := dv.got[0].msg.Seq
		dv.raw.Puback(dv.got[0].id) // only the first is acknowledged
		dv.raw.Ping(5 * time.Second)
		dv.raw.Close()

		again := dialDevice(t, s.MQTT, 5, "bob:resume", "bob", false, props)
		if !again.raw.Connack.SessionPresent {
			t.Fatal("session not present")
		}
		again.readUntil(4, 5*time.Second)
		again.quiet()
		again.checkOrder(map[string]uint64{"im/u/bob/dm/alice": first + 1})
	})
}

// TestPipelinedPublishesAckedInOrder: a 3.1.1 device sends 300 QoS 1 chat
// messages without waiting; every one is stored, and the PUBACKs come back
// in the order the publishes were sent [MQTT-4.6.0-2], a refused one (to a
// user that does not exist) in its place.
func TestPipelinedPublishesAckedInOrder(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	btok := s.User("bob")
	dv := dialDevice(t, s.MQTT, 4, "alice:pipe", "alice", true, packets.Properties{})
	const n = 300
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		to := "bob"
		if i == 150 {
			to = "nobody"
		}
		pk := packets.Packet{ProtocolVersion: 4, PacketID: uint16(i), TopicName: "im/u/" + to + "/dm/alice",
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, Payload: []byte(fmt.Sprintf(`{"body":"%d"}`, i))}
		if err := pk.PublishEncode(&b); err != nil {
			t.Fatal(err)
		}
	}
	if err := dv.raw.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	for want := uint16(1); want <= n; want++ {
		pk, err := dv.raw.Read(10 * time.Second)
		if err != nil {
			t.Fatalf("waiting for PUBACK %d: %v", want, err)
		}
		if pk.FixedHeader.Type != packets.Puback {
			want--
			continue
		}
		if pk.PacketID != want {
			t.Fatalf("PUBACK for %d, want %d", pk.PacketID, want)
		}
	}
	page := syncAll(t, s.HTTP, btok)
	if len(page) != n-1 {
		t.Fatalf("bob's feed holds %d messages, want %d", len(page), n-1)
	}
	for i, m := range page {
		if want := i + 1 + min(1, i/149); m.Body != fmt.Sprint(want) || m.Seq != uint64(i+1) {
			t.Fatalf("message %d: body %q seq %d, want body %d", i, m.Body, m.Seq, want)
		}
	}
}

// TestForeignCursorIsResetEverywhere: a cursor of another store epoch gets
// the typed reset on every transport that resumes from one (MQTT sync's
// "reset":true is covered by TestMQTTSync).
func TestForeignCursorIsResetEverywhere(t *testing.T) {
	s := imtest.Start(t, "")
	tok := s.User("alice")
	for _, path := range []string{
		"/api/v1/sync?since=deadbeef-5",
		"/api/v1/poll?since=deadbeef-5",
		"/api/v1/stream?since=deadbeef-5",
	} {
		var body struct{ Error struct{ Code string } }
		code, err := s.API("GET", path, tok, nil, &body)
		if err != nil || code != 410 || body.Error.Code != "reset" {
			t.Errorf("%s: %d %q %v, want 410 reset", path, code, body.Error.Code, err)
		}
	}
}
