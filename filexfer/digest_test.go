package filexfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/transport/v2/test"

	"github.com/mqim/mqim/internal/checkfor"
)

// feedRx is a receiving engine fed frames by the test, standing in for a
// sender; it accepts every offer into a MemSink.
type feedRx struct {
	e       *Engine
	out     *recorder // what the receiver sent
	mu      sync.Mutex
	results []Result
}

func newFeedRx(t *testing.T) *feedRx {
	t.Helper()
	rx := &feedRx{out: &recorder{}}
	rx.e = NewEngine(Config{
		OnOffer: func(fi FileInfo) { _ = rx.e.Accept(fi.ID, &MemSink{}) },
		OnDone: func(r Result) {
			rx.mu.Lock()
			rx.results = append(rx.results, r)
			rx.mu.Unlock()
		},
	})
	rx.e.Attach(rx.out)
	t.Cleanup(rx.e.Close)
	return rx
}

func (rx *feedRx) result() (Result, bool) {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	if len(rx.results) == 0 {
		return Result{}, false
	}
	return rx.results[0], true
}

// ends returns the Complete and Cancel frames the receiver sent.
func (rx *feedRx) ends() []*Frame {
	rx.out.mu.Lock()
	defer rx.out.mu.Unlock()
	var fs []*Frame
	for _, b := range rx.out.frames {
		if f, _ := Decode(b); f != nil && (f.Type == TypeComplete || f.Type == TypeCancel) {
			fs = append(fs, f)
		}
	}
	return fs
}

// feedFile is the file a feedRx case sends: 3 chunks of 1000 bytes or fewer.
type feedFile struct {
	id   string
	data []byte
	sum  [32]byte
}

// feedStep is one thing a test sender does; err is what HandleFrame returned.
type feedStep func(t *testing.T, rx *feedRx, f feedFile) error

const feedChunk = 1000

func (f feedFile) describe(sum [32]byte) *Frame {
	return &Frame{Type: TypeDescribe, FileID: f.id, Name: "f", Size: uint64(len(f.data)), SHA256: sum, ChunkSize: feedChunk}
}

func feed(rx *feedRx, fr *Frame) error {
	b, err := fr.Encode()
	if err != nil {
		panic(err)
	}
	return rx.e.HandleFrame(rx.out, b)
}

var (
	zeroSum  [32]byte
	wrongSum = sha256.Sum256([]byte("something else"))
	goodSum  = [32]byte{'g', 'o', 'o', 'd'} // stands for the file's real SHA-256 in steps
)

// hashOf replaces goodSum by the file's real hash.
func hashOf(sum [32]byte, f feedFile) [32]byte {
	if sum == goodSum {
		return f.sum
	}
	return sum
}

func describeStep(sum [32]byte, zero bool) feedStep {
	return func(t *testing.T, rx *feedRx, f feedFile) error {
		if zero {
			return feed(rx, f.describe(zeroSum))
		}
		return feed(rx, f.describe(hashOf(sum, f)))
	}
}

func digestStep(sum [32]byte) feedStep {
	return func(t *testing.T, rx *feedRx, f feedFile) error {
		return feed(rx, &Frame{Type: TypeDigest, FileID: f.id, SHA256: hashOf(sum, f)})
	}
}

func chunksStep(from, to uint32) feedStep {
	return func(t *testing.T, rx *feedRx, f feedFile) error {
		for c := from; c < to; c++ {
			end := min(len(f.data), int(c+1)*feedChunk)
			if err := feed(rx, &Frame{Type: TypeChunk, FileID: f.id, ChunkID: c, Data: f.data[int(c)*feedChunk : end]}); err != nil {
				return err
			}
		}
		return nil
	}
}

// waitingStep waits until the receiver has hashed the complete file and
// checks that it has concluded nothing: it waits for the sender's digest.
func waitingStep(t *testing.T, rx *feedRx, f feedFile) error {
	checkfor.True(t, 5*time.Second, "the sink hashed", func() bool {
		rx.e.mu.Lock()
		defer rx.e.mu.Unlock()
		in := rx.e.in[f.id]
		return in != nil && in.sum != nil
	})
	if r, ok := rx.result(); ok {
		t.Fatalf("concluded before the digest: %v", r.Err)
	}
	if ends := rx.ends(); len(ends) > 0 {
		t.Fatalf("sent %s before the digest", ends[0].Type)
	}
	return nil
}

