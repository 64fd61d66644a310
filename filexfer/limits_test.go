package filexfer

import (
	"bytes"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/checkfor"
)

// describe feeds e a Describe frame as if it came from the peer on ch.
func describe(t *testing.T, e *Engine, ch Channel, fi FileInfo) {
	t.Helper()
	b, err := describeFrame(fi).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.HandleFrame(ch, b); err != nil {
		t.Fatal(err)
	}
}

func lastCancel(t *testing.T, r *recorder) CancelReason {
	t.Helper()
	f, err := Decode(r.last())
	if err != nil || f.Type != TypeCancel {
		t.Fatalf("last frame sent: %x (%v), want a cancel", r.last(), err)
	}
	return f.Reason
}

// A declared chunk size of one byte must not turn a large file into
// billions of chunks of bookkeeping: beyond MaxChunks the offer is refused
// with a reason before the application hears of it.
func TestTooManyChunksRefused(t *testing.T) {
	var offered atomic.Int64
	var results []Result
	e := NewEngine(Config{MaxChunks: 1000, OnOffer: func(FileInfo) { offered.Add(1) }, OnDone: func(r Result) { results = append(results, r) }})
	defer e.Close()
	sent := &recorder{}
	e.Attach(sent)
	describe(t, e, sent, FileInfo{ID: "big", Name: "f", Size: 1001, ChunkSize: 1})
	if offered.Load() != 0 {
		t.Fatal("an offer over MaxChunks reached OnOffer")
	}
	if got := lastCancel(t, sent); got != ReasonTooLarge {
		t.Fatalf("cancel reason %d, want %d", got, ReasonTooLarge)
	}
	if len(results) != 1 || !errors.Is(results[0].Err, ErrTooLarge) || results[0].Remote {
		t.Fatalf("results %+v", results)
	}
	describe(t, e, sent, FileInfo{ID: "fits", Name: "f", Size: 1000, ChunkSize: 1})
	if offered.Load() != 1 {
		t.Fatal("an offer of MaxChunks chunks was not offered")
	}
}

// An offer that is not (yet) accepted costs no memory per chunk, whatever
// chunk count it declares.
func TestOfferAllocatesNothingPerChunk(t *testing.T) {
	e := NewEngine(Config{OnOffer: func(FileInfo) {}})
	defer e.Close()
	sent := &recorder{}
	e.Attach(sent)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 8 {
		describe(t, e, sent, FileInfo{ID: string(rune('a' + i)), Name: "f", Size: DefaultMaxChunks, ChunkSize: 1})
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("8 offers of %d chunks allocated %d bytes", DefaultMaxChunks, grew)
	}
}

// Refuse tells the sender why, and the sender's Result says so.
func TestRefuseTellsSenderWhy(t *testing.T) {
	for _, c := range []struct {
		reason CancelReason
		want   error
	}{{ReasonTooLarge, ErrTooLarge}, {ReasonBusy, ErrBusy}} {
		pp := newPeerPair(t, Config{}, nil)
		pp.decide = func(FileInfo) (Sink, CancelReason) { return nil, c.reason }
		info, _ := pp.a.SendFile("f", "", bytes.NewReader([]byte("x")), 1)
		pp.waitBothDone(t, info.ID, c.want)
		for _, r := range pp.resultsFor(info.ID) {
			if r.Remote != (r.Dir == Sending) {
				t.Fatalf("reason %d: %s result Remote=%v", c.reason, r.Dir, r.Remote)
			}
		}
	}
}

// committingSink records whether Commit ran and fails it on demand.
type committingSink struct {
	MemSink
	fail      error
	committed atomic.Bool
}

func (c *committingSink) Commit() error {
	if c.fail != nil {
		return c.fail
	}
	c.committed.Store(true)
	return nil
}

// Complete goes out only once the sink has saved the file: a file the
// receiver failed to save is not reported delivered to the sender.
func TestCompleteOnlyAfterCommit(t *testing.T) {
	for _, fail := range []error{nil, errors.New("file name too long")} {
		pp := newPeerPair(t, Config{}, nil)
		sink := &committingSink{fail: fail}
		pp.decide = func(FileInfo) (Sink, CancelReason) { return sink, 0 }
		data := randomBytes(100000, 9)
		info, _ := pp.a.SendFile("f", "", bytes.NewReader(data), int64(len(data)))
		want := error(nil)
		if fail != nil {
			want = ErrIO
		}
		pp.waitBothDone(t, info.ID, want)
		if fail == nil && !sink.committed.Load() {
			t.Fatal("complete without commit")
		}
	}
}

// An accepted file that stops receiving data (the sender vanished or went
// silent) ends after StallTimeout and the sender is told.
func TestStalledTransferEnds(t *testing.T) {
	var chunks atomic.Int64
	dropAfter10 := func(b []byte) bool { return isChunk(b) && chunks.Add(1) > 10 }
	pp := newPeerPair(t, Config{StallTimeout: 300 * time.Millisecond, RequestTimeout: 100 * time.Millisecond}, dropAfter10)
	data := randomBytes(100*DefaultChunkSize, 8)
	info, _ := pp.a.SendFile("f", "", bytes.NewReader(data), int64(len(data)))
	checkfor.True(t, 10*time.Second, "both results", func() bool { return len(pp.resultsFor(info.ID)) >= 2 })
	for _, r := range pp.resultsFor(info.ID) {
		want := ErrStalled
		if r.Dir == Sending {
			want = ErrCancelled
		}
		if !errors.Is(r.Err, want) || r.Remote != (r.Dir == Sending) {
			t.Fatalf("%s: %v remote=%v", r.Dir, r.Err, r.Remote)
		}
	}
}

// A peer offering file after file cannot grow the engine without bound:
// ended incoming files are forgotten beyond maxEndedIncoming.
func TestEndedOffersForgotten(t *testing.T) {
	e := NewEngine(Config{OnOffer: func(FileInfo) {}})
	defer e.Close()
	sent := &recorder{}
	e.Attach(sent)
	for i := range maxEndedIncoming + 100 {
		id := NewFileID()
		describe(t, e, sent, FileInfo{ID: id, Name: "f", Size: uint64(i), ChunkSize: DefaultChunkSize})
		if err := e.Decline(id); err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	n := len(e.in)
	e.mu.Unlock()
	if n > maxEndedIncoming {
		t.Fatalf("%d incoming records kept", n)
	}
}
