package platform_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/imclient"
	"github.com/mqim/mqim/internal/imtest"
)

// startCluster runs n `mqim serve` processes that form one cluster with
// the log replicated to every node.
func startCluster(t *testing.T, n int) ([]*imtest.Proc, [][]string) {
	t.Helper()
	dir := t.TempDir()
	routes := make([]string, n)
	for i := range routes {
		routes[i] = imtest.FreePort(t)
	}
	var args [][]string
	for i := range n {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, fmt.Sprintf("%q", r))
			}
		}
		node := fmt.Sprintf("n%d", i+1)
		cfg := filepath.Join(dir, node+".yaml")
		yaml := fmt.Sprintf("cluster:\n  name: test\n  node: %s\n  listen: %q\n  peers: [%s]\n  replicas: %d\n", node, routes[i], strings.Join(peers, ", "), n)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, []string{"--config", cfg, "--data", filepath.Join(dir, node), "--http", imtest.FreePort(t), "--mqtt", imtest.FreePort(t)})
	}
	return imtest.StartProcs(t, args...), args
}

func register(t *testing.T, base string, users ...string) {
	t.Helper()
	for _, u := range users {
		resp, err := http.Post(base+"/api/v1/register", "application/json", strings.NewReader(fmt.Sprintf(`{"user":%q,"password":%q}`, u, imtest.Password)))
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("register %s at %s: %v %v", u, base, err, resp)
		}
		resp.Body.Close()
	}
}