var (
	describeZero = describeStep(zeroSum, true)
	describeGood = describeStep(goodSum, false)
	digestGood   = digestStep(goodSum)
)

func TestReceiverDigest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		steps []feedStep
		want  error // the receiver's Result; nil sends Complete, ErrHashMismatch Cancel reason 2
	}{
		{"hash in the describe (a sender without digests)", 2500, []feedStep{describeGood, chunksStep(0, 3)}, nil},
		{"digest before any chunk", 2500, []feedStep{describeZero, digestGood, chunksStep(0, 3)}, nil},
		{"digest before the last chunk", 2500, []feedStep{describeZero, chunksStep(0, 2), digestGood, chunksStep(2, 3)}, nil},
		{"digest after the last chunk", 2500, []feedStep{describeZero, chunksStep(0, 3), waitingStep, digestGood}, nil},
		{"re-describe with the hash stands in for the digest", 2500, []feedStep{describeZero, chunksStep(0, 3), waitingStep, describeGood}, nil},
		{"re-describe with zeros after the digest", 2500, []feedStep{describeZero, digestGood, describeZero, chunksStep(0, 3)}, nil},
		{"empty file, digest after accept", 0, []feedStep{describeZero, waitingStep, digestGood}, nil},
		{"mismatch, digest after the last chunk", 2500, []feedStep{describeZero, chunksStep(0, 3), waitingStep, digestStep(wrongSum)}, ErrHashMismatch},
		{"mismatch, digest before the last chunk", 2500, []feedStep{describeZero, digestStep(wrongSum), chunksStep(0, 3)}, ErrHashMismatch},
		{"mismatch, hash in the describe", 2500, []feedStep{describeStep(wrongSum, false), chunksStep(0, 3)}, ErrHashMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx := newFeedRx(t)
			data := randomBytes(tc.size, 7)
			f := feedFile{id: NewFileID(), data: data, sum: sha256.Sum256(data)}
			for i, step := range tc.steps {
				if err := step(t, rx, f); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			checkfor.True(t, 5*time.Second, "the receiver's result", func() bool { _, ok := rx.result(); return ok })
			r, _ := rx.result()
			if !errors.Is(r.Err, tc.want) {
				t.Fatalf("result %v, want %v", r.Err, tc.want)
			}
			if tc.want == nil && r.File.SHA256 != f.sum {
				t.Fatalf("result carries SHA-256 %x", r.File.SHA256)
			}
			ends := rx.ends()
			switch {
			case len(ends) != 1:
				t.Fatalf("receiver sent %d complete/cancel frames", len(ends))
			case tc.want == nil && ends[0].Type != TypeComplete:
				t.Fatalf("receiver sent %s, want complete", ends[0].Type)
			case tc.want != nil && (ends[0].Type != TypeCancel || ends[0].Reason != ReasonHashMismatch):
				t.Fatalf("receiver sent %s reason %d, want cancel reason 2", ends[0].Type, ends[0].Reason)
			}
		})
	}
}

