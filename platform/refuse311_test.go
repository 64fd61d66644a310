package platform_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// TestPersistent311DeviceOutsideItsRules: an MQTT 3.1.1 device with a
// persistent session that publishes QoS 1 where no operator rule lets it
// gets a PUBACK, the message dropped and an error notice, and stays
// connected; resending the publish after a reconnect (as a client does with
// an unacknowledged one) is answered the same way, so there is no
// disconnect loop. Nobody receives the refused message.
func TestPersistent311DeviceOutsideItsRules(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Rules = deviceRules })
	tok := s.User("alice")
	key, _ := newDevice(t, s, tok, "cam-1", "")
	alice := s.MustConnect("alice", imtest.ClientOpts{Clean: true})
	if tk := alice.Subscribe("devices/+/telemetry", 1, nil); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("alice subscribe: %v", tk.Error())
	}
	cp := packets.ConnectParams{ClientIdentifier: "cam-firmware-7", Username: []byte("cam-1"), UsernameFlag: true,
		Password: []byte(key), PasswordFlag: true}
	dial := func() *imtest.Raw5 {
		r, code, err := imtest.DialRawPersistent(s.MQTT, 4, cp)
		if err != nil || code != 0 {
			t.Fatalf("connect: %#x %v", code, err)
		}
		return r.Client()
	}
	dev := dial()
	if codes, err := dev.Subscribe("im/u/cam-1/error"); err != nil || codes[0] >= 0x80 {
		t.Fatalf("subscribe to the error topic: %v %v", codes, err)
	}
	const forbidden = "devices/other/telemetry" // alice reads it; cam-1 may not write it
	if _, err := dev.PublishID(forbidden, []byte("spoofed"), 7, false); err != nil {
		t.Fatalf("refused publish not acknowledged: %v", err)
	}
	if err := dev.Ping(5 * time.Second); err != nil {
		t.Fatalf("connection after the refused publish: %v", err)
	}
	dev.Close()

	// The firmware resends the publish it had not seen acknowledged.
	dev = dial()
	defer dev.Close()
	if _, err := dev.PublishID(forbidden, []byte("spoofed"), 7, true); err != nil {
		t.Fatalf("resent publish not acknowledged: %v", err)
	}
	if rc, err := dev.Publish("devices/cam-1/telemetry", []byte("21.5")); err != nil || rc != 0 {
		t.Fatalf("allowed publish: %#x %v", rc, err)
	}
	if err := dev.Ping(5 * time.Second); err != nil {
		t.Fatalf("connection after the resent publish: %v", err)
	}
	// alice gets the allowed message, and it is the first she gets: the
	// refused ones, published before it on the same connection, reached no one.
	got := alice.WaitFor("devices/", 1)
	if got[0].Topic != "devices/cam-1/telemetry" {
		t.Fatalf("alice got %s %q first", got[0].Topic, got[0].Payload)
	}
	// The device was told why, on its error topic (the notice of the first
	// publish is queued in its session, or came before the close).
	var n envelope.Notice
	checkNotice := func(pk packets.Packet) bool {
		return pk.FixedHeader.Type == packets.Publish && pk.TopicName == "im/u/cam-1/error" &&
			json.Unmarshal(pk.Payload, &n) == nil && n.Code == "forbidden" && n.Topic == forbidden
	}
	for _, pk := range dev.Skipped {
		if checkNotice(pk) {
			return
		}
	}
	for {
		pk, err := dev.Read()
		if err != nil {
			t.Fatalf("no forbidden notice for %s: %v", forbidden, err)
		}
		if checkNotice(pk) {
			return
		}
	}
}

// TestV5RefusedOutsideRules: an MQTT 5 publish outside the user's rules,
// or a forbidden one into im/, is answered with 0x87 in the acknowledgement
// of its QoS (PUBACK for 1, PUBREC for 2), and the connection goes on.
func TestV5RefusedOutsideRules(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Rules = deviceRules })
	s.User("alice")
	r, code, err := imtest.DialRaw(s.MQTT, 5, "any-id", "alice", imtest.Password)
	if err != nil || code != 0 {
		t.Fatalf("connect: %#x %v", code, err)
	}
	defer r.Close()
	for i, c := range []struct {
		topic string
		qos   byte
		want  byte // packet type of the answer
	}{
		{"devices/cam-1/cmd", 1, packets.Puback}, {"devices/cam-1/cmd", 2, packets.Pubrec},
		{"im/presence/bob", 1, packets.Puback}, {"im/presence/bob", 2, packets.Pubrec},
	} {
		pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: c.qos},
			TopicName: c.topic, Payload: []byte(`{"status":"away"}`), PacketID: uint16(10 + i)}
		var b bytes.Buffer
		if err := pk.PublishEncode(&b); err != nil {
			t.Fatal(err)
		}
		if err := r.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
		for {
			ack, err := r.Read(5 * time.Second)
			if err != nil {
				t.Fatalf("%s QoS %d: no acknowledgement: %v", c.topic, c.qos, err)
			}
			if ack.FixedHeader.Type == packets.Publish {
				continue // the error notice, were alice subscribed
			}
			if ack.FixedHeader.Type != c.want || ack.PacketID != pk.PacketID || ack.ReasonCode != 0x87 {
				t.Fatalf("%s QoS %d: got type %d id %d code %#x, want type %d id %d code 0x87", c.topic, c.qos,
					ack.FixedHeader.Type, ack.PacketID, ack.ReasonCode, c.want, pk.PacketID)
			}
			break
		}
	}
	if err := r.Ping(5 * time.Second); err != nil {
		t.Fatalf("connection after the refusals: %v", err)
	}
}
