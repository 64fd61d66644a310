package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqim/mqim/filexfer"
	"github.com/mqim/mqim/roap"

	"github.com/mqim/mqim/internal/checkfor"
)

// checkGoroutines fails if, after everything was closed, the goroutine
// count does not come back to what it was before the test (pion stops
// some goroutines asynchronously, hence the poll).
func checkGoroutines(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d before, %d after close\n%s", before, n, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// endpoint is one user: a Peer, its received files and transfer results.
type endpoint struct {
	*Peer
	mu      sync.Mutex
	results map[string][]filexfer.Result
	sinks   map[string]*filexfer.MemSink
	offers  chan filexfer.FileInfo
	lastP   map[string]filexfer.Progress
}

func newEndpoint() *endpoint {
	return &endpoint{results: map[string][]filexfer.Result{}, sinks: map[string]*filexfer.MemSink{}, offers: make(chan filexfer.FileInfo, 16), lastP: map[string]filexfer.Progress{}}
}

// transferConfig accepts every offered file into a memory sink and records
// results and progress.
func (e *endpoint) transferConfig(s *Session) filexfer.Config {
	return filexfer.Config{
		OnOffer: func(fi filexfer.FileInfo) {
			sink := &filexfer.MemSink{}
			e.mu.Lock()
			e.sinks[fi.ID] = sink
			e.mu.Unlock()
			go func() { _ = s.Engine().Accept(fi.ID, sink) }()
		},
		OnDone: func(r filexfer.Result) {
			e.mu.Lock()
			e.results[r.File.ID] = append(e.results[r.File.ID], r)
			e.mu.Unlock()
		},
		OnProgress: func(p filexfer.Progress) {
			e.mu.Lock()
			e.lastP[p.File.ID] = p
			e.mu.Unlock()
		},
	}
}

func (e *endpoint) result(id string) []filexfer.Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]filexfer.Result(nil), e.results[id]...)
}

func (e *endpoint) sink(id string) *filexfer.MemSink {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sinks[id]
}

type testNet struct {
	hub          *MemorySignalling
	alice, bob   *endpoint
	goroutines   int
	requestAfter time.Duration
}

type netOptions struct {
	requestTimeout time.Duration
	window         int
	dropAliceOut   func([]byte) bool // frames alice sends that are lost
	bobRefuses     bool
	autoReconnect  bool
	settings       func(*Settings)
	bobConfig      func(*Config) // adjusts bob's Config
}

func newTestNet(t testing.TB, o netOptions) *testNet {
	t.Helper()
	n := &testNet{hub: NewMemorySignalling(), goroutines: runtime.NumGoroutine()}
	mk := func(user string) *endpoint {
		e := newEndpoint()
		settings := LoopbackSettings()
		if o.settings != nil {
			o.settings(&settings)
		}
		cfg := Config{
			Self:      user,
			Signaller: n.hub.For(user),
			Settings:  &settings,
			Transfer: func(s *Session) filexfer.Config {
				c := e.transferConfig(s)
				c.RequestTimeout, c.Window = o.requestTimeout, o.window
				return c
			},
			OfferTimeout:  10 * time.Second,
			AutoReconnect: o.autoReconnect,
			Logf:          t.Logf,
		}
		if user == "bob" && o.bobRefuses {
			cfg.Accept = func(string) bool { return false }
		}
		if user == "bob" && o.bobConfig != nil {
			o.bobConfig(&cfg)
		}
		e.Peer = NewPeer(cfg)
		n.hub.Register(user, e.Peer.HandleSignal)
		return e
	}
	n.alice, n.bob = mk("alice"), mk("bob")
	if o.dropAliceOut != nil {
		n.alice.wrapChannel = func(ch filexfer.Channel) filexfer.Channel { return &lossyChannel{ch, o.dropAliceOut} }
	}
	t.Cleanup(func() {
		n.alice.Close()
		n.bob.Close()
		n.hub.Close()
		checkGoroutines(t, n.goroutines)
	})
	return n
}

// lossyChannel loses the frames drop picks, as a lossy link would.
type lossyChannel struct {
	filexfer.Channel
	drop func([]byte) bool
}

func (l *lossyChannel) Send(b []byte) error {
	if l.drop(b) {
		return nil
	}
	return l.Channel.Send(b)
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func dial(t testing.TB, from *endpoint, to string) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := from.Dial(ctx, to)
	if err != nil {
		t.Fatalf("Dial %s: %v", to, err)
	}
	return s
}

