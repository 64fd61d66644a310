// Package historytest is the contract every history.Store implementation
// must pass (the embedded Badger store today, a clustered one later): the
// ordering, sync, idempotency and epoch promises of history's package doc.
package historytest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
)

// Run runs the contract against fresh stores from open (each subtest gets
// its own; open closes it at the test's cleanup).
func Run(t *testing.T, open func(t *testing.T) history.Store) {
	for _, c := range []struct {
		name string
		test func(*testing.T, history.Store)
	}{
		{"concurrent appends are gap-free and ordered", concurrentAppends},
		{"page newest first", pageNewestFirst},
		{"idempotent append", idempotentAppend},
		{"conversations and read markers", conversationsAndReadMarkers},
		{"head and foreign epochs", headAndForeignEpoch},
		{"async appends complete in order", asyncAppendsInOrder},
		{"annotations change the message they refer to", annotations},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, open(t)) })
	}
}

func dm(from, to, body string) history.AppendRequest {
	return history.AppendRequest{Conv: history.DM(from, to), Msg: envelope.Message{From: from, To: to, Type: "text", Body: body}, Recipients: []string{to, from}}
}

// headAndForeignEpoch: Head is the end of the feed (a sync from it returns
// only what comes later), and a cursor of another epoch is refused.
func headAndForeignEpoch(t *testing.T, s history.Store) {
	ctx := context.Background()
	s.Append(ctx, dm("a", "b", "before"))
	head, err := s.Head(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	s.Append(ctx, dm("a", "b", "after"))
	p, err := s.Sync(ctx, "b", head, 10)
	if err != nil || len(p.Messages) != 1 || p.Messages[0].Body != "after" {
		t.Fatalf("sync from head: %+v %v", p, err)
	}
	if _, err := s.Sync(ctx, "b", history.Cursor{Epoch: "not-" + s.Epoch(), Pos: 1}, 10); !errors.Is(err, history.ErrCursorEpoch) {
		t.Fatalf("foreign epoch: %v, want ErrCursorEpoch", err)
	}
}

// Concurrent appends to one conversation get gap-free seqs, and every
// recipient's feed holds each message exactly once, in seq order.
func concurrentAppends(t *testing.T, s history.Store) {
	ctx := context.Background()
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.Append(ctx, dm("alice", "bob", fmt.Sprintf("%d-%d", w, i))); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	var all []envelope.Message
	cur := history.Cursor{}
	for {
		p, err := s.Sync(ctx, "bob", cur, 37)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Messages...)
		cur = p.Next
		if !p.More {
			break
		}
	}
	if len(all) != writers*each {
		t.Fatalf("synced %d, want %d", len(all), writers*each)
	}
	seen := map[string]bool{}
	for i, m := range all {
		if m.Seq != uint64(i+1) {
			t.Fatalf("feed position %d has seq %d", i, m.Seq)
		}
		if seen[m.ID] {
			t.Fatalf("duplicate id %s", m.ID)
		}
		seen[m.ID] = true
	}
	// Nothing after the final cursor.
	if p, _ := s.Sync(ctx, "bob", cur, 10); len(p.Messages) != 0 || p.More {
		t.Fatalf("sync past end: %+v", p)
	}
}

func pageNewestFirst(t *testing.T, s history.Store) {
	ctx := context.Background()
	for i := 1; i <= 7; i++ {
		s.Append(ctx, dm("a", "b", fmt.Sprint(i)))
	}
	cases := []struct {
		before    uint64
		limit     int
		wantFirst uint64
		wantN     int
		more      bool
	}{
		{0, 3, 7, 3, true},
		{5, 3, 4, 3, true},
		{4, 3, 3, 3, false},
		{2, 10, 1, 1, false},
		{1, 10, 0, 0, false},
		{100, 2, 7, 2, true},
	}
	for _, c := range cases {
		ms, more, err := s.Page(ctx, history.DM("a", "b"), c.before, c.limit)
		if err != nil || len(ms) != c.wantN || more != c.more || (c.wantN > 0 && ms[0].Seq != c.wantFirst) {
			t.Errorf("Page(before=%d, limit=%d) = %d msgs (first %v), more=%v, err=%v", c.before, c.limit, len(ms), ms, more, err)
		}
		for i := 1; i < len(ms); i++ {
			if ms[i].Seq != ms[i-1].Seq-1 {
				t.Errorf("page not contiguous: %v", ms)
			}
		}
	}
}

