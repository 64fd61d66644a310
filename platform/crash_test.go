package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/imclient"
	"github.com/mqim/mqim/internal/imtest"
)

// TestKill9DuringFloodLosesNoAcknowledgedMessage: publishers flood QoS 1
// messages; the server is killed with SIGKILL mid-flood and restarted on the
// same data dir and ports. Every message whose PUBACK reached its sender is
// in history and reaches the recipient's client exactly once, in order.
func TestKill9DuringFloodLosesNoAcknowledgedMessage(t *testing.T) {
	dir := t.TempDir()
	httpAddr, mqttAddr := imtest.FreePort(t), imtest.FreePort(t)
	args := []string{"--data", dir, "--http", httpAddr, "--mqtt", mqttAddr} // durability: batch (default)
	p := imtest.StartProc(t, args...)
	for _, u := range []string{"alice", "bob"} {
		resp, err := http.Post(p.HTTP+"/api/v1/register", "application/json", strings.NewReader(fmt.Sprintf(`{"user":%q,"password":%q}`, u, imtest.Password)))
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("register %s: %v %v", u, err, resp)
		}
	}
	var rec recorder
	bob, err := imclient.Dial(context.Background(), imclient.Options{HTTP: p.HTTP, User: "bob", Password: imtest.Password, Device: "phone", OnMessage: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	f := startFlood(t, p.MQTT, 4)
	imtest.Eventually(t, "some acknowledged messages", 20*time.Second, func() bool { return f.n.Load() >= 300 })
	p.Cmd.Process.Kill() // SIGKILL, mid-flood
	p.Cmd.Wait()
	ackedCIDs := f.stop()

	p2 := imtest.StartProc(t, args...)
	_ = p2
	t.Logf("%d messages acknowledged before SIGKILL", len(ackedCIDs))

	// History after restart holds every acknowledged message, once.
	tok := loginHTTP(t, p2.HTTP, "bob")
	stored := map[string]int{}
	feed := syncAll(t, p2.HTTP, tok)
	for i, m := range feed {
		stored[m.CID]++
		if i > 0 && m.Seq != feed[i-1].Seq+1 {
			t.Fatalf("history has a hole: seq %d after %d", m.Seq, feed[i-1].Seq)
		}
	}
	for cid := range ackedCIDs {
		if stored[cid] != 1 {
			t.Fatalf("acknowledged %s stored %d times", cid, stored[cid])
		}
	}
	// bob's client (auto-reconnected to the restarted server) has everything
	// stored, exactly once and in order.
	imtest.Eventually(t, "bob's client catches up", 30*time.Second, func() bool { return len(rec.get()) >= len(stored) })
	got := rec.get()
	checkExactlyOnceInOrder(t, "bob", got, map[imclient.ConvKey]int{"dm:alice": len(stored)})
}

// flood is QoS 1 publishers writing to bob as alice until stopped,
// recording which messages (by cid) were acknowledged.
type flood struct {
	acked sync.Map // cid -> true
	n     atomic.Int64
	quit  chan struct{}
	wg    sync.WaitGroup
}

// startFlood starts workers publishers on url; each stops at its first
// unacknowledged publish (the server died under it).
func startFlood(t *testing.T, url string, workers int) *flood {
	f := &flood{quit: make(chan struct{})}
	for w := range workers {
		f.wg.Go(func() {
			opts := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("alice:w%d", w)).
				SetUsername("alice").SetPassword(imtest.Password).SetAutoReconnect(false).SetCleanSession(true)
			c := paho.NewClient(opts)
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Errorf("publisher %d: %v", w, tok.Error())
				return
			}
			defer c.Disconnect(0)
			for i := 0; ; i++ {
				select {
				case <-f.quit:
					return
				default:
				}
				cid := fmt.Sprintf("w%d-%d", w, i)
				tok := c.Publish("im/u/bob/dm/alice", 1, false, fmt.Sprintf(`{"cid":%q,"body":"flood"}`, cid))
				if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil || !c.IsConnectionOpen() {
					return // unknown, not acked
				}
				f.acked.Store(cid, true)
				f.n.Add(1)
			}
		})
	}
	return f
}

// stop ends the flood and returns the acknowledged cids.
func (f *flood) stop() map[string]bool {
	close(f.quit)
	f.wg.Wait()
	out := map[string]bool{}
	f.acked.Range(func(k, _ any) bool { out[k.(string)] = true; return true })
	return out
}

func loginHTTP(t *testing.T, base, user string) string {
	resp, err := http.Post(base+"/api/v1/login", "application/json", strings.NewReader(fmt.Sprintf(`{"user":%q,"password":%q}`, user, imtest.Password)))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("login: %v %v", err, resp)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&out)
	return out.Token
}

func getJSON(t *testing.T, url, token string, out any) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %v %v", url, err, resp)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}