// TestClusterOfThreeProcesses: three `mqim serve` processes on one log. A
// DM sent on one node reaches devices on the others; after a SIGKILL of
// one node in the middle of a QoS 1 flood, every acknowledged message is
// in history and sync on both survivors exactly once, with the same seqs,
// and the survivors take new writes.
func TestClusterOfThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	nodes, _ := startCluster(t, 3)
	// Accounts are the cluster's: made on n1, they log in on n2 and n3,
	// and a token n1 signed is good on n3.
	register(t, nodes[0].HTTP, "alice", "bob", "carol")
	tok := loginHTTP(t, nodes[0].HTTP, "alice")
	imtest.Eventually(t, "n3 takes n1's token", 10*time.Second, func() bool {
		req, _ := http.NewRequest("GET", nodes[2].HTTP+"/api/v1/conversations", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// The same id registered again on another node is refused there.
	resp, err := http.Post(nodes[1].HTTP+"/api/v1/register", "application/json", strings.NewReader(fmt.Sprintf(`{"user":"bob","password":%q}`, imtest.Password)))
	if err != nil || resp.StatusCode != 409 {
		t.Fatalf("registering bob again on n2: %v %v, want 409", err, resp)
	}
	resp.Body.Close()
	var bobGot, carolGot recorder
	all := []string{nodes[0].HTTP, nodes[1].HTTP, nodes[2].HTTP}
	bob, err := imclient.Dial(context.Background(), imclient.Options{HTTP: nodes[1].HTTP, Nodes: all, User: "bob", Password: imtest.Password, Device: "phone", OnMessage: bobGot.add})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	carol, err := imclient.Dial(context.Background(), imclient.Options{HTTP: nodes[2].HTTP, Nodes: all, User: "carol", Password: imtest.Password, Device: "laptop", OnMessage: carolGot.add})
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()

	// Cross-node DMs: alice on n1 writes to bob on n2 and carol on n3.
	alice := dialPaho(t, nodes[0].MQTT, "alice", "alice:desk")
	for _, to := range []string{"bob", "carol"} {
		if tok := alice.Publish("im/u/"+to+"/dm/alice", 1, false, `{"body":"hello across nodes"}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish to %s: %v", to, tok.Error())
		}
	}
	imtest.Eventually(t, "bob on n2 and carol on n3 get alice's DM from n1", 10*time.Second, func() bool {
		return len(bobGot.get()) == 1 && len(carolGot.get()) == 1
	})
	// Message requests are shared state: alice's DM (through n1) is a
	// request carol sees on n3, accepts on n2, and n3 then lists none.
	carolTok := loginHTTP(t, nodes[2].HTTP, "carol")
	imtest.Eventually(t, "n3 lists carol's request from alice", 10*time.Second, func() bool {
		status, body := apiCall(t, "GET", nodes[2].HTTP+"/api/v1/requests", carolTok, "")
		return status == 200 && strings.Contains(body, `"dm:alice"`)
	})
	if status, body := apiCall(t, "POST", nodes[1].HTTP+"/api/v1/requests/dm:alice/accept", carolTok, ""); status != 200 {
		t.Fatalf("accept on n2: %d %s", status, body)
	}
	imtest.Eventually(t, "n3 lists no request of carol's", 10*time.Second, func() bool {
		status, body := apiCall(t, "GET", nodes[2].HTTP+"/api/v1/requests", carolTok, "")
		return status == 200 && !strings.Contains(body, `"dm:alice"`)
	})
	// So are contact lists: accepting on n2 made alice carol's contact on n1 too.
	imtest.Eventually(t, "n1 lists alice as carol's contact", 10*time.Second, func() bool {
		status, body := apiCall(t, "GET", nodes[0].HTTP+"/api/v1/contacts", carolTok, "")
		return status == 200 && strings.Contains(body, `"alice"`)
	})
	// And profiles: a display name set on n3 is what n2 shows.
	if status, body := apiCall(t, "PUT", nodes[2].HTTP+"/api/v1/me/profile", carolTok, `{"display_name":"Carol C"}`); status != 200 {
		t.Fatalf("profile on n3: %d %s", status, body)
	}
	imtest.Eventually(t, "n2 shows carol's display name", 10*time.Second, func() bool {
		status, body := apiCall(t, "GET", nodes[1].HTTP+"/api/v1/users/carol", carolTok, "")
		return status == 200 && strings.Contains(body, `"Carol C"`)
	})
	// A group made on n2 with members on every node.
	bobTok := loginHTTP(t, nodes[1].HTTP, "bob")
	status, body := apiCall(t, "POST", nodes[1].HTTP+"/api/v1/groups", bobTok, `{"id":"everywhere","members":["alice","carol"]}`)
	if status != 201 {
		t.Fatalf("create group on n2: %d %s", status, body)
	}
	imtest.Eventually(t, "n1 knows the group made on n2", 10*time.Second, func() bool {
		status, body := apiCall(t, "GET", nodes[0].HTTP+"/api/v1/groups", tok, "")
		return status == 200 && strings.Contains(body, `"everywhere"`)
	})
	if pt := alice.Publish("im/g/everywhere", 1, false, `{"body":"hello group"}`); !pt.WaitTimeout(10*time.Second) || pt.Error() != nil {
		t.Fatalf("group post: %v", pt.Error())
	}
	imtest.Eventually(t, "bob on n2 and carol on n3 get the group message from n1", 10*time.Second, func() bool {
		return len(bobGot.get()) == 2 && len(carolGot.get()) == 2
	})
	alice.Disconnect(0)

	// A QoS 1 flood into n1, which is killed mid-flood.
	f := startFlood(t, nodes[0].MQTT, 4)
	imtest.Eventually(t, "some acknowledged messages", 30*time.Second, func() bool { return f.n.Load() >= 300 })
	nodes[0].Cmd.Process.Kill() // SIGKILL, mid-flood
	nodes[0].Cmd.Wait()
	killed := time.Now()
	ackedCIDs := f.stop()
	t.Logf("%d messages acknowledged by n1 before SIGKILL", len(ackedCIDs))

	// The survivors take new writes once the log has a leader again.
	carolMQTT := dialPaho(t, nodes[2].MQTT, "carol", "carol:desk")
	imtest.Eventually(t, "a survivor accepts a write", 15*time.Second, func() bool {
		tok := carolMQTT.Publish("im/u/bob/dm/carol", 1, false, `{"body":"after the kill"}`)
		return tok.WaitTimeout(3*time.Second) && tok.Error() == nil
	})
	t.Logf("writes accepted again %v after the kill", time.Since(killed).Round(time.Millisecond))
	imtest.Eventually(t, "bob's client, wherever it was, gets the first message after the kill", 20*time.Second, func() bool {
		for _, m := range bobGot.get() {
			if m.Body == "after the kill" {
				return true
			}
		}
		return false
	})
	t.Logf("bob's client has it %v after the kill", time.Since(killed).Round(time.Millisecond))

	// /connect stops naming the dead node within the registry's TTL.
	named := map[string]bool{}
	imtest.Eventually(t, "/connect names only live nodes", 25*time.Second, func() bool {
		for range 6 {
			var c struct{ Node string }
			getJSON(t, nodes[1].HTTP+"/api/v1/connect", bobTok, &c)
			named[c.Node] = true
			if c.Node == "n1" {
				return false
			}
		}
		return true
	})
	t.Logf("/connect named %v; n1 gone from it %v after the kill", named, time.Since(killed).Round(time.Millisecond))

	// Both survivors hold every acknowledged message once, in the same order.
	var feeds [][]envelope.Message
	for _, p := range nodes[1:] {
		var feed []envelope.Message
		imtest.Eventually(t, "the survivor's view holds every acknowledged message", 15*time.Second, func() bool {
			feed = syncAll(t, p.HTTP, loginHTTP(t, p.HTTP, "bob"))
			n := 0
			for _, m := range feed {
				if ackedCIDs[m.CID] {
					n++
				}
			}
			return n >= len(ackedCIDs)
		})
		stored := map[string]int{}
		for i, m := range feed {
			stored[m.CID]++
			if i > 0 && imclient.KeyOf("bob", m) == imclient.KeyOf("bob", feed[i-1]) && m.Seq != feed[i-1].Seq+1 {
				t.Fatalf("%s: history has a hole: seq %d after %d", p.HTTP, m.Seq, feed[i-1].Seq)
			}
		}
		for cid := range ackedCIDs {
			if stored[cid] != 1 {
				t.Fatalf("%s: acknowledged %s stored %d times", p.HTTP, cid, stored[cid])
			}
		}
		feeds = append(feeds, feed)
	}
	a, b := feeds[0], feeds[1]
	n := min(len(a), len(b))
	for i := range n {
		if a[i].ID != b[i].ID || a[i].Seq != b[i].Seq {
			t.Fatalf("survivors disagree at feed entry %d: %s/%d vs %s/%d", i, a[i].ID, a[i].Seq, b[i].ID, b[i].Seq)
		}
	}
	// bob's device on n2 gets everything, exactly once and in order.
	imtest.Eventually(t, "bob's client catches up", 30*time.Second, func() bool { return len(bobGot.get()) >= len(a) })
	counts := map[imclient.ConvKey]int{}
	for _, m := range a {
		counts[imclient.KeyOf("bob", m)]++
	}
	checkExactlyOnceInOrder(t, "bob", bobGot.get(), counts)
}

func dialPaho(t *testing.T, url, user, clientID string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetUsername(user).SetPassword(imtest.Password).SetAutoReconnect(false).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s to %s: %v", clientID, url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func apiCall(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