// TestDigestRefused: digests that make no sense return an error and change
// nothing; the file still arrives when the sender goes on correctly.
func TestDigestRefused(t *testing.T) {
	rawDigest := func(id string, sha []byte) feedStep {
		return func(t *testing.T, rx *feedRx, f feedFile) error {
			b := append([]byte{byte(TypeDigest), 0, byte(len(id))}, id...)
			b = append(append(b, 0, byte(len(sha))), sha...)
			return rx.e.HandleFrame(rx.out, b)
		}
	}
	for _, tc := range []struct {
		name    string
		before  []feedStep
		bad     feedStep
		wantErr error
		after   []feedStep // then the file must arrive
	}{
		{"digest for a file never described", nil, rawDigest("nobody", make([]byte, 32)), ErrUnknownFile, []feedStep{describeZero, digestGood, chunksStep(0, 3)}},
		{"digest of 31 bytes", []feedStep{describeZero}, func(t *testing.T, rx *feedRx, f feedFile) error {
			return rawDigest(f.id, f.sum[:31])(t, rx, f)
		}, ErrInvalidField, []feedStep{digestGood, chunksStep(0, 3)}},
		{"digest of zeros", []feedStep{describeZero}, digestStep(zeroSum), ErrProtocol, []feedStep{digestGood, chunksStep(0, 3)}},
		{"digest other than the described hash", []feedStep{describeGood}, digestStep(wrongSum), ErrProtocol, []feedStep{chunksStep(0, 3)}},
		{"second digest differing", []feedStep{describeZero, digestGood}, digestStep(wrongSum), ErrProtocol, []feedStep{chunksStep(0, 3)}},
		{"re-describe with another hash", []feedStep{describeZero, digestGood}, describeStep(wrongSum, false), ErrProtocol, []feedStep{chunksStep(0, 3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx := newFeedRx(t)
			data := randomBytes(2500, 8)
			f := feedFile{id: NewFileID(), data: data, sum: sha256.Sum256(data)}
			for i, step := range tc.before {
				if err := step(t, rx, f); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if err := tc.bad(t, rx, f); !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			for i, step := range tc.after {
				if err := step(t, rx, f); err != nil {
					t.Fatalf("step %d after: %v", i, err)
				}
			}
			checkfor.True(t, 5*time.Second, "the receiver's result", func() bool { _, ok := rx.result(); return ok })
			if r, _ := rx.result(); r.Err != nil || r.File.SHA256 != f.sum {
				t.Fatalf("result %v, SHA-256 %x", r.Err, r.File.SHA256)
			}
		})
	}
}

func TestDigestOfEndedFileIgnored(t *testing.T) {
	rx := newFeedRx(t)
	data := randomBytes(2500, 9)
	f := feedFile{id: NewFileID(), data: data, sum: sha256.Sum256(data)}
	if err := describeZero(t, rx, f); err != nil {
		t.Fatal(err)
	}
	if err := rx.e.Cancel(f.id); err != nil {
		t.Fatal(err)
	}
	if err := digestGood(t, rx, f); err != nil {
		t.Fatalf("digest after cancel: %v", err)
	}
}

// gatedFile holds the hashing pass (reads larger than a chunk) after its
// first `free` reads until gate is closed; chunk reads always go through.
type gatedFile struct {
	data      []byte
	free      int64
	gate      chan struct{}
	hashReads atomic.Int64
}

func newGatedFile(n int, free int64) *gatedFile {
	return &gatedFile{data: randomBytes(n, uint64(n)), free: free, gate: make(chan struct{})}
}

func (g *gatedFile) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > DefaultChunkSize && g.hashReads.Add(1) > g.free {
		<-g.gate
	}
	return bytes.NewReader(g.data).ReadAt(p, off)
}

// TestSenderServesChunksBeforeHashing: the Describe goes out and every
// chunk is served while the hashing pass is held; the file completes once
// the hash is done (its Digest after the last chunk).
func TestSenderServesChunksBeforeHashing(t *testing.T) {
	pp := newPeerPair(t, Config{}, nil)
	src := newGatedFile(4*hashBlock, 0)
	info, err := pp.a.SendFile("f", "", src, int64(len(src.data)))
	if err != nil {
		t.Fatal(err)
	}
	checkfor.True(t, 10*time.Second, "every chunk received", func() bool { m, ok := pp.b.Missing(info.ID); return ok && m == 0 })
	if n := src.hashReads.Load(); n > 1 {
		t.Fatalf("%d hash reads went through the gate", n)
	}
	if rs := pp.resultsFor(info.ID); len(rs) > 0 {
		t.Fatalf("ended before the digest: %s %v", rs[0].Dir, rs[0].Err)
	}
	close(src.gate)
	pp.waitBothDone(t, info.ID, nil)
	for _, r := range pp.resultsFor(info.ID) {
		if r.File.SHA256 != sha256.Sum256(src.data) {
			t.Fatalf("%s result SHA-256 %x", r.Dir, r.File.SHA256)
		}
	}
}

// TestLostDigestResentOnReattach: a Digest lost with a broken channel is
// made good by the Describe sent again on the next one, which carries it.
func TestLostDigestResentOnReattach(t *testing.T) {
	var dropped atomic.Int64
	dropDigest := func(b []byte) bool {
		if Type(b[0]) != TypeDigest {
			return false
		}
		dropped.Add(1)
		return true // every digest on this first channel
	}
	pp := newPeerPair(t, Config{}, dropDigest)
	data := randomBytes(64*DefaultChunkSize, 11)
	info, _ := pp.a.SendFile("f", "", bytes.NewReader(data), int64(len(data)))
	checkfor.True(t, 10*time.Second, "the digest dropped and the sink hashed", func() bool {
		pp.b.mu.Lock()
		defer pp.b.mu.Unlock()
		in := pp.b.in[info.ID]
		return dropped.Load() == 1 && in != nil && in.sum != nil
	})
	if rs := pp.resultsFor(info.ID); len(rs) > 0 {
		t.Fatalf("ended without the digest: %s %v", rs[0].Dir, rs[0].Err)
	}
	pp.disconnect()
	pp.connect(nil)
	pp.waitBothDone(t, info.ID, nil)
	if r := pp.resultsFor(info.ID)[0]; r.File.SHA256 != sha256.Sum256(data) {
		t.Fatalf("SHA-256 %x", r.File.SHA256)
	}
}

// digests returns the file ids of the Digest frames r recorded.
func (r *recorder) digests() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := map[string]string{}
	for _, b := range r.frames {
		if f, _ := Decode(b); f != nil && f.Type == TypeDigest {
			ids[f.FileID] = hex.EncodeToString(f.SHA256[:])
		}
	}
	return ids
}