func idempotentAppend(t *testing.T, s history.Store) {
	ctx := context.Background()
	r := dm("a", "b", "x")
	r.IdemKey, r.IdemCheck = "c/a/1", true
	first, _ := s.Append(ctx, r)
	again, _ := s.Append(ctx, r)
	if first.Duplicate || !again.Duplicate || again.Msg.ID != first.Msg.ID {
		t.Fatalf("first %+v again %+v", first, again)
	}
	// Recorded but not checked: a fresh publish that reuses a packet id.
	r2 := dm("a", "b", "y")
	r2.IdemKey = "p/a:dev/1/abc"
	s.Append(ctx, r2)
	r2.IdemCheck = false
	if res, _ := s.Append(ctx, r2); res.Duplicate {
		t.Fatal("unchecked key reported duplicate")
	}
	r2.IdemCheck = true
	if res, _ := s.Append(ctx, r2); !res.Duplicate {
		t.Fatal("checked retransmission not detected")
	}
	ms, _, _ := s.Page(ctx, history.DM("a", "b"), 0, 10)
	if len(ms) != 3 {
		t.Fatalf("stored %d", len(ms))
	}
}

func conversationsAndReadMarkers(t *testing.T, s history.Store) {
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		s.Append(ctx, dm("a", "b", "x"))
	}
	s.Append(ctx, history.AppendRequest{Conv: history.Group("g"), Msg: envelope.Message{From: "c", Group: "g", Body: "g1"}, Recipients: []string{"a", "b", "c"}})
	sums, err := s.Conversations(ctx, "b")
	if err != nil || len(sums) != 2 || sums[0].Conv != history.Group("g") || sums[1].Unread != 3 || sums[0].Unread != 1 {
		t.Fatalf("conversations: %+v %v", sums, err)
	}
	s.MarkRead(ctx, "b", history.DM("a", "b"), 99) // clamped to the last seq
	s.MarkRead(ctx, "b", history.DM("a", "b"), 1)  // never moves back
	sums, _ = s.Conversations(ctx, "b")
	if sums[1].Read != 3 || sums[1].Unread != 0 {
		t.Fatalf("after mark read: %+v", sums[1])
	}
}

// asyncAppendsInOrder: AppendAsync's callbacks run once each, in the order
// the appends were queued, with seqs in that order, and what they report is
// stored (a sync finds it).
func asyncAppendsInOrder(t *testing.T, s history.Store) {
	ctx := context.Background()
	const n = 200
	var mu sync.Mutex
	var got []uint64
	done := make(chan struct{})
	for i := 0; i < n; i++ {
		err := s.AppendAsync(ctx, dm("a", "b", fmt.Sprint(i)), func(res history.AppendResult, err error) {
			if err != nil {
				t.Errorf("append: %v", err)
			}
			mu.Lock()
			got = append(got, res.Msg.Seq)
			if len(got) == n {
				close(done)
			}
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("async appends not all completed after 10s")
	}
	mu.Lock()
	defer mu.Unlock()
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("callback %d reported seq %d", i, seq)
		}
	}
	p, err := s.Sync(ctx, "b", history.Cursor{}, n+1)
	if err != nil || len(p.Messages) != n || p.Messages[n-1].Body != fmt.Sprint(n-1) {
		t.Fatalf("sync after async appends: %d messages, %v", len(p.Messages), err)
	}
}

