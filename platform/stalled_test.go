package platform_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// TestStalledSubscriberDoesNotDelayOthers: bob's device subscribes and then
// never reads its socket again. Group traffic to alice, bob and carol keeps
// flowing to carol without waiting on bob; the server holds no more for bob
// than his delivery window (his session is a cursor: the rest stays in the
// log); bob later catches up completely through sync.
func TestStalledSubscriberDoesNotDelayOthers(t *testing.T) {
	s := imtest.Start(t, "")
	tok := s.User("alice")
	s.User("bob")
	s.User("carol")
	s.MustAPI(201, "POST", "/api/v1/groups", tok, map[string]any{"id": "g", "members": []string{"bob", "carol"}}, nil)

	stalled := s.MustDialRaw5("bob:stalled", "bob", imtest.Password)
	if _, err := stalled.Subscribe("im/u/bob/#"); err != nil {
		t.Fatal(err)
	}
	// From here on nobody reads bob's socket.

	var mu sync.Mutex
	var maxLag time.Duration
	received := map[uint64]bool{}
	carol := s.MustConnect("carol", imtest.ClientOpts{NoSub: true})
	carol.Subscribe("im/u/carol/#", 1, func(_ paho.Client, m paho.Message) {
		var e envelope.Message
		if json.Unmarshal(m.Payload(), &e) != nil || e.Seq == 0 {
			return
		}
		lag := time.Since(time.UnixMilli(e.TS))
		mu.Lock()
		received[e.Seq] = true
		if lag > maxLag {
			maxLag = lag
		}
		mu.Unlock()
	}).Wait()

	alice := s.MustConnect("alice", imtest.ClientOpts{NoSub: true})
	// Far more than bob's window (256) and than his socket buffers hold.
	body := strings.Repeat("x", 12<<10)
	const n = 1200
	for i := 0; i < n; i++ {
		alice.Publish("im/g/g", 1, fmt.Sprintf(`{"body":"%d %s"}`, i, body))
	}
	imtest.Eventually(t, "carol receives every message", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(received) == n
	})
	mu.Lock()
	lag := maxLag
	mu.Unlock()
	t.Logf("carol's worst delivery lag with bob stalled: %v", lag)
	// A loose guard (the target is 100 ms, measured by the benchmark): without
	// bounded writes, publishers wait for bob's keepalive (tens of seconds).
	if lag > 3*time.Second {
		t.Fatalf("carol's delivery lagged %v behind a stalled subscriber", lag)
	}

	cl, ok := s.Broker.Server.Clients.Get("bob:stalled")
	if !ok {
		t.Fatal("bob's session is gone")
	}
	if held := cl.State.Inflight.Len(); held > 256 {
		t.Fatalf("the server holds %d unacknowledged messages for bob, more than his window", held)
	}

	// bob comes back and catches up with everything via sync.
	btok := s.Login("bob")
	seen := map[uint64]bool{}
	for _, m := range syncAll(t, s.HTTP, btok) {
		if seen[m.Seq] {
			t.Fatalf("sync returned seq %d twice", m.Seq)
		}
		seen[m.Seq] = true
	}
	if len(seen) != n {
		t.Fatalf("bob caught up with %d of %d", len(seen), n)
	}
}
