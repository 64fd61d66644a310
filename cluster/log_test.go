package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/cluster"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/history/historytest"
	"github.com/mqim/mqim/internal/checkfor"
	"github.com/mqim/mqim/registry/registrytest"
)

// node is one member of a test cluster: the embedded server, its view and
// the store that writes through the log.
type node struct {
	n    *cluster.Node
	db   *badger.DB
	view *history.Badger
	log  *cluster.Log
}

func (x *node) close() {
	if x.log != nil {
		x.log.Close()
	}
	if x.view != nil {
		x.view.Close()
	}
	if x.n != nil {
		x.n.Close()
	}
	if x.db != nil {
		x.db.Close()
	}
	*x = node{}
}

// freePorts returns n loopback addresses nothing listens on (a listener on
// port 0, closed: the kernel does not hand the port out again at once).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Addr().String())
		l.Close()
	}
	return out
}

var quiet = slog.New(slog.DiscardHandler)

// startCluster starts len(addrs) nodes with replicas copies of the log;
// every node's data lives under dir/nodeN.
// It reports failures with t.Error and returns nil, since it runs on
// goroutines of its own.
func startNode(t *testing.T, dir string, addrs []string, i, replicas int) *node {
	t.Helper()
	var peers []string
	for j, a := range addrs {
		if j != i {
			peers = append(peers, a)
		}
	}
	cfg := cluster.Config{Name: "test", Node: fmt.Sprintf("n%d", i+1), Listen: addrs[i], Peers: peers, Replicas: replicas}
	data := filepath.Join(dir, cfg.Node)
	n, err := cluster.Start(context.Background(), cfg, cluster.Options{DataDir: data, Log: quiet})
	if err != nil {
		t.Error(err)
		return nil
	}
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(data, "im")).WithLogger(nil))
	if err != nil {
		n.Close()
		t.Error(err)
		return nil
	}
	view, err := history.OpenBadger(db, history.BadgerOptions{Epoch: n.Epoch()})
	if err != nil {
		n.Close()
		db.Close()
		t.Error(err)
		return nil
	}
	return &node{n: n, db: db, view: view, log: cluster.OpenLog(n, view)}
}

func startCluster(t *testing.T, size, replicas int) []*node {
	t.Helper()
	dir, addrs := t.TempDir(), freePorts(t, size)
	nodes := make([]*node, size)
	var wg sync.WaitGroup
	for i := range nodes {
		// Together: a node with replicas > 1 waits in Start for a quorum.
		wg.Go(func() { nodes[i] = startNode(t, dir, addrs, i, replicas) })
	}
	wg.Wait()
	for _, x := range nodes {
		if x == nil {
			t.FailNow() // startNode said why
		}
	}
	t.Cleanup(func() {
		for _, x := range nodes {
			if x != nil {
				x.close()
			}
		}
	})
	return nodes
}

// The clustered store keeps history's whole contract (one node, one copy).
func TestLogContract(t *testing.T) {
	historytest.Run(t, func(t *testing.T) history.Store {
		nodes := startCluster(t, 1, 1)
		return nodes[0].log
	})
}

func dm(from, to, body string) history.AppendRequest {
	return history.AppendRequest{Conv: history.DM(from, to), Msg: envelope.Message{From: from, To: to, Type: "text", Body: body}, Recipients: []string{to, from}}
}

