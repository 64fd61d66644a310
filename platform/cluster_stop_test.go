package platform_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/imtest"
)

// TestClusterGracefulStopOfTheLeader: the node leading the chat log is
// stopped (SIGTERM) in the middle of a QoS 1 flood into another node.
// nats-server hands its raft leaderships over as it shuts down, so writes
// are taken again after a stall (logged: issue 16 asks for < 1 s; timing
// is measured here, not asserted), every acknowledged message is stored
// once, and a survivor leads the log.
func TestClusterGracefulStopOfTheLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	nodes, _ := startCluster(t, 3)
	register(t, nodes[0].HTTP, "alice", "bob")
	leader := -1
	imtest.Eventually(t, "one node reports it leads the log", 20*time.Second, func() bool {
		leader = -1
		for i, p := range nodes {
			if leadsLog(p.HTTP) {
				if leader >= 0 {
					return false
				}
				leader = i
			}
		}
		return leader >= 0
	})
	other := (leader + 1) % 3
	t.Logf("n%d leads the log; the flood goes into n%d", leader+1, other+1)

	// Accounts made on n1 reach the other nodes' state moments later.
	imtest.Eventually(t, "alice's account known where the flood goes", 15*time.Second, func() bool {
		resp, err := http.Post(nodes[other].HTTP+"/api/v1/login", "application/json",
			strings.NewReader(fmt.Sprintf(`{"user":"alice","password":%q}`, imtest.Password)))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	f := startFlood(t, nodes[other].MQTT, 4)
	imtest.Eventually(t, "the flood is acknowledged", 30*time.Second, func() bool { return f.n.Load() >= 200 })

	// The longest time without a new acknowledgement, sampled every 5 ms
	// from the SIGTERM on.
	var stall atomic.Int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		last, since := f.n.Load(), time.Now()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				if n := f.n.Load(); n != last {
					last, since = n, now
				} else if d := now.Sub(since); int64(d) > stall.Load() {
					stall.Store(int64(d))
				}
			}
		}
	}()
	stopped := time.Now()
	nodes[leader].Cmd.Process.Signal(syscall.SIGTERM)
	nodes[leader].Cmd.Wait()
	exited := time.Since(stopped)
	// A publisher of its own, since a flood worker gives up at its first
	// publish unacknowledged for 5 s: writes are taken again when one of
	// its publishes is acknowledged.
	probe := dialPaho(t, nodes[other].MQTT, "alice", "alice:probe")
	imtest.Eventually(t, "a write is acknowledged after the leader stopped", 30*time.Second, func() bool {
		tok := probe.Publish("im/u/bob/dm/alice", 1, false, `{"body":"after the stop"}`)
		return tok.WaitTimeout(3*time.Second) && tok.Error() == nil
	})
	resumed := time.Since(stopped)
	close(done)
	<-sampled
	acked := f.stop()
	t.Logf("the leader exited %v after SIGTERM; a new write acknowledged %v after the SIGTERM; longest gap in the flood's acknowledgements %v; %d acknowledged",
		exited.Round(time.Millisecond), resumed.Round(time.Millisecond), time.Duration(stall.Load()).Round(time.Millisecond), len(acked))

	imtest.Eventually(t, "a survivor leads the log", 20*time.Second, func() bool {
		for i, p := range nodes {
			if i != leader && leadsLog(p.HTTP) {
				return true
			}
		}
		return false
	})
	for i, p := range nodes {
		if i == leader {
			continue
		}
		var stored map[string]int
		imtest.Eventually(t, "every acknowledged message stored on the survivor", 20*time.Second, func() bool {
			stored = map[string]int{}
			for _, m := range syncAll(t, p.HTTP, loginHTTP(t, p.HTTP, "bob")) {
				stored[m.CID]++
			}
			for cid := range acked {
				if stored[cid] == 0 {
					return false
				}
			}
			return true
		})
		for cid := range acked {
			if stored[cid] != 1 {
				t.Fatalf("n%d: acknowledged %s stored %d times", i+1, cid, stored[cid])
			}
		}
	}
}

// leadsLog asks a node's /healthz whether it leads the chat log.
func leadsLog(base string) bool {
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var h struct {
		LogLeader bool `json:"log_leader"`
	}
	return json.NewDecoder(resp.Body).Decode(&h) == nil && h.LogLeader
}
