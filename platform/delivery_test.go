package platform_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/imclient"
	"github.com/mqim/mqim/internal/imtest"
)

type recorder struct {
	mu   sync.Mutex
	msgs []envelope.Message
}

func (r *recorder) add(m envelope.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) get() []envelope.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]envelope.Message(nil), r.msgs...)
}

// checkExactlyOnceInOrder asserts each conversation arrived as seq 1..n.
func checkExactlyOnceInOrder(t *testing.T, me string, got []envelope.Message, want map[imclient.ConvKey]int) {
	t.Helper()
	last := map[imclient.ConvKey]uint64{}
	for _, m := range got {
		k := imclient.KeyOf(me, m)
		if m.Seq != last[k]+1 {
			t.Fatalf("%s: seq %d after %d", k, m.Seq, last[k])
		}
		last[k] = m.Seq
	}
	for k, n := range want {
		if last[k] != uint64(n) {
			t.Fatalf("%s: got up to seq %d, want %d", k, last[k], n)
		}
	}
}

// TestSmallWindowFullBacklog: with a tiny delivery window and broker queue
// a long-offline device still gets the full set through its session and
// the client package's sync, exactly once and in order.
func TestSmallWindowFullBacklog(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.MaxInflight, c.DeliveryWindow = 10, 2 })
	tok := s.User("alice")
	s.User("bob")
	s.MustAPI(201, "POST", "/api/v1/groups", tok, map[string]any{"id": "g", "members": []string{"bob"}}, nil)
	ctx := context.Background()
	var rec recorder
	opts := imclient.Options{HTTP: s.HTTP, User: "bob", Password: imtest.Password, Device: "phone", OnMessage: rec.add}
	bob, err := imclient.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	bob.Close() // long offline, persistent session

	alice := s.MustConnect("alice", imtest.ClientOpts{})
	for i := 1; i <= 60; i++ {
		alice.Publish("im/u/bob/dm/alice", 1, fmt.Sprintf("dm %d", i))
		alice.Publish("im/g/g", 1, fmt.Sprintf("g %d", i))
	}
	opts.State = bob.State()
	bob, err = imclient.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	imtest.Eventually(t, "all 120 messages", 10*time.Second, func() bool { return len(rec.get()) >= 120 })
	// Late broker redeliveries must not surface as duplicates.
	alice.Publish("im/u/bob/dm/alice", 1, "fence")
	imtest.Eventually(t, "fence", 10*time.Second, func() bool { return len(rec.get()) >= 121 })
	checkExactlyOnceInOrder(t, "bob", rec.get(), map[imclient.ConvKey]int{"dm:alice": 61, "g:g": 60})
	t.Logf("suppressed %d repeated deliveries", bob.Duplicates())
}

// TestDupRetransmissionStoredOnce: a QoS 1 retransmission (DUP, same packet
// id, same payload) after the first copy was acknowledged creates no second
// history entry and no second delivery; a new publish reusing the packet id
// without DUP is a new message.
func TestDupRetransmissionStoredOnce(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	s.User("bob")
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	raw := s.MustDialRaw5("alice:v5", "alice", imtest.Password)
	for _, c := range []struct {
		payload string
		dup     bool
	}{{"first", false}, {"first", true}, {"first", true}, {"second", false}, {"second", false}} {
		if rc, err := raw.PublishID("im/u/bob/dm/alice", []byte(c.payload), 7, c.dup); err != nil || rc != 0 {
			t.Fatalf("publish: %#x %v", rc, err)
		}
	}
	bob.WaitFor("im/u/bob/dm/alice", 3)
	var page struct{ Messages []envelope.Message }
	s.MustAPI(200, "GET", "/api/v1/history/dm/alice", s.Login("bob"), nil, &page)
	if len(page.Messages) != 3 || page.Messages[2].Body != "first" || page.Messages[0].Body != "second" {
		t.Fatalf("history: %+v", page.Messages)
	}
	raw.Publish("im/u/bob/dm/alice", []byte("fence"))
	if got := bob.WaitFor("im/u/bob/dm/alice", 4); len(got) != 4 || string(got[3].Payload) == "" {
		t.Fatalf("bob got %d deliveries", len(got))
	}
}

// TestMQTTSync: a device without HTTP asks on im/sync/{me} and gets the
// feed on im/u/{me}/sync.
func TestMQTTSync(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	s.User("bob")
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	for i := 0; i < 5; i++ {
		alice.Publish("im/u/bob/dm/alice", 1, fmt.Sprint(i))
	}
	bob := s.MustConnect("bob", imtest.ClientOpts{Device: "mcu", Clean: true})
	bob.Publish("im/sync/bob", 1, `{"id":"r1","since":"","limit":3}`)
	got := bob.WaitFor("im/u/bob/sync", 1)
	var rep envelope.SyncReply
	if err := jsonUnmarshal(got[0].Payload, &rep); err != nil || rep.ID != "r1" || len(rep.Messages) != 3 || !rep.More {
		t.Fatalf("reply %s: %v", got[0].Payload, err)
	}
	bob.Publish("im/sync/bob", 1, fmt.Sprintf(`{"since":%q}`, rep.Cursor))
	got = bob.WaitFor("im/u/bob/sync", 2)
	jsonUnmarshal(got[1].Payload, &rep)
	if len(rep.Messages) != 2 || rep.More || rep.Messages[1].Body != "4" {
		t.Fatalf("second reply %s", got[1].Payload)
	}
	bob.Publish("im/sync/bob", 1, `{"since":"otherepoch-3"}`)
	got = bob.WaitFor("im/u/bob/sync", 3)
	jsonUnmarshal(got[2].Payload, &rep)
	if !rep.Reset {
		t.Fatalf("foreign epoch reply %s", got[2].Payload)
	}
	bob.Publish("im/sync/alice", 1, `{}`)
	bob.WaitFor("im/u/bob/error", 1)
}