// Writes from every node end up in one order in every node's view: the
// same seqs, ids, timestamps and feed positions, so a cursor from one node
// reads on another.
func TestViewsAgree(t *testing.T) {
	nodes := startCluster(t, 3, 3)
	ctx := context.Background()
	const per = 60
	var wg sync.WaitGroup
	for i, x := range nodes {
		wg.Go(func() {
			from := fmt.Sprintf("u%d", i)
			for k := range per {
				req := dm(from, "bob", fmt.Sprintf("%s-%d", from, k))
				if k%3 == 0 {
					req = history.AppendRequest{Conv: history.Group("g1"), Msg: envelope.Message{From: from, Group: "g1", Type: "text", Body: req.Msg.Body}, Recipients: []string{"bob", "u0", "u1", "u2"}}
				}
				if _, err := x.log.Append(ctx, req); err != nil {
					t.Errorf("append on %s: %v", x.n.ID(), err)
					return
				}
				if k%10 == 0 {
					if err := x.log.MarkRead(ctx, "bob", req.Conv, 1); err != nil {
						t.Errorf("mark read: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	// Every append returned once its own node applied it, so the furthest
	// node has applied them all.
	var want uint64
	for _, x := range nodes {
		want = max(want, x.log.Applied())
	}
	for _, x := range nodes {
		x := x
		checkfor.Err(t, 10*time.Second, func() error {
			if got := x.view.LogApplied(); got < want {
				return fmt.Errorf("%s applied %d of %d", x.n.ID(), got, want)
			}
			return nil
		})
	}
	ref, err := nodes[0].view.Sync(ctx, "bob", history.Cursor{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref.Messages) != 3*per {
		t.Fatalf("bob's feed has %d messages, want %d", len(ref.Messages), 3*per)
	}
	for _, x := range nodes[1:] {
		if x.view.Epoch() != nodes[0].view.Epoch() {
			t.Fatalf("epochs differ: %s %s", x.view.Epoch(), nodes[0].view.Epoch())
		}
		got, err := x.view.Sync(ctx, "bob", history.Cursor{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Messages) != len(ref.Messages) || got.Next != ref.Next {
			t.Fatalf("%s: %d messages to %v, want %d to %v", x.n.ID(), len(got.Messages), got.Next, len(ref.Messages), ref.Next)
		}
		for i := range got.Messages {
			a, b := got.Messages[i], ref.Messages[i]
			if a.ID != b.ID || a.Seq != b.Seq || a.TS != b.TS || a.Body != b.Body {
				t.Fatalf("%s: feed entry %d is %+v, n1 has %+v", x.n.ID(), i, a, b)
			}
		}
		// A cursor handed out by n1 reads on this node.
		mid := history.Cursor{Epoch: ref.Next.Epoch, Pos: ref.Next.Pos - 5}
		page, err := x.view.Sync(ctx, "bob", mid, 100)
		if err != nil || len(page.Messages) != 5 {
			t.Fatalf("%s: sync from n1's cursor: %d messages, %v", x.n.ID(), len(page.Messages), err)
		}
		s1, _ := nodes[0].view.Conversations(ctx, "bob")
		s2, _ := x.view.Conversations(ctx, "bob")
		if fmt.Sprint(readMarks(s1)) != fmt.Sprint(readMarks(s2)) {
			t.Fatalf("read markers differ: %v vs %v", readMarks(s1), readMarks(s2))
		}
	}
}

func readMarks(s []history.Summary) map[history.ConvID]uint64 {
	m := map[history.ConvID]uint64{}
	for _, x := range s {
		m[x.Conv] = x.Read
	}
	return m
}

// A node that lost its quorum refuses writes with ErrUnavailable rather
// than accepting what it cannot replicate; the survivors of a one-node loss
// keep writing.
func TestQuorum(t *testing.T) {
	nodes := startCluster(t, 3, 3)
	ctx := context.Background()
	if _, err := nodes[0].log.Append(ctx, dm("a", "b", "before")); err != nil {
		t.Fatal(err)
	}
	nodes[2].close()
	checkfor.Err(t, 15*time.Second, func() error {
		_, err := nodes[1].log.Append(ctx, dm("a", "b", "after one loss"))
		return err
	})
	nodes[1].close()
	nodes[0].log.Timeout = 2 * time.Second
	_, err := nodes[0].log.Append(ctx, dm("a", "b", "minority"))
	if !errors.Is(err, cluster.ErrUnavailable) || !errors.Is(err, history.ErrUnavailable) {
		t.Fatalf("append on a minority node: %v, want ErrUnavailable (cluster's and history's)", err)
	}
	page, _, err := nodes[0].view.Page(ctx, history.DM("a", "b"), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page {
		if m.Body == "minority" {
			t.Fatal("a refused write is in the view")
		}
	}
}

// The cluster's node registry keeps the registry contract.
func TestRegistryContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registrytest.Fixture {
		nodes := startCluster(t, 1, 1)
		var mu sync.Mutex
		now := time.Unix(1_700_000_000, 0)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		r, err := cluster.NewRegistry(context.Background(), nodes[0].n, 10*time.Second, clock)
		if err != nil {
			t.Fatal(err)
		}
		return registrytest.Fixture{Registry: r, TTL: 10 * time.Second, Advance: func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }}
	})
}
