package p2p

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mqim/mqim/filexfer"
	"github.com/mqim/mqim/roap"

	"github.com/mqim/mqim/internal/checkfor"
)

// A sender that vanishes mid-transfer (its connection closes, no SHUTDOWN,
// no renegotiation) must not leave the callee's session and files behind:
// after IdleTimeout the session ends and its files end with ErrClosed.
func TestIdleSessionOfVanishedPeerEnds(t *testing.T) {
	clock := roap.NewManualClock(time.Now())
	n := newTestNet(t, netOptions{window: 2, bobConfig: func(c *Config) { c.IdleTimeout, c.Clock = time.Minute, clock }})
	s := dial(t, n.alice, "bob")
	data := randomBytes(8<<20, 7)
	info, _ := s.Engine().SendFile("f", "", bytes.NewReader(data), int64(len(data)))
	checkfor.True(t, 30*time.Second, "bob's session", func() bool { return n.bob.sessionFor("alice") != nil })
	bs := n.bob.sessionFor("alice")
	checkfor.True(t, 30*time.Second, "some chunks", func() bool { st, _ := bs.Engine().Stats(info.ID); return st.Received > 10 })
	s.CloseConnection() // alice's side only: as if her process died
	checkfor.True(t, 30*time.Second, "bob to notice", func() bool {
		bs.mu.Lock()
		defer bs.mu.Unlock()
		return !isClosed(bs.open)
	})
	clock.Advance(time.Minute - time.Millisecond)
	if isClosed(bs.done) {
		t.Fatal("session ended before IdleTimeout")
	}
	clock.Advance(time.Millisecond)
	select {
	case <-bs.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("bob's session outlived its vanished peer")
	}
	if !errors.Is(bs.Err(), ErrIdle) {
		t.Fatalf("bob's session ended with %v, want ErrIdle", bs.Err())
	}
	if r := n.bob.result(info.ID); len(r) != 1 || !errors.Is(r[0].Err, filexfer.ErrClosed) {
		t.Fatalf("bob's result: %+v", r)
	}
	if len(n.bob.Sessions()) != 0 {
		t.Fatalf("bob still holds %d sessions", len(n.bob.Sessions()))
	}
}

// A session that stays open is not idle, however long it lasts.
func TestOpenSessionIsNotIdle(t *testing.T) {
	clock := roap.NewManualClock(time.Now())
	n := newTestNet(t, netOptions{bobConfig: func(c *Config) { c.IdleTimeout, c.Clock = time.Minute, clock }})
	s := dial(t, n.alice, "bob")
	checkfor.True(t, 30*time.Second, "bob's side open", func() bool {
		bs := n.bob.sessionFor("alice")
		return bs != nil && bs.WaitOpen(context.Background()) == nil
	})
	clock.Advance(time.Hour)
	data := randomBytes(100000, 8)
	info, _ := s.Engine().SendFile("f", "", bytes.NewReader(data), int64(len(data)))
	waitDone(t, 30*time.Second, n.alice, n.bob, info.ID, nil)
}

// Sessions a peer opens to us are bounded per peer (and in total).
func TestSessionsPerPeerBounded(t *testing.T) {
	n := newTestNet(t, netOptions{bobConfig: func(c *Config) { c.MaxSessionsPerPeer = 2 }})
	dial(t, n.alice, "bob")
	dial(t, n.alice, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := n.alice.Dial(ctx, "bob")
	var se *SignalError
	if !errors.As(err, &se) || se.Type != roap.ErrorRefused || !se.Remote {
		t.Fatalf("third Dial: %v, want ERROR REFUSED", err)
	}
	if got := len(n.bob.Sessions()); got != 2 {
		t.Fatalf("bob holds %d sessions", got)
	}
}
