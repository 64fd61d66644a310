package registry

import (
	"context"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestPickLeastLoadedAndExpire(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	r := NewMemory(10*time.Second, clk.now)
	if _, err := Pick(ctx, r); err != ErrNoNode {
		t.Fatalf("empty registry: %v, want ErrNoNode", err)
	}
	beat := func(id string, load int) {
		if err := r.Heartbeat(ctx, Node{ID: id, URL: "https://" + id, Load: load}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		do   func()
		want string
	}{
		{"least loaded wins", func() { beat("a", 30); beat("b", 10); beat("c", 20) }, "b"},
		{"load changes with heartbeats", func() { beat("b", 50) }, "c"},
		{"ties go to the lowest id", func() { beat("a", 20) }, "a"},
		// 8 s later only b heart-beats; 3 s more and a and c are 11 s old.
		{"silent nodes still live within ttl", func() { clk.add(8 * time.Second); beat("b", 50) }, "a"},
		{"silent nodes drop out after ttl", func() { clk.add(3 * time.Second) }, "b"},
		{"leave removes at once", func() { beat("c", 0); _ = r.Leave(ctx, "c") }, "b"},
	}
	for _, s := range steps {
		s.do()
		n, err := Pick(ctx, r)
		if err != nil || n.ID != s.want {
			t.Fatalf("%s: picked %q (%v), want %q", s.name, n.ID, err, s.want)
		}
	}
	live, _ := r.Live(ctx)
	if len(live) != 1 {
		t.Fatalf("live = %v, want only b", live)
	}
	clk.add(11 * time.Second)
	if _, err := Pick(ctx, r); err != ErrNoNode {
		t.Fatalf("after every node went silent: %v, want ErrNoNode", err)
	}
}

func TestBeatRefreshesAndLeaves(t *testing.T) {
	r := NewMemory(time.Minute, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	load := 1
	done := make(chan struct{})
	go func() {
		Beat(ctx, r, time.Millisecond, func() Node { mu.Lock(); defer mu.Unlock(); return Node{ID: "self", Load: load} }, nil)
		close(done)
	}()
	mu.Lock()
	load = 7
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := Pick(context.Background(), r)
		if err == nil && n.Load == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat never carried the new load: %v %v", n, err)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if live, _ := r.Live(context.Background()); len(live) != 0 {
		t.Fatalf("after Beat returned: %v, want no node", live)
	}
}
