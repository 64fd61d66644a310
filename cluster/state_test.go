package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/cluster"
	"github.com/mqim/mqim/internal/checkfor"
	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/profiles"
	"github.com/mqim/mqim/userlists"
)

// Three nodes create the same record at once: one wins, the others get
// ErrConflict, every node ends with the winner's value, and the nodes that
// did not write it hear of the change.
func TestStateConditionsDecideAlikeEverywhere(t *testing.T) {
	nodes := startCluster(t, 3, 3)
	states := make([]*cluster.State, len(nodes))
	var changed atomic.Int64
	for i, x := range nodes {
		s, err := cluster.OpenState(x.n, x.db)
		if err != nil {
			t.Fatal(err)
		}
		s.Changed = func(k []byte) {
			if string(k) == "a/zoe" {
				changed.Add(1)
			}
		}
		if err := s.Follow(context.Background(), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		states[i] = s
	}
	var wg sync.WaitGroup
	var won, lost atomic.Int64
	for i, s := range states {
		wg.Go(func() {
			err := s.Commit(context.Background(), kvstore.Batch{Absent: [][]byte{[]byte("a/zoe")}, Set: []kvstore.Entry{{Key: []byte("a/zoe"), Value: fmt.Appendf(nil, "from n%d", i+1)}}})
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, kvstore.ErrConflict):
				lost.Add(1)
			default:
				t.Errorf("commit on n%d: %v", i+1, err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 || lost.Load() != 2 {
		t.Fatalf("%d won, %d lost; want 1 and 2", won.Load(), lost.Load())
	}
	read := func(db *badger.DB) (v string) {
		db.View(func(txn *badger.Txn) error {
			it, err := txn.Get([]byte("a/zoe"))
			if err == nil {
				b, _ := it.ValueCopy(nil)
				v = string(b)
			}
			return nil
		})
		return v
	}
	want := read(nodes[0].db)
	for _, x := range nodes {
		checkfor.Err(t, 10*time.Second, func() error {
			if got := read(x.db); got != want || got == "" {
				return fmt.Errorf("%s holds %q, n1 %q", x.n.ID(), got, want)
			}
			return nil
		})
	}
	checkfor.Err(t, 10*time.Second, func() error {
		if n := changed.Load(); n != 2 {
			return fmt.Errorf("%d nodes heard of the change, want the 2 that did not write it", n)
		}
		return nil
	})
}

// Profiles and block lists written through the shared state: two nodes
// changing one profile at the same moment keep both changes (each write is
// conditional on the record its node last saw, and retried on a conflict),
// and a block made on one node holds on every node.
func TestStateProfilesAndListsAgree(t *testing.T) {
	nodes := startCluster(t, 3, 3)
	profs := make([]*profiles.Store, len(nodes))
	blocks := make([]*userlists.List, len(nodes))
	for i, x := range nodes {
		s, err := cluster.OpenState(x.n, x.db)
		if err != nil {
			t.Fatal(err)
		}
		var ready atomic.Bool // Changed may run before the stores exist
		s.Changed = func(k []byte) {
			if ready.Load() {
				profs[i].Changed(k)
				blocks[i].Changed(k)
			}
		}
		if err := s.Follow(context.Background(), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if profs[i], err = profiles.Open(x.db, nil, s); err != nil {
			t.Fatal(err)
		}
		if blocks[i], err = userlists.Open(x.db, userlists.Blocks, 10, nil, s); err != nil {
			t.Fatal(err)
		}
		ready.Store(true)
	}
	if _, err := profs[2].SetDisplayName("bob", "Bob"); err != nil {
		t.Fatal(err)
	}
	checkfor.Err(t, 10*time.Second, func() error {
		for i, p := range profs {
			if p.Get("bob").DisplayName != "Bob" {
				return fmt.Errorf("n%d has bob's profile %+v", i+1, p.Get("bob"))
			}
		}
		return nil
	})
	for round := range 10 {
		name := fmt.Sprintf("Bob %d", round)
		policy := []string{profiles.DMContacts, profiles.DMAnyone}[round%2]
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := profs[0].SetDisplayName("bob", name); err != nil {
				t.Errorf("display name on n1: %v", err)
			}
		})
		wg.Go(func() {
			if _, err := profs[1].SetDMPolicy("bob", policy); err != nil {
				t.Errorf("dm policy on n2: %v", err)
			}
		})
		wg.Wait()
		checkfor.Err(t, 10*time.Second, func() error {
			for i, p := range profs {
				if got := p.Get("bob"); got.DisplayName != name || got.DMPolicy != policy {
					return fmt.Errorf("round %d: n%d has %+v, want name %q and policy %q", round, i+1, got, name, policy)
				}
			}
			return nil
		})
	}
	if err := blocks[0].Add("bob", "mallory", 1); err != nil {
		t.Fatal(err)
	}
	checkfor.Err(t, 10*time.Second, func() error {
		for i, b := range blocks {
			if !b.Has("bob", "mallory") {
				return fmt.Errorf("n%d does not know bob blocked mallory", i+1)
			}
		}
		return nil
	})
	if _, err := blocks[2].Remove("bob", "mallory"); err != nil {
		t.Fatal(err)
	}
	checkfor.Err(t, 10*time.Second, func() error {
		for i, b := range blocks {
			if b.Has("bob", "mallory") || len(b.Holders("mallory")) != 0 {
				return fmt.Errorf("n%d still has bob's block of mallory", i+1)
			}
		}
		return nil
	})
}
