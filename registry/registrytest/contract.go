// Package registrytest is the contract every registry.Registry
// implementation must pass (the in-memory one today, a clustered one later):
// heartbeats refresh, silent nodes drop out after the TTL by themselves,
// Leave is immediate, Pick is least loaded with ties to the lowest id.
package registrytest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mqim/mqim/registry"
)

// Fixture is one fresh registry under test: its TTL, and Advance, which
// lets time pass for it (an injected clock, or a real sleep for a backend
// with its own clock).
type Fixture struct {
	Registry registry.Registry
	TTL      time.Duration
	Advance  func(time.Duration)
}

// Run runs the contract against a fixture from open.
func Run(t *testing.T, open func(t *testing.T) Fixture) {
	t.Run("pick least loaded, expire silent nodes, leave", func(t *testing.T) { pickAndExpire(t, open(t)) })
}

func pickAndExpire(t *testing.T, f Fixture) {
	ctx := context.Background()
	r := f.Registry
	if _, err := registry.Pick(ctx, r); !errors.Is(err, registry.ErrNoNode) {
		t.Fatalf("empty registry: %v, want ErrNoNode", err)
	}
	beat := func(id string, load int) {
		if err := r.Heartbeat(ctx, registry.Node{ID: id, URL: "https://" + id, Load: load}); err != nil {
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
		// 0.8 TTL later only b heart-beats; 0.3 TTL more and a and c are past it.
		{"silent nodes still live within ttl", func() { f.Advance(f.TTL * 8 / 10); beat("b", 50) }, "a"},
		{"silent nodes drop out after ttl", func() { f.Advance(f.TTL * 3 / 10) }, "b"},
		{"leave removes at once", func() { beat("c", 0); _ = r.Leave(ctx, "c") }, "b"},
	}
	for _, s := range steps {
		s.do()
		n, err := registry.Pick(ctx, r)
		if err != nil || n.ID != s.want {
			t.Fatalf("%s: picked %q (%v), want %q", s.name, n.ID, err, s.want)
		}
	}
	live, _ := r.Live(ctx)
	if len(live) != 1 {
		t.Fatalf("live = %v, want only b", live)
	}
	f.Advance(f.TTL * 11 / 10)
	if _, err := registry.Pick(ctx, r); !errors.Is(err, registry.ErrNoNode) {
		t.Fatalf("after every node went silent: %v, want ErrNoNode", err)
	}
}
