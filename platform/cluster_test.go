package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

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

// dialPaho connects a 3.1.1 client, retrying as a client should while the
// server answers "server unavailable" (its password KDF is busy, which a
// -race build on a loaded machine makes common; hooks/auth.go).
func dialPaho(t *testing.T, url, user, clientID string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetUsername(user).SetPassword(imtest.Password).SetAutoReconnect(false).SetCleanSession(true))
	deadline := time.Now().Add(30 * time.Second)
	for {
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatalf("connect %s to %s: no CONNACK in 10 s", clientID, url)
		}
		err := tok.Error()
		if err == nil {
			break
		}
		if !errors.Is(err, packets.ErrorRefusedServerUnavailable) || time.Now().After(deadline) {
			t.Fatalf("connect %s to %s: %v", clientID, url, err)
		}
		time.Sleep(200 * time.Millisecond) // the server said: retry later
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

// watch subscribes c to filter and returns what arrives, in order.
func watch(t *testing.T, c paho.Client, filter string) func() []paho.Message {
	t.Helper()
	var mu sync.Mutex
	var got []paho.Message
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return func() []paho.Message {
		mu.Lock()
		defer mu.Unlock()
		return append([]paho.Message(nil), got...)
	}
}

// lastPresence is the status of the last presence message in got ("" none).
func lastPresence(got []paho.Message) string {
	if len(got) == 0 {
		return ""
	}
	var p envelope.Presence
	json.Unmarshal(got[len(got)-1].Payload(), &p)
	return p.Status
}

// presenceVia is user's status as GET /api/v1/presence on base says.
func presenceVia(t *testing.T, base, token, user string) string {
	var out struct{ Presence map[string]envelope.Presence }
	getJSON(t, base+"/api/v1/presence?users="+user, token, &out)
	return out.Presence[user].Status
}

