package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/cluster"
	"github.com/mqim/mqim/internal/checkfor"
	"github.com/mqim/mqim/presence"
)

// presences starts a presence view on each node; changed[i] records the
// users node i was told to announce again.
type presences struct {
	p  []*cluster.Presence
	mu sync.Mutex
	ch map[int][]string
}

func startPresences(t *testing.T, nodes []*node, wait time.Duration) *presences {
	t.Helper()
	ps := &presences{ch: map[int][]string{}}
	for i, x := range nodes {
		p, err := cluster.NewPresence(x.n)
		if err != nil {
			t.Fatal(err)
		}
		p.OnChange(func(u string) { ps.mu.Lock(); ps.ch[i] = append(ps.ch[i], u); ps.mu.Unlock() })
		t.Cleanup(func() { p.Close() })
		ps.p = append(ps.p, p)
	}
	for _, p := range ps.p {
		p.Wait(context.Background(), wait)
	}
	return ps
}

func (ps *presences) changed(i int, user string) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, u := range ps.ch[i] {
		if u == user {
			return true
		}
	}
	return false
}

// devicesEverywhere waits until every view counts want devices of user.
func devicesEverywhere(t *testing.T, ps []*cluster.Presence, user string, want int) {
	t.Helper()
	checkfor.Err(t, 10*time.Second, func() error {
		for i, p := range ps {
			if got := p.Devices(user); got != want {
				return fmt.Errorf("n%d counts %d devices of %s, want %d", i+1, got, user, want)
			}
		}
		return nil
	})
}

// A user's devices count on every node: online from the first device on
// any node to the last; a node whose last device of the user leaves while
// another node still has one announces nothing; statuses reach every node.
func TestPresenceAggregatesNodes(t *testing.T) {
	nodes := startCluster(t, 3, 1)
	ps := startPresences(t, nodes, 10*time.Second)
	p1, p2, p3 := ps.p[0], ps.p[1], ps.p[2]

	if !p2.Connect("bob", "bob:phone", 1) {
		t.Fatal("bob's first device, on n2, is not first")
	}
	devicesEverywhere(t, ps.p, "bob", 1)
	if !p1.Online("bob") || !p3.Online("bob") {
		t.Fatal("bob on n2 is not online on n1 and n3")
	}
	if p3.Connect("bob", "bob:laptop", 2) {
		t.Fatal("bob's second device, on n3, is first")
	}
	devicesEverywhere(t, ps.p, "bob", 2)
	if p2.Disconnect("bob", "bob:phone", 1) {
		t.Fatal("bob's phone leaving n2 is last, while his laptop is on n3")
	}
	devicesEverywhere(t, ps.p, "bob", 1)
	if !p1.Online("bob") {
		t.Fatal("bob is offline on n1 with a device on n3")
	}
	if !p3.Disconnect("bob", "bob:laptop", 2) {
		t.Fatal("bob's last device leaving n3 is not last")
	}
	devicesEverywhere(t, ps.p, "bob", 0)
	if p1.Online("bob") {
		t.Fatal("bob still online on n1")
	}

	s := presence.Status{Status: "away", Text: "lunch", TS: 42}
	p2.SetStatus("carol", s)
	checkfor.Err(t, 10*time.Second, func() error {
		for i, p := range ps.p {
			if got := p.StatusOf("carol"); got != s {
				return fmt.Errorf("n%d has carol %+v, want %+v", i+1, got, s)
			}
		}
		return nil
	})
}

// Two nodes' last devices of a user leave at the same moment: whether each
// saw the other's device or not, some node announces offline (Disconnect
// said last, or OnChange was called with the user offline everywhere).
func TestPresenceSimultaneousLeaves(t *testing.T) {
	nodes := startCluster(t, 3, 1)
	ps := startPresences(t, nodes, 10*time.Second)
	for round := range 20 {
		user := fmt.Sprintf("u%d", round)
		ps.p[0].Connect(user, user+":a", 1)
		ps.p[1].Connect(user, user+":b", 1)
		devicesEverywhere(t, ps.p, user, 2)
		var last [2]bool
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { last[i] = ps.p[i].Disconnect(user, fmt.Sprintf("%s:%c", user, 'a'+i), 1) })
		}
		wg.Wait()
		devicesEverywhere(t, ps.p, user, 0)
		checkfor.Err(t, 10*time.Second, func() error {
			if last[0] || last[1] || ps.changed(0, user) || ps.changed(1, user) {
				return nil
			}
			return fmt.Errorf("round %d: nobody announced %s offline", round, user)
		})
	}
}

// A node that starts late learns the devices already on the others (in
// pages), and a node that goes silent is dropped with its devices, its
// users announced offline by the live node with the smallest id.
func TestPresenceJoinAndDeath(t *testing.T) {
	nodes := startCluster(t, 3, 1)
	ps := startPresences(t, nodes[:2], time.Second) // n3 has none yet
	const users = 1200                              // more than two pages
	for i := range users {
		ps.p[0].Connect(fmt.Sprintf("user%04d", i), "d", 1)
	}
	ps.p[1].Connect("bob", "bob:phone", 1)
	devicesEverywhere(t, ps.p, "user1199", 1)

	late, err := cluster.NewPresence(nodes[2].n)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	late.Wait(context.Background(), 10*time.Second)
	online := late.RemoteOnline()
	if len(online) != users+1 {
		t.Fatalf("the late node knows %d users online, want %d", len(online), users+1)
	}
	if !late.Online("bob") || !late.Online("user0000") {
		t.Fatal("the late node does not see bob and user0000 online")
	}

	ps.p[1].Close() // n2 goes silent with bob's device
	checkfor.Err(t, 15*time.Second, func() error {
		if ps.p[0].Online("bob") || late.Online("bob") {
			return fmt.Errorf("bob, whose only device was on silent n2, is still online")
		}
		if !ps.changed(0, "bob") {
			return fmt.Errorf("n1, the smallest live id, was not told to announce bob")
		}
		return nil
	})
}