// annotations: edits, retracts and reactions are messages of their own and
// change the message they refer to, as Page, Lookup and Sync return it.
func annotations(t *testing.T, s history.Store) {
	ctx := context.Background()
	conv := history.DM("a", "b")
	orig, err := s.Append(ctx, dm("a", "b", "helo"))
	if err != nil {
		t.Fatal(err)
	}
	id := orig.Msg.ID
	note := func(from, typ, body string) envelope.Message {
		to := map[string]string{"a": "b", "b": "a"}[from]
		r := dm(from, to, body)
		r.Msg.Type, r.Msg.Ref = typ, id
		res, err := s.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg
	}
	check := func(step string, want func(m envelope.Message) string) {
		t.Helper()
		m, err := s.Lookup(ctx, conv, id)
		if err != nil {
			t.Fatalf("%s: lookup: %v", step, err)
		}
		ms, _, err := s.Page(ctx, conv, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		paged := ms[len(ms)-1]
		for _, got := range []envelope.Message{m, paged} {
			if msg := want(got); msg != "" {
				t.Fatalf("%s: %s (message %+v)", step, msg, got)
			}
		}
	}
	edit := note("a", envelope.TypeEdit, "hello")
	check("edit", func(m envelope.Message) string {
		if m.Body != "hello" || m.Edited != edit.TS || m.Seq != orig.Msg.Seq {
			return "want the latest body, edited = the edit's ts, the original's seq"
		}
		return ""
	})
	note("b", envelope.TypeReaction, "👍")
	note("a", envelope.TypeReaction, "👍")
	note("b", envelope.TypeReaction, "🎉") // replaces b's 👍
	check("reactions", func(m envelope.Message) string {
		if fmt.Sprint(m.Reactions) != "map[🎉:[b] 👍:[a]]" {
			return fmt.Sprintf("reactions %v", m.Reactions)
		}
		return ""
	})
	note("a", envelope.TypeReaction, "")
	check("reaction removed", func(m envelope.Message) string {
		if fmt.Sprint(m.Reactions) != "map[🎉:[b]]" {
			return fmt.Sprintf("reactions %v", m.Reactions)
		}
		return ""
	})
	note("a", envelope.TypeRetract, "")
	note("a", envelope.TypeEdit, "after retract") // changes nothing
	check("retract", func(m envelope.Message) string {
		if !m.Retracted || m.Body != "" || m.Reactions != nil {
			return "want retracted, no body, no reactions"
		}
		return ""
	})
	if b := string(envelope.Marshal(mustLookup(t, s, conv, id))); strings.Contains(b, `"body"`) {
		t.Fatalf("a retracted message encodes a body: %s", b)
	}
	// Each annotation is a message of its own, in the feed.
	p, err := s.Sync(ctx, "b", history.Cursor{}, 100)
	if err != nil || len(p.Messages) != 8 {
		t.Fatalf("feed: %d messages, %v", len(p.Messages), err)
	}
	if p.Messages[1].Type != envelope.TypeEdit || p.Messages[1].Ref != id || p.Messages[1].Seq != 2 {
		t.Fatalf("the edit in the feed: %+v", p.Messages[1])
	}
	// The conversation's summary: annotations are neither its last message
	// nor unread (b's own reaction at seq 5 read up to it; above it, a's
	// three annotations, which are not).
	sums, err := s.Conversations(ctx, "b")
	if err != nil || len(sums) != 1 || sums[0].Read != 5 || sums[0].Unread != 0 || sums[0].Last == nil || sums[0].Last.ID != id {
		t.Fatalf("b's conversations after annotations: %+v %v", sums, err)
	}
	if _, err := s.Lookup(ctx, conv, "000000000000-000000"); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("lookup of no message: %v, want ErrNotFound", err)
	}
	if _, err := s.Lookup(ctx, history.DM("a", "c"), id); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("lookup in another conversation: %v, want ErrNotFound", err)
	}
}

func mustLookup(t *testing.T, s history.Store, conv history.ConvID, id string) envelope.Message {
	t.Helper()
	m, err := s.Lookup(context.Background(), conv, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
