package registry

import (
	"context"
	"sync"
	"testing"
	"time"
)

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
