package filexfer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/checkfor"
)

// pipe is one direction of an in-memory Channel: frames are delivered in
// order to the peer engine by a goroutine, and drop may lose some.
type pipe struct {
	local  Channel // the receiving engine's own channel for this link
	q      chan []byte
	drop   func(f []byte) bool
	closed atomic.Bool
	done   chan struct{}
}

var errPipeClosed = errors.New("pipe closed")

func newPipe(to *Engine, drop func([]byte) bool) *pipe {
	p := &pipe{q: make(chan []byte, 256), drop: drop, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for b := range p.q {
			if !p.closed.Load() {
				_ = to.HandleFrame(p.local, b)
			}
		}
	}()
	return p
}

func (p *pipe) Send(b []byte) error {
	if p.closed.Load() {
		return errPipeClosed
	}
	if p.drop != nil && p.drop(b) {
		return nil
	}
	defer func() { _ = recover() }() // send on closed channel after a race with close
	p.q <- bytes.Clone(b)
	return nil
}

func (p *pipe) close() {
	if p.closed.CompareAndSwap(false, true) {
		close(p.q)
		<-p.done
	}
}

// peerPair is two engines and the results they reported.
type peerPair struct {
	a, b       *Engine
	ab, ba     *pipe
	mu         sync.Mutex
	results    map[string][]Result // by file id, both sides
	progress   map[string]uint64   // last Bytes reported by the receiver
	sinks      map[string]*MemSink
	autoAccept bool
	// decide, if set, answers offers instead: accept into the sink it
	// returns, or refuse with reason when the sink is nil.
	decide func(FileInfo) (Sink, CancelReason)
}

func newPeerPair(t *testing.T, cfg Config, dropAB func([]byte) bool) *peerPair {
	t.Helper()
	pp := &peerPair{results: map[string][]Result{}, progress: map[string]uint64{}, sinks: map[string]*MemSink{}, autoAccept: true}
	// a only sends, b only receives; both report into pp.
	a := cfg
	a.OnDone = func(r Result) {
		pp.mu.Lock()
		pp.results[r.File.ID] = append(pp.results[r.File.ID], r)
		pp.mu.Unlock()
	}
	a.OnProgress = func(p Progress) {
		if p.Dir == Receiving {
			pp.mu.Lock()
			pp.progress[p.File.ID] = p.Bytes
			pp.mu.Unlock()
		}
	}
	b := a
	b.OnOffer = func(fi FileInfo) {
		pp.mu.Lock()
		accept, decide := pp.autoAccept, pp.decide
		s := &MemSink{}
		pp.sinks[fi.ID] = s
		pp.mu.Unlock()
		if decide != nil {
			go func() {
				if sink, reason := decide(fi); sink != nil {
					_ = pp.b.Accept(fi.ID, sink)
				} else {
					_ = pp.b.Refuse(fi.ID, reason)
				}
			}()
			return
		}
		go func() {
			if accept {
				_ = pp.b.Accept(fi.ID, s)
			} else {
				_ = pp.b.Decline(fi.ID)
			}
		}()
	}
	pp.a, pp.b = NewEngine(a), NewEngine(b)
	pp.connect(dropAB)
	t.Cleanup(func() {
		pp.disconnect()
		pp.a.Close()
		pp.b.Close()
	})
	return pp
}

func (pp *peerPair) connect(dropAB func([]byte) bool) {
	pp.ab, pp.ba = newPipe(pp.b, dropAB), newPipe(pp.a, nil)
	pp.ab.local, pp.ba.local = pp.ba, pp.ab
	pp.a.Attach(pp.ab)
	pp.b.Attach(pp.ba)
}

func (pp *peerPair) disconnect() {
	pp.a.Detach(pp.ab)
	pp.b.Detach(pp.ba)
	pp.ab.close()
	pp.ba.close()
}

func (pp *peerPair) sink(id string) *MemSink {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.sinks[id]
}