// TestHashingStops: a file cancelled, or an engine closed, while the file
// is being hashed stops the hashing pass at the read in progress; the next
// file is hashed, and no goroutine is left once the engine is closed.
func TestHashingStops(t *testing.T) {
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			defer test.CheckRoutines(t)()
			e := NewEngine(Config{})
			out := &recorder{}
			e.Attach(out)
			src := newGatedFile(8*hashBlock, 1)
			info, err := e.SendFile("f", "", src, int64(len(src.data)))
			if err != nil {
				t.Fatal(err)
			}
			checkfor.True(t, 5*time.Second, "the second hash read held", func() bool { return src.hashReads.Load() == 2 })
			if how == "cancel" {
				if err := e.Cancel(info.ID); err != nil {
					t.Fatal(err)
				}
				close(src.gate)
				next, _ := e.SendFile("g", "", bytes.NewReader([]byte("next")), 4)
				checkfor.True(t, 5*time.Second, "the next file's digest", func() bool { _, ok := out.digests()[next.ID]; return ok })
				e.Close()
			} else {
				closed := make(chan struct{})
				go func() { e.Close(); close(closed) }()
				checkfor.True(t, 5*time.Second, "the engine closing", func() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.closed })
				close(src.gate)
				<-closed
			}
			if n := src.hashReads.Load(); n != 2 {
				t.Fatalf("%d hash reads, want 2 (none after the %s)", n, how)
			}
			if _, ok := out.digests()[info.ID]; ok {
				t.Fatalf("digest sent for the file stopped by %s", how)
			}
		})
	}
}

// failingHash fails the hashing pass (reads larger than a chunk).
type failingHash []byte

func (f failingHash) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > DefaultChunkSize {
		return 0, errors.New("disk gone")
	}
	return bytes.NewReader(f).ReadAt(p, off)
}

func TestHashReadErrorEndsFile(t *testing.T) {
	pp := newPeerPair(t, Config{}, nil)
	data := failingHash(randomBytes(2*hashBlock, 12))
	info, _ := pp.a.SendFile("f", "", data, int64(len(data)))
	pp.waitBothDone(t, info.ID, ErrIO)
	for _, r := range pp.resultsFor(info.ID) {
		if r.Remote != (r.Dir == Receiving) {
			t.Fatalf("%s result Remote=%v", r.Dir, r.Remote)
		}
	}
}
