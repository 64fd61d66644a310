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