func (pp *peerPair) resultsFor(id string) []Result {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return append([]Result(nil), pp.results[id]...)
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// waitBothDone waits for the receiver's and the sender's result and checks them.
func (pp *peerPair) waitBothDone(t *testing.T, id string, want error) {
	t.Helper()
	checkfor.True(t, 20*time.Second, "both results of "+id, func() bool { return len(pp.resultsFor(id)) >= 2 })
	for _, r := range pp.resultsFor(id) {
		if !errors.Is(r.Err, want) {
			t.Fatalf("%s result %v, want %v", r.Dir, r.Err, want)
		}
	}
}

func isChunk(b []byte) bool { return len(b) > 0 && Type(b[0]) == TypeChunk }

func TestTransferSmallAndEmpty(t *testing.T) {
	pp := newPeerPair(t, Config{}, nil)
	for _, size := range []int{0, 1, DefaultChunkSize, DefaultChunkSize + 1, 1<<20 + 123} {
		data := randomBytes(size, uint64(size))
		info, err := pp.a.SendFile("f.bin", "application/octet-stream", bytes.NewReader(data), int64(size))
		if err != nil {
			t.Fatal(err)
		}
		pp.waitBothDone(t, info.ID, nil)
		if got := pp.sink(info.ID).Bytes(); !bytes.Equal(got, data) && !(size == 0 && len(got) == 0) {
			t.Fatalf("size %d: received %d bytes, differ", size, len(got))
		}
		pp.mu.Lock()
		p := pp.progress[info.ID]
		pp.mu.Unlock()
		if size > 0 && p != uint64(size) {
			t.Fatalf("size %d: last progress %d", size, p)
		}
	}
}

func TestTransferRecoversDroppedChunks(t *testing.T) {
	var n atomic.Int64
	dropEvery7th := func(b []byte) bool { return isChunk(b) && n.Add(1)%7 == 0 }
	pp := newPeerPair(t, Config{RequestTimeout: 200 * time.Millisecond}, dropEvery7th)
	data := randomBytes(3<<20, 1)
	info, _ := pp.a.SendFile("f", "", bytes.NewReader(data), int64(len(data)))
	pp.waitBothDone(t, info.ID, nil)
	if !bytes.Equal(pp.sink(info.ID).Bytes(), data) {
		t.Fatal("data differs")
	}
	st, _ := pp.b.Stats(info.ID)
	if st.ReRequests == 0 || st.Received != int(info.Chunks()) {
		t.Fatalf("stats %+v", st)
	}
}

func TestTransferRecoversLostTailByTimeout(t *testing.T) {
	// Dropping the last chunk once leaves no later chunk to reveal the
	// loss, so only the request timeout can recover it.
	var dropped atomic.Bool
	const chunks = 10
	dropLast := func(b []byte) bool {
		f, _ := Decode(b)
		return f.Type == TypeChunk && f.ChunkID == chunks-1 && dropped.CompareAndSwap(false, true)
	}
	pp := newPeerPair(t, Config{RequestTimeout: 100 * time.Millisecond}, dropLast)
	data := randomBytes(chunks*DefaultChunkSize, 2)
	info, _ := pp.a.SendFile("f", "", bytes.NewReader(data), int64(len(data)))
	pp.waitBothDone(t, info.ID, nil)
	if st, _ := pp.b.Stats(info.ID); !dropped.Load() || st.ReRequests != 1 {
		t.Fatalf("dropped %v, stats %+v", dropped.Load(), st)
	}
}

func TestTransferResumesAfterReconnect(t *testing.T) {
	var cut atomic.Bool
	var sent atomic.Int64
	// Break the link after 100 chunks: everything after is lost until reconnect.
	drop := func(b []byte) bool {
		return isChunk(b) && (cut.Load() || sent.Add(1) > 100 && cut.CompareAndSwap(false, true))
	}
	pp := newPeerPair(t, Config{RequestTimeout: time.Hour}, drop)
	data := randomBytes(400*DefaultChunkSize, 3)
	info, _ := pp.a.SendFile("f", "", bytes.NewReader(data), int64(len(data)))
	checkfor.True(t, 10*time.Second, "the cut", cut.Load)
	checkfor.True(t, 10*time.Second, "100 chunks in", func() bool { st, _ := pp.b.Stats(info.ID); return st.Received == 100 })
	pp.disconnect()
	missing, _ := pp.b.Missing(info.ID)
	before, _ := pp.b.Stats(info.ID)
	sentBefore, _ := pp.a.Stats(info.ID)
	if missing != 300 {
		t.Fatalf("missing %d, want 300", missing)
	}
	cut.Store(false)
	sent.Store(-1 << 40)
	pp.connect(drop)
	pp.waitBothDone(t, info.ID, nil)
	after, _ := pp.b.Stats(info.ID)
	sentAfter, _ := pp.a.Stats(info.ID)
	if got := after.Received - before.Received; got != int(missing) {
		t.Fatalf("received %d chunks after resume, want %d", got, missing)
	}
	if got := after.Requested - before.Requested; got != int(missing) {
		t.Fatalf("requested %d chunks after resume, want %d", got, missing)
	}
	if got := sentAfter.Sent - sentBefore.Sent; got != int(missing) {
		t.Fatalf("sender sent %d chunks after resume, want %d", got, missing)
	}
	if !bytes.Equal(pp.sink(info.ID).Bytes(), data) {
		t.Fatal("data differs")
	}
}

func TestCancelFromEitherSide(t *testing.T) {
	for _, side := range []string{"sender", "receiver"} {
		t.Run(side, func(t *testing.T) {
			pp := newPeerPair(t, Config{Window: 4}, nil)
			slow := &slowReader{data: randomBytes(1<<20, 4), gate: make(chan struct{})}
			info, _ := pp.a.SendFile("f", "", slow, int64(len(slow.data)))
			checkfor.True(t, 5*time.Second, "transfer start", func() bool { st, _ := pp.a.Stats(info.ID); return st.Requested > 0 })
			cancel := pp.a
			if side == "receiver" {
				cancel = pp.b
			}
			if err := cancel.Cancel(info.ID); err != nil {
				t.Fatal(err)
			}
			close(slow.gate)
			pp.waitBothDone(t, info.ID, ErrCancelled)
			for _, r := range pp.resultsFor(info.ID) {
				if (r.Dir == Sending) == (side == "sender") == r.Remote {
					t.Fatalf("%s result Remote=%v", r.Dir, r.Remote)
				}
			}
			if err := cancel.Cancel(info.ID); !errors.Is(err, ErrUnknownFile) {
				t.Fatalf("second cancel: %v", err)
			}
		})
	}
}

// slowReader holds chunk reads after the first until gate is closed (the
// hashing pass, which reads more than a chunk at a time, is free).
type slowReader struct {
	data  []byte
	gate  chan struct{}
	reads atomic.Int64
}

func (s *slowReader) ReadAt(p []byte, off int64) (int, error) {
	if len(p) <= DefaultChunkSize && s.reads.Add(1) > 1 {
		<-s.gate
	}
	return bytes.NewReader(s.data).ReadAt(p, off)
}

func TestDecline(t *testing.T) {
	pp := newPeerPair(t, Config{}, nil)
	pp.autoAccept = false
	info, _ := pp.a.SendFile("f", "", bytes.NewReader([]byte("x")), 1)
	checkfor.True(t, 5*time.Second, "results", func() bool { return len(pp.resultsFor(info.ID)) >= 2 })
	// The Cancel's reason tells the sender it was declined.
	for _, r := range pp.resultsFor(info.ID) {
		if !errors.Is(r.Err, ErrDeclined) || r.Remote != (r.Dir == Sending) {
			t.Fatalf("%s: %v remote=%v", r.Dir, r.Err, r.Remote)
		}
	}
}

func TestHashMismatch(t *testing.T) {
	pp := newPeerPair(t, Config{}, nil)
	data := randomBytes(100000, 5)
	// The chunks are not what was hashed: what arrives does not match.
	info, _ := pp.a.SendFile("f", "", changingReader(data), int64(len(data)))
	checkfor.True(t, 5*time.Second, "results", func() bool { return len(pp.resultsFor(info.ID)) >= 2 })
	for _, r := range pp.resultsFor(info.ID) {
		if !errors.Is(r.Err, ErrHashMismatch) || r.Remote != (r.Dir == Sending) {
			t.Fatalf("%s: %v", r.Dir, r.Err)
		}
	}
}

func TestSeveralFilesBothWays(t *testing.T) {
	pp := newPeerPair(t, Config{}, nil)
	files := map[string][]byte{}
	for i := range 3 {
		data := randomBytes(500000+i*7000, uint64(10+i))
		info, _ := pp.a.SendFile("f", "", bytes.NewReader(data), int64(len(data)))
		files[info.ID] = data
	}
	for id, data := range files {
		pp.waitBothDone(t, id, nil)
		if !bytes.Equal(pp.sink(id).Bytes(), data) {
			t.Fatalf("%s differs", id)
		}
		var sum [32]byte = sha256.Sum256(data)
		if r := pp.resultsFor(id)[0]; r.File.SHA256 != sum {
			t.Fatal("sha mismatch in FileInfo")
		}
	}
}

func TestUnsolicitedFrames(t *testing.T) {
	e := NewEngine(Config{})
	defer e.Close()
	sent := &recorder{}
	e.Attach(sent)
	for _, f := range []Frame{
		{Type: TypeChunk, FileID: "nobody", Data: []byte("x")},
		{Type: TypeCancel, FileID: "nobody"},
		{Type: TypeComplete, FileID: "nobody"},
	} {
		b, _ := f.Encode()
		if err := e.HandleFrame(sent, b); err != nil {
			t.Fatalf("%s: %v", f.Type, err)
		}
	}
	b, _ := (&Frame{Type: TypeRequest, FileID: "nobody", Ranges: []Range{{0, 1}}}).Encode()
	if err := e.HandleFrame(sent, b); !errors.Is(err, ErrUnknownFile) {
		t.Fatalf("request: %v", err)
	}
	if f, _ := Decode(sent.last()); f == nil || f.Type != TypeCancel {
		t.Fatalf("answer to an unknown request: %x", sent.last())
	}
	if err := e.HandleFrame(sent, []byte{0x99}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("garbage: %v", err)
	}
}

// changingReader is a file that changes under the sender: the hashing pass
// (reads larger than a chunk) sees it as it was, chunk reads see byte 5
// flipped.
type changingReader []byte

func (c changingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := bytes.NewReader(c).ReadAt(p, off)
	if len(p) <= DefaultChunkSize && off <= 5 && 5 < off+int64(n) {
		p[5-off] ^= 1
	}
	return n, err
}

type recorder struct {
	mu     sync.Mutex
	frames [][]byte
}

func (r *recorder) Send(b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, bytes.Clone(b))
	return nil
}

func (r *recorder) last() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.frames) == 0 {
		return nil
	}
	return r.frames[len(r.frames)-1]
}
