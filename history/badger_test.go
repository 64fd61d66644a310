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