// waitDone waits for the results of id on both endpoints and checks them.
func waitDone(t testing.TB, d time.Duration, sender, receiver *endpoint, id string, want error) {
	t.Helper()
	checkfor.True(t, d, "transfer "+id+" to end", func() bool { return len(sender.result(id)) > 0 && len(receiver.result(id)) > 0 })
	for _, r := range append(sender.result(id), receiver.result(id)...) {
		if !errors.Is(r.Err, want) {
			t.Fatalf("%s result: %v, want %v", r.Dir, r.Err, want)
		}
	}
}

func TestDialOfflineFailsAtOnce(t *testing.T) {
	n := newTestNet(t, netOptions{})
	start := time.Now()
	_, err := n.alice.Dial(context.Background(), "carol")
	var se *SignalError
	if !errors.As(err, &se) || se.Type != roap.ErrorOffline || !se.Remote {
		t.Fatalf("Dial to an offline user: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("OFFLINE took %v", d)
	}
}

func TestDialRefused(t *testing.T) {
	n := newTestNet(t, netOptions{bobRefuses: true})
	_, err := n.alice.Dial(context.Background(), "bob")
	var se *SignalError
	if !errors.As(err, &se) || se.Type != roap.ErrorRefused {
		t.Fatalf("Dial: %v", err)
	}
}

func TestDialTimesOutWhenUnanswered(t *testing.T) {
	hub := NewMemorySignalling()
	defer hub.Close()
	hub.Register("bob", func(roap.Message) error { return nil }) // online, never answers
	p := NewPeer(Config{Self: "alice", Signaller: hub.For("alice"), OfferTimeout: 200 * time.Millisecond, Settings: func() *Settings { s := LoopbackSettings(); return &s }()})
	hub.Register("alice", p.HandleSignal)
	defer p.Close()
	_, err := p.Dial(context.Background(), "bob")
	var se *SignalError
	if !errors.As(err, &se) || se.Type != roap.ErrorTimeout || se.Remote {
		t.Fatalf("Dial: %v", err)
	}
}

// testDroppedChunks sends size bytes while every 50th chunk frame alice
// sends is lost, and checks the file arrives intact through re-requests.
func testDroppedChunks(t *testing.T, size int) {
	var frames atomic.Int64
	var dropped atomic.Int64
	drop := func(b []byte) bool {
		if len(b) > 0 && filexfer.Type(b[0]) == filexfer.TypeChunk && frames.Add(1)%50 == 0 {
			dropped.Add(1)
			return true
		}
		return false
	}
	n := newTestNet(t, netOptions{dropAliceOut: drop, requestTimeout: time.Second})
	s := dial(t, n.alice, "bob")
	data := randomBytes(size, 1)
	start := time.Now()
	info, err := s.Engine().SendFile("big.bin", "application/octet-stream", bytes.NewReader(data), int64(size))
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, 90*time.Second, n.alice, n.bob, info.ID, nil)
	elapsed := time.Since(start)
	got := n.bob.sink(info.ID).Bytes()
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("received file differs")
	}
	// SendFile returns before the file is hashed; both Results carry the hash.
	for _, r := range append(n.alice.result(info.ID), n.bob.result(info.ID)...) {
		if r.File.SHA256 != sha256.Sum256(data) {
			t.Fatalf("%s result: SHA-256 %x", r.Dir, r.File.SHA256)
		}
	}
	bs, _ := n.bob.sessionFor("alice").Engine().Stats(info.ID)
	t.Logf("%d MiB in %v (%.0f MB/s), %d chunk frames dropped, %d re-requests", size>>20, elapsed, float64(size)/elapsed.Seconds()/1e6, dropped.Load(), bs.ReRequests)
	if dropped.Load() == 0 || bs.ReRequests < int(dropped.Load()) {
		t.Fatalf("dropped %d, re-requested %d", dropped.Load(), bs.ReRequests)
	}
	n.bob.mu.Lock()
	p := n.bob.lastP[info.ID]
	n.bob.mu.Unlock()
	if p.Bytes != uint64(size) || p.BytesPerSec <= 0 {
		t.Fatalf("last progress %+v", p)
	}
}

