package platform_test

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// subscribe sends one SUBSCRIBE (QoS 1 filters) and returns its SUBACK codes.
func subscribeRaw(t *testing.T, r *imtest.Raw, _ byte, pid uint16, filters ...string) []byte {
	t.Helper()
	codes, err := r.SubscribeID(pid, 1, filters...)
	if err != nil {
		t.Fatal(err)
	}
	return codes
}

// TestDeepTopicsNeverReachTheTopicTree: a 240 KB SUBSCRIBE of four filters
// of 30 000 levels (it held mochi's global topic-tree lock for seconds;
// a string is at most 64 KiB) is refused per
// filter before mochi sees it, while others connect and subscribe as usual;
// a publish to a too-deep topic is acknowledged, dropped and explained,
// and a 3.1.1 device is not disconnected for it.
func TestDeepTopicsNeverReachTheTopicTree(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.TopicLevels, c.Limits.TopicBytes = 16, 512 })
	tok := s.User("alice")
	s.User("bob")

	raw, code, err := imtest.DialRaw(s.MQTT, 5, "alice:deep", "alice", tok)
	if err != nil || code != 0 {
		t.Fatalf("connect: %#x %v", code, err)
	}
	defer raw.Close()
	deep := "im/u/alice/" + strings.Repeat("+/", 30000)
	type result struct {
		codes []byte
		err   error
	}
	done := make(chan result, 1)
	go func() {
		codes, err := raw.SubscribeID(1, 1, deep+"#", deep+"a", deep+"b", deep+"c", "im/u/alice/#")
		done <- result{codes, err}
	}()

	start := time.Now()
	bob := s.MustConnect("bob", imtest.ClientOpts{Clean: true})
	t.Logf("another client's connect+subscribe while the deep SUBSCRIBE is handled: %v", time.Since(start))
	res := <-done
	codes := res.codes
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !bytes.Equal(codes, []byte{0x8f, 0x8f, 0x8f, 0x8f, 0x01}) {
		t.Fatalf("SUBACK codes % x, want 8f 8f 8f 8f 01 (the deep filters refused, the other granted)", codes)
	}

	// A publish to a too-deep topic from a 3.1.1 device: acknowledged,
	// dropped, explained; the connection stays.
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	alice.Publish("devices/"+strings.Repeat("x/", 40), 1, "deep")
	notes := alice.WaitFor("im/u/alice/error", 1)
	var n envelope.Notice
	if err := json.Unmarshal(notes[0].Payload, &n); err != nil || n.Code != "invalid" || !strings.Contains(n.Detail, "levels") {
		t.Fatalf("notice %s (%v)", notes[0].Payload, err)
	}
	if !alice.IsConnectionOpen() {
		t.Fatal("a 3.1.1 client was disconnected for a too-deep topic")
	}
	if !bob.IsConnectionOpen() {
		t.Fatal("a bystander was disconnected")
	}
}

// TestSubscriptionCap: past subscriptions_per_client new filters are
// refused (0x8F) and explained; re-subscribing to a held filter is not a
// new subscription.
func TestSubscriptionCap(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.Subscriptions = 3 })
	tok := s.User("alice")
	raw, code, err := imtest.DialRaw(s.MQTT, 5, "alice:subs", "alice", tok)
	if err != nil || code != 0 {
		t.Fatalf("connect: %#x %v", code, err)
	}
	defer raw.Close()
	if codes := subscribeRaw(t, raw, 5, 1, "im/u/alice/error", "im/u/alice/dm/a"); !bytes.Equal(codes, []byte{1, 1}) {
		t.Fatalf("SUBACK codes % x, want 01 01", codes)
	}
	codes := subscribeRaw(t, raw, 5, 3, "im/u/alice/dm/b", "im/u/alice/dm/c")
	if !bytes.Equal(codes, []byte{1, packets.ErrTopicFilterInvalid.Code}) {
		t.Fatalf("SUBACK codes % x, want 01 8f", codes)
	}
	if codes := subscribeRaw(t, raw, 5, 2, "im/u/alice/dm/a"); !bytes.Equal(codes, []byte{1}) {
		t.Fatalf("re-subscribing a held filter: % x, want 01", codes)
	}
	// The refusal was explained on the error topic (subscribed above).
	for i := 0; ; i++ {
		if i == len(raw.Skipped) {
			pk, err := raw.Read(5 * time.Second)
			if err != nil {
				t.Fatalf("no error notice for the refused subscription: %v", err)
			}
			raw.Skipped = append(raw.Skipped, pk)
		}
		if pk := raw.Skipped[i]; pk.FixedHeader.Type == packets.Publish && pk.TopicName == "im/u/alice/error" {
			if !strings.Contains(string(pk.Payload), "quota_exceeded") {
				t.Fatalf("notice %s", pk.Payload)
			}
			break
		}
	}
}

// TestConnectDeadlineAndKeepaliveCap: a socket that never sends CONNECT is
// closed after connect_timeout; an MQTT 5 client asking for a longer
// keepalive than max_keepalive is given the cap.
func TestConnectDeadlineAndKeepaliveCap(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) {
		c.Limits.ConnectTimeout = 500 * time.Millisecond
		c.Limits.MaxKeepalive = 20 * time.Second
	})
	tok := s.User("alice")
	for _, url := range []string{s.MQTT, s.WS} {
		var c net.Conn
		if strings.HasPrefix(url, "ws://") {
			r, err := imtest.DialWS(url)
			if err != nil {
				t.Fatal(err)
			}
			c = r
		} else {
			var err error
			if c, err = net.Dial("tcp", strings.TrimPrefix(url, "tcp://")); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if !isClosed(err) {
			t.Fatalf("%s: a silent connection was not closed: %v", url, err)
		}
		c.Close()
	}
	raw, code, err := imtest.DialRaw(s.MQTT, 5, "alice:ka", "alice", tok) // asks for 30 s
	if err != nil || code != 0 {
		t.Fatalf("connect: %#x %v", code, err)
	}
	defer raw.Close()
	if p := raw.Connack.Properties; !p.ServerKeepAliveFlag || p.ServerKeepAlive != 20 {
		t.Fatalf("CONNACK Server Keep Alive %v %d, want 20", p.ServerKeepAliveFlag, p.ServerKeepAlive)
	}
}