// TestClusterPresenceSignalsAndLists: three `mqim serve` processes. A
// user's presence is aggregated over every node's devices (a watcher on n1
// sees bob of n2 come, stay while a device of his is on n3, and go with
// the last); a ROAP signal reaches a user whose only device is on another
// node, and is answered OFFLINE only when no node has one; a block and a
// profile made on one node hold on the others.
func TestClusterPresenceSignalsAndLists(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	nodes, args := startCluster(t, 3)
	register(t, nodes[0].HTTP, "alice", "bob", "carol", "mallory")
	carolTok := loginHTTP(t, nodes[0].HTTP, "carol")
	carol := dialPaho(t, nodes[0].MQTT, "carol", "carol:watch")
	bobSeen := watch(t, carol, "im/presence/bob")
	online := func(what, want string) {
		t.Helper()
		imtest.Eventually(t, what, 15*time.Second, func() bool {
			return lastPresence(bobSeen()) == want && presenceVia(t, nodes[0].HTTP, carolTok, "bob") == want
		})
	}

	phone := dialPaho(t, nodes[1].MQTT, "bob", "bob:phone")
	online("carol on n1 sees bob of n2 online", "online")
	laptop := dialPaho(t, nodes[2].MQTT, "bob", "bob:laptop")
	signals := watch(t, laptop, "im/u/bob/signal/+")
	phone.Disconnect(100)
	online("bob stays online on n1 while his laptop is on n3", "online")

	alice := dialPaho(t, nodes[0].MQTT, "alice", "alice:desk")
	answers := watch(t, alice, "im/u/alice/signal/+")
	if tok := alice.Publish("im/u/bob/signal/alice", 0, false, `{"type":"OFFER","sessionID":"s1","sdp":"v=0"}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("signal: %v", tok.Error())
	}
	imtest.Eventually(t, "bob's laptop on n3 gets alice's signal from n1", 10*time.Second, func() bool {
		for _, m := range signals() {
			if strings.Contains(string(m.Payload()), `"sessionID":"s1"`) {
				return true
			}
		}
		return false
	})
	for _, m := range answers() {
		if strings.Contains(string(m.Payload()), "OFFLINE") {
			t.Fatalf("alice told bob is offline while his laptop is on n3: %s", m.Payload())
		}
	}

	laptop.Disconnect(100)
	online("carol on n1 sees bob offline once his last device, on n3, left", "offline")
	if tok := alice.Publish("im/u/bob/signal/alice", 0, false, `{"type":"OFFER","sessionID":"s2","sdp":"v=0"}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("signal: %v", tok.Error())
	}
	imtest.Eventually(t, "alice is told at once that bob is offline everywhere", 10*time.Second, func() bool {
		for _, m := range answers() {
			if strings.Contains(string(m.Payload()), `"errorType":"OFFLINE"`) && strings.Contains(string(m.Payload()), `"s2"`) {
				return true
			}
		}
		return false
	})

	// bob blocks mallory on n2; mallory writing to bob through n3 is refused.
	bobTok := loginHTTP(t, nodes[1].HTTP, "bob")
	if status, body := apiCall(t, "POST", nodes[1].HTTP+"/api/v1/blocks", bobTok, `{"user":"mallory"}`); status != 200 {
		t.Fatalf("block on n2: %d %s", status, body)
	}
	malTok := loginHTTP(t, nodes[2].HTTP, "mallory")
	imtest.Eventually(t, "n3 enforces the block made on n2", 10*time.Second, func() bool {
		status, _ := apiCall(t, "POST", nodes[2].HTTP+"/api/v1/publish", malTok, `{"topic":"im/u/bob/dm/mallory","payload":"hi"}`)
		return status == 403
	})
	if status, body := apiCall(t, "GET", nodes[0].HTTP+"/api/v1/blocks", loginHTTP(t, nodes[0].HTTP, "bob"), ""); status != 200 || !strings.Contains(body, `"mallory"`) {
		t.Fatalf("bob's blocks on n1: %d %s", status, body)
	}
	// A display name set on n2 shows on n3.
	if status, body := apiCall(t, "PUT", nodes[1].HTTP+"/api/v1/me/profile", bobTok, `{"display_name":"Bob Builder"}`); status != 200 {
		t.Fatalf("profile on n2: %d %s", status, body)
	}
	imtest.Eventually(t, "n3 shows the display name set on n2", 10*time.Second, func() bool {
		status, body := apiCall(t, "GET", nodes[2].HTTP+"/api/v1/users/bob", malTok, "")
		return status == 200 && strings.Contains(body, "Bob Builder")
	})

	// mallory comes online on n2 while n3 is down; n3, restarted, shows
	// her online to its own watchers (its retained copy had nothing).
	nodes[2].Cmd.Process.Kill()
	nodes[2].Cmd.Wait()
	dialPaho(t, nodes[1].MQTT, "mallory", "mallory:phone")
	nodes[2] = imtest.StartProc(t, args[2]...)
	watcher := dialPaho(t, nodes[2].MQTT, "carol", "carol:n3")
	malSeen := watch(t, watcher, "im/presence/mallory")
	imtest.Eventually(t, "restarted n3 shows mallory, online on n2, online", 15*time.Second, func() bool {
		return lastPresence(malSeen()) == "online"
	})

	// n1 alone is a minority: it refuses a write it cannot replicate,
	// with a clear error, and keeps nothing of it.
	for _, p := range nodes[1:] {
		p.Cmd.Process.Kill()
		p.Cmd.Wait()
	}
	aliceTok := loginHTTP(t, nodes[0].HTTP, "alice")
	status, body := apiCall(t, "POST", nodes[0].HTTP+"/api/v1/publish", aliceTok, `{"topic":"im/u/carol/dm/alice","payload":{"cid":"minority","body":"cut off"}}`)
	if status != 503 || !strings.Contains(body, `"unavailable"`) {
		t.Fatalf("a write on a minority node: %d %s, want 503 unavailable", status, body)
	}
	if status, body := apiCall(t, "GET", nodes[0].HTTP+"/api/v1/history/dm/alice", carolTok, ""); status != 200 || strings.Contains(body, "cut off") {
		t.Fatalf("carol's history on the minority node: %d %s", status, body)
	}
}