func (e *endpoint) sessionFor(peer string) *Session {
	for _, s := range e.Sessions() {
		if s.Peer() == peer {
			return s
		}
	}
	return nil
}

func TestResumeAfterConnectionClosed(t *testing.T) {
	n := newTestNet(t, netOptions{requestTimeout: 30 * time.Second})
	s := dial(t, n.alice, "bob")
	size := 24 << 20
	if raceEnabled {
		size = 6 << 20
	}
	data := randomBytes(size, 2)
	info, _ := s.Engine().SendFile("f", "", bytes.NewReader(data), int64(size))
	checkfor.True(t, 30*time.Second, "bob's session", func() bool { return n.bob.sessionFor("alice") != nil })
	bs := n.bob.sessionFor("alice")
	total := int(info.Chunks())
	checkfor.True(t, 30*time.Second, "a quarter of the file", func() bool {
		st, _ := bs.Engine().Stats(info.ID)
		return st.Received >= total/4
	})
	// The connection dies (no SHUTDOWN): both sides lose their channel.
	bs.CloseConnection()
	s.CloseConnection()
	before, _ := bs.Engine().Stats(info.ID)
	sentBefore, _ := s.Engine().Stats(info.ID)
	if before.Missing == 0 || before.Received+before.Missing != total {
		t.Fatalf("stats at the cut: %+v of %d chunks", before, total)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Reconnect(ctx); err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	waitDone(t, 60*time.Second, n.alice, n.bob, info.ID, nil)
	after, _ := bs.Engine().Stats(info.ID)
	sentAfter, _ := s.Engine().Stats(info.ID)
	t.Logf("cut at %d/%d chunks; after resume requested %d, received %d, sender served %d", before.Received, total,
		after.Requested-before.Requested, after.Received-before.Received, sentAfter.Sent-sentBefore.Sent)
	for what, got := range map[string]int{
		"requested": after.Requested - before.Requested,
		"received":  after.Received - before.Received,
		"served":    sentAfter.Sent - sentBefore.Sent,
	} {
		if got != before.Missing {
			t.Errorf("%s %d chunks after resume, want exactly the %d missing", what, got, before.Missing)
		}
	}
	if !bytes.Equal(n.bob.sink(info.ID).Bytes(), data) {
		t.Fatal("received file differs")
	}
}

func TestCancelFromEachSide(t *testing.T) {
	for _, side := range []string{"sender", "receiver"} {
		t.Run(side, func(t *testing.T) {
			// A small window keeps the transfer slow enough to cancel mid-way.
			n := newTestNet(t, netOptions{window: 2})
			s := dial(t, n.alice, "bob")
			data := randomBytes(32<<20, 3)
			info, _ := s.Engine().SendFile("f", "", bytes.NewReader(data), int64(len(data)))
			checkfor.True(t, 20*time.Second, "the transfer to start", func() bool {
				bs := n.bob.sessionFor("alice")
				if bs == nil {
					return false
				}
				st, _ := bs.Engine().Stats(info.ID)
				return st.Received > 10
			})
			canceller := s.Engine()
			if side == "receiver" {
				canceller = n.bob.sessionFor("alice").Engine()
			}
			if err := canceller.Cancel(info.ID); err != nil {
				t.Fatal(err)
			}
			waitDone(t, 10*time.Second, n.alice, n.bob, info.ID, filexfer.ErrCancelled)
			if st, _ := n.bob.sessionFor("alice").Engine().Stats(info.ID); st.Received >= int(info.Chunks()) {
				t.Fatal("cancel came too late to test anything")
			}
			// The session carries on: another file still goes through.
			small := randomBytes(100000, 4)
			info2, _ := s.Engine().SendFile("g", "", bytes.NewReader(small), int64(len(small)))
			waitDone(t, 10*time.Second, n.alice, n.bob, info2.ID, nil)
		})
	}
}

func TestSeveralFilesAndSessionsAtOnce(t *testing.T) {
	n := newTestNet(t, netOptions{})
	ab := dial(t, n.alice, "bob")
	ba := dial(t, n.bob, "alice") // a second session, the other way
	type sent struct {
		from, to *endpoint
		id       string
		data     []byte
	}
	var all []sent
	for i, x := range []struct {
		s        *Session
		from, to *endpoint
	}{{ab, n.alice, n.bob}, {ab, n.alice, n.bob}, {ba, n.bob, n.alice}} {
		data := randomBytes(3<<20+i*1000, uint64(10+i))
		info, err := x.s.Engine().SendFile("f", "", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sent{x.from, x.to, info.ID, data})
	}
	for _, x := range all {
		waitDone(t, 60*time.Second, x.from, x.to, x.id, nil)
		if !bytes.Equal(x.to.sink(x.id).Bytes(), x.data) {
			t.Fatalf("%s differs", x.id)
		}
	}
	if got := len(n.alice.Sessions()); got != 2 {
		t.Fatalf("alice has %d sessions, want 2", got)
	}
	ab.Close()
	checkfor.True(t, 10*time.Second, "bob to see the SHUTDOWN", func() bool { return len(n.bob.Sessions()) == 1 })
	if !errors.Is(ab.Err(), ErrSessionEnded) {
		t.Fatalf("closed session: %v", ab.Err())
	}
}

func TestSimultaneousReconnect(t *testing.T) {
	n := newTestNet(t, netOptions{requestTimeout: 30 * time.Second})
	as := dial(t, n.alice, "bob")
	data := randomBytes(8<<20, 5)
	info, _ := as.Engine().SendFile("f", "", bytes.NewReader(data), int64(len(data)))
	checkfor.True(t, 30*time.Second, "bob's session", func() bool { return n.bob.sessionFor("alice") != nil })
	bs := n.bob.sessionFor("alice")
	checkfor.True(t, 30*time.Second, "some chunks", func() bool { st, _ := bs.Engine().Stats(info.ID); return st.Received > 50 })
	as.CloseConnection()
	bs.CloseConnection()
	// Both sides re-offer the same session at once: glare, which alice
	// (the lower id) wins; both calls return once the connection is up.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- as.Reconnect(ctx) }()
	go func() { errs <- bs.Reconnect(ctx) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Reconnect: %v", err)
		}
	}
	waitDone(t, 60*time.Second, n.alice, n.bob, info.ID, nil)
	if !bytes.Equal(n.bob.sink(info.ID).Bytes(), data) {
		t.Fatal("received file differs")
	}
}

