package history

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/kvstore"
)

func open(t testing.TB, dir string, sync bool) *Badger {
	t.Helper()
	db, err := kvstore.Open(dir, kvstore.Options{SyncWrites: sync}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return openOn(t, db, err, BadgerOptions{})
}

// openOn opens the store over db (err: db's opening error), closing both at
// the end of the test.
func openOn(t testing.TB, db *badger.DB, err error, o BadgerOptions) *Badger {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenBadger(db, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); db.Close() })
	return s
}

func dm(from, to, body string) AppendRequest {
	return AppendRequest{Conv: DM(from, to), Msg: envelope.Message{From: from, To: to, Type: "text", Body: body}, Recipients: []string{to, from}}
}

// Concurrent appends to one conversation get gap-free seqs, and every
// recipient's feed holds each message exactly once, in seq order.
func TestConcurrentAppendsAreGapFreeAndOrdered(t *testing.T) {
	s := open(t, t.TempDir(), false)
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
	cur := Cursor{}
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

func TestPageNewestFirst(t *testing.T) {
	s := open(t, t.TempDir(), false)
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
		ms, more, err := s.Page(ctx, DM("a", "b"), c.before, c.limit)
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

func TestIdempotentAppend(t *testing.T) {
	s := open(t, t.TempDir(), false)
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
	ms, _, _ := s.Page(ctx, DM("a", "b"), 0, 10)
	if len(ms) != 3 {
		t.Fatalf("stored %d", len(ms))
	}
}

func TestReopenContinuesSequencesAndRejectsForeignEpoch(t *testing.T) {
	dir := t.TempDir()
	db, _ := kvstore.Open(dir, kvstore.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s, _ := OpenBadger(db, BadgerOptions{})
	ctx := context.Background()
	s.Append(ctx, dm("a", "b", "1"))
	s.Append(ctx, dm("a", "b", "2"))
	epoch := s.Epoch()
	s.Close()
	db.Close()

	s2 := open(t, dir, false)
	if s2.Epoch() != epoch {
		t.Fatalf("epoch changed across reopen")
	}
	res, _ := s2.Append(ctx, dm("b", "a", "3"))
	if res.Msg.Seq != 3 {
		t.Fatalf("seq after reopen = %d", res.Msg.Seq)
	}
	p, _ := s2.Sync(ctx, "a", Cursor{Epoch: epoch, Pos: 2}, 10)
	if len(p.Messages) != 1 || p.Messages[0].Body != "3" {
		t.Fatalf("sync after reopen: %+v", p)
	}
	if _, err := s2.Sync(ctx, "a", Cursor{Epoch: "other", Pos: 1}, 10); err != ErrCursorEpoch {
		t.Fatalf("foreign epoch: %v", err)
	}
	c, err := ParseCursor(p.Next.String())
	if err != nil || c != p.Next {
		t.Fatalf("cursor round trip %v %v", c, err)
	}
	for _, bad := range []string{"nodash", "-5", "e-x"} {
		if _, err := ParseCursor(bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

func TestConversationsAndReadMarkers(t *testing.T) {
	s := open(t, t.TempDir(), false)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		s.Append(ctx, dm("a", "b", "x"))
	}
	s.Append(ctx, AppendRequest{Conv: Group("g"), Msg: envelope.Message{From: "c", Group: "g", Body: "g1"}, Recipients: []string{"a", "b", "c"}})
	sums, err := s.Conversations(ctx, "b")
	if err != nil || len(sums) != 2 || sums[0].Conv != Group("g") || sums[1].Unread != 3 || sums[0].Unread != 1 {
		t.Fatalf("conversations: %+v %v", sums, err)
	}
	s.MarkRead(ctx, "b", DM("a", "b"), 99) // clamped to the last seq
	s.MarkRead(ctx, "b", DM("a", "b"), 1)  // never moves back
	sums, _ = s.Conversations(ctx, "b")
	if sums[1].Read != 3 || sums[1].Unread != 0 {
		t.Fatalf("after mark read: %+v", sums[1])
	}
}

// BenchmarkAppend measures the durable write path: parallel publishers
// appending 1:1 messages, with fsync per group commit and without.
func BenchmarkAppend(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			s := open(b, b.TempDir(), fsync)
			ctx := context.Background()
			var n sync.Mutex
			i := 0
			b.SetParallelism(64) // many publishers, as on a busy broker
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				n.Lock()
				i++
				me := fmt.Sprintf("u%d", i)
				n.Unlock()
				for pb.Next() {
					if _, err := s.Append(ctx, dm(me, "peer", "a 40-byte message body for benchmarking")); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkPage50 measures a history page of 50 from a 100k-message conversation.
func BenchmarkPage50(b *testing.B) {
	s := open(b, b.TempDir(), false)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < 100; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				s.Append(ctx, dm("a", "b", "history benchmark message"))
			}
		}()
	}
	wg.Wait()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := uint64(1 + (i*7919)%100000)
		if _, _, err := s.Page(ctx, DM("a", "b"), before, 50); err != nil {
			b.Fatal(err)
		}
	}
}

// Below the disk reserve an append fails with kvstore.ErrFull and stores
// nothing; with room again, seqs go on without a gap.
func TestAppendRefusedBelowTheDiskReserve(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	space := kvstore.NewSpace(t.TempDir(), 1<<20, func(string) (uint64, error) { return free.Load(), nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	db, err := kvstore.Open(t.TempDir(), kvstore.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s := openOn(t, db, err, BadgerOptions{Space: space})
	ctx := context.Background()
	if _, err := s.Append(ctx, dm("alice", "bob", "1")); err != nil {
		t.Fatal(err)
	}
	free.Store(1 << 10)
	if _, err := s.Append(ctx, dm("alice", "bob", "refused")); !errors.Is(err, kvstore.ErrFull) {
		t.Fatalf("append on a full disk: %v, want ErrFull", err)
	}
	free.Store(1 << 30)
	res, err := s.Append(ctx, dm("alice", "bob", "2"))
	if err != nil || res.Msg.Seq != 2 {
		t.Fatalf("append with room again: %+v %v, want seq 2", res.Msg, err)
	}
	msgs, _, err := s.Page(ctx, DM("alice", "bob"), 0, 10)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("page: %d messages, %v", len(msgs), err)
	}
}