func TestAutoReconnectResumes(t *testing.T) {
	n := newTestNet(t, netOptions{
		autoReconnect:  true,
		requestTimeout: 30 * time.Second,
		settings: func(s *Settings) {
			s.ICEDisconnectedTimeout, s.ICEFailedTimeout, s.ICEKeepaliveInterval = time.Second, 5*time.Second, 200*time.Millisecond
		},
	})
	s := dial(t, n.alice, "bob")
	data := randomBytes(16<<20, 6)
	info, _ := s.Engine().SendFile("f", "", bytes.NewReader(data), int64(len(data)))
	checkfor.True(t, 30*time.Second, "bob's session", func() bool { return n.bob.sessionFor("alice") != nil })
	bs := n.bob.sessionFor("alice")
	checkfor.True(t, 30*time.Second, "some chunks", func() bool { st, _ := bs.Engine().Stats(info.ID); return st.Received > 100 })
	// Only bob's side goes away; alice (the dialer) notices and re-dials.
	bs.CloseConnection()
	waitDone(t, 60*time.Second, n.alice, n.bob, info.ID, nil)
	if !bytes.Equal(n.bob.sink(info.ID).Bytes(), data) {
		t.Fatal("received file differs")
	}
}

func TestHandleSignalPayloadChecksSender(t *testing.T) {
	n := newTestNet(t, netOptions{})
	spoof := []byte(`{"type":"SHUTDOWN","from":"carol","to":"alice","sessionID":"s-1"}`)
	if err := n.alice.HandleSignalPayload("bob", spoof); !errors.Is(err, roap.ErrInvalidField) {
		t.Fatalf("spoofed from: %v", err)
	}
	if err := n.alice.HandleSignalPayload("bob", []byte("{")); !errors.Is(err, roap.ErrMalformed) {
		t.Fatalf("malformed: %v", err)
	}
	ok := []byte(`{"type":"SHUTDOWN","from":"bob","to":"alice","sessionID":"s-1"}`)
	if err := n.alice.HandleSignalPayload("bob", ok); !errors.Is(err, roap.ErrUnknownSession) {
		t.Fatalf("well-formed signal for no session: %v", err)
	}
}
