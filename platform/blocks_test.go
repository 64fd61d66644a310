package platform_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

type apiErr struct {
	Error struct{ Code string }
}

// TestBlocking: once alice blocks mallory, mallory's DMs, receipts, typing
// and signals to alice are refused with forbidden over MQTT and HTTP alike
// (nothing stored or delivered), mallory cannot put alice into a group, and
// alice's presence is hidden from mallory on MQTT (retained and live), the
// SSE stream and GET /presence. The block is one-way and undone by
// DELETE /blocks/{user}.
func TestBlocking(t *testing.T) {
	s := imtest.Start(t, "")
	atok := s.User("alice")
	mtok := s.User("mallory")
	btok := s.User("bob")
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	mallory := s.MustConnect("mallory", imtest.ClientOpts{})
	bob := s.MustConnect("bob", imtest.ClientOpts{})

	var out struct {
		User    string
		Blocked bool
	}
	s.MustAPI(200, "POST", "/api/v1/blocks", atok, map[string]string{"user": "mallory"}, &out)
	if out.User != "mallory" || !out.Blocked {
		t.Fatalf("block answer %+v", out)
	}
	s.MustAPI(200, "POST", "/api/v1/blocks", atok, map[string]string{"user": "mallory"}, nil) // idempotent
	var list struct {
		Blocks []struct {
			User  string
			Since int64
		}
	}
	s.MustAPI(200, "GET", "/api/v1/blocks", atok, nil, &list)
	if len(list.Blocks) != 1 || list.Blocks[0].User != "mallory" || list.Blocks[0].Since == 0 {
		t.Fatalf("alice's blocks: %+v", list)
	}
	var e apiErr
	for _, c := range []struct {
		name string
		body any
		want int
		code string
	}{
		{"self", map[string]string{"user": "alice"}, 400, "invalid"},
		{"unknown user", map[string]string{"user": "nobody"}, 404, "not_found"},
	} {
		if code, _ := s.API("POST", "/api/v1/blocks", atok, c.body, &e); code != c.want || e.Error.Code != c.code {
			t.Errorf("block %s: %d %q, want %d %s", c.name, code, e.Error.Code, c.want, c.code)
		}
	}

	refused := []struct{ topic, payload string }{
		{"im/u/alice/dm/mallory", "hello?"},
		{"im/u/alice/receipt/mallory", `{"type":"read","seq":1}`},
		{"im/u/alice/typing/mallory", `{"state":"typing"}`},
		{"im/u/alice/signal/mallory", `{"type":"OFFER","sessionID":"s1","sdp":"v=0"}`},
	}
	for i, c := range refused {
		t.Run("mqtt "+c.topic, func(t *testing.T) {
			mallory.Publish(c.topic, 1, c.payload)
			// Each case makes two notices: the HTTP publish below notifies
			// too, like every refused publish.
			notes := mallory.WaitFor("im/u/mallory/error", 2*i+1)
			var n envelope.Notice
			json.Unmarshal(notes[2*i].Payload, &n)
			if n.Code != "forbidden" || n.Topic != c.topic {
				t.Fatalf("notice %+v", n)
			}
		})
		t.Run("http "+c.topic, func(t *testing.T) {
			code, err := s.API("POST", "/api/v1/publish", mtok, map[string]any{"topic": c.topic, "payload": json.RawMessage(mustJSONString(c.payload))}, &e)
			if err != nil || code != 403 || e.Error.Code != "forbidden" {
				t.Fatalf("HTTP publish: %d %q %v", code, e.Error.Code, err)
			}
			mallory.WaitFor("im/u/mallory/error", 2*i+2)
		})
	}
	// Fence: a later DM from bob reaches alice; nothing of mallory did.
	bob.Publish("im/u/alice/dm/bob", 1, "fence")
	alice.WaitFor("im/u/alice/dm/bob", 1)
	for _, p := range []string{"im/u/alice/dm/mallory", "im/u/alice/receipt/mallory", "im/u/alice/typing/mallory", "im/u/alice/signal/mallory"} {
		if n := len(alice.Messages(p)); n != 0 {
			t.Errorf("alice received %d messages on %s", n, p)
		}
	}
	var page struct{ Messages []envelope.Message }
	s.MustAPI(200, "GET", "/api/v1/history/dm/mallory", atok, nil, &page)
	if len(page.Messages) != 0 {
		t.Fatalf("alice-mallory history holds %+v", page.Messages)
	}

	// The block is one-way: alice can still write to mallory.
	alice.Publish("im/u/mallory/dm/alice", 1, "go away")
	mallory.WaitFor("im/u/mallory/dm/alice", 1)

	// Groups: mallory cannot put alice into one, bob can.
	if code, _ := s.API("POST", "/api/v1/groups", mtok, map[string]any{"id": "trap", "members": []string{"alice"}}, &e); code != 403 || e.Error.Code != "forbidden" {
		t.Fatalf("mallory creates a group with alice: %d %q", code, e.Error.Code)
	}
	s.MustAPI(201, "POST", "/api/v1/groups", mtok, map[string]any{"id": "trap2", "members": []string{"bob"}}, nil)
	if code, _ := s.API("POST", "/api/v1/groups/trap2/members", mtok, map[string]string{"user": "alice"}, &e); code != 403 || e.Error.Code != "forbidden" {
		t.Fatalf("mallory adds alice: %d %q", code, e.Error.Code)
	}
	if code, _ := s.API("POST", "/api/v1/groups/trap2/members", btok, map[string]string{"user": "alice"}, nil); code != 200 {
		t.Fatalf("bob adds alice: %d", code)
	}

	// Presence: alice's status change reaches bob, not mallory, on any
	// transport; bob's own change is the fence.
	st, code := openStream(t, s, "", map[string]string{"Authorization": "Bearer " + mtok})
	if code != 200 {
		t.Fatalf("stream: %d", code)
	}
	st.waitFor(t, "im/presence/bob", 1)
	alice.Publish("im/presence/alice", 1, `{"status":"away","text":"secret"}`)
	imtest.Eventually(t, "bob sees alice away", 10*time.Second, func() bool {
		for _, m := range bob.Messages("im/presence/alice") {
			if strings.Contains(string(m.Payload), "secret") {
				return true
			}
		}
		return false
	})
	bob.Publish("im/presence/bob", 1, `{"status":"away","text":"fence"}`)
	hasFence := func(msgs []string) bool {
		for _, m := range msgs {
			if strings.Contains(m, "fence") {
				return true
			}
		}
		return false
	}
	imtest.Eventually(t, "mallory's MQTT sees bob's fence", 10*time.Second, func() bool { return hasFence(payloads(mallory.Messages("im/presence/bob"))) })
	imtest.Eventually(t, "mallory's stream sees bob's fence", 10*time.Second, func() bool {
		var ps []string
		for _, ev := range st.matching("im/presence/bob") {
			ps = append(ps, string(ev.Payload))
		}
		return hasFence(ps)
	})
	for _, m := range mallory.Messages("im/presence/alice") {
		if strings.Contains(string(m.Payload), "secret") {
			t.Errorf("mallory's MQTT got alice's presence %s", m.Payload)
		}
	}
	if n := len(st.matching("im/presence/alice")); n != 0 {
		t.Errorf("mallory's stream got %d presence events of alice", n)
	}
	// A new subscription: the retained presence of alice is withheld.
	m2 := s.MustConnect("mallory", imtest.ClientOpts{Device: "two", Clean: true})
	bob.Publish("im/u/mallory/dm/bob", 1, "fence")
	m2.WaitFor("im/u/mallory/dm/bob", 1)
	m2.WaitFor("im/presence/bob", 1)
	if n := len(m2.Messages("im/presence/alice")); n != 0 {
		t.Errorf("mallory's new subscription got alice's retained presence")
	}
	var pres struct{ Presence map[string]envelope.Presence }
	s.MustAPI(200, "GET", "/api/v1/presence?users=alice,bob", mtok, nil, &pres)
	if p := pres.Presence["alice"]; p.Status != "offline" || p.Text != "" || p.TS != 0 || pres.Presence["bob"].Status != "away" {
		t.Fatalf("mallory's GET /presence: %+v", pres.Presence)
	}
	s.MustAPI(200, "GET", "/api/v1/presence?users=alice", btok, nil, &pres)
	if p := pres.Presence["alice"]; p.Status != "away" || p.Text != "secret" {
		t.Fatalf("bob's GET /presence: %+v", pres.Presence)
	}

	// Unblocked: mallory's DM goes through again.
	s.MustAPI(200, "DELETE", "/api/v1/blocks/mallory", atok, nil, nil)
	s.MustAPI(200, "GET", "/api/v1/blocks", atok, nil, &list)
	if len(list.Blocks) != 0 {
		t.Fatalf("after unblock: %+v", list)
	}
	mallory.Publish("im/u/alice/dm/mallory", 1, "sorry")
	alice.WaitFor("im/u/alice/dm/mallory", 1)
}

// TestBlocksBoundedAndDurable: blocks_per_user bounds a list (429
// quota_exceeded), and the list survives a restart.
func TestBlocksBoundedAndDurable(t *testing.T) {
	dir := t.TempDir()
	s := imtest.Start(t, dir, func(c *imtestConfig) { c.Limits.BlocksPerUser = 2 })
	tok := s.User("alice")
	for i := range 3 {
		s.User(fmt.Sprintf("u%d", i))
	}
	s.MustAPI(200, "POST", "/api/v1/blocks", tok, map[string]string{"user": "u0"}, nil)
	s.MustAPI(200, "POST", "/api/v1/blocks", tok, map[string]string{"user": "u1"}, nil)
	var e apiErr
	if code, _ := s.API("POST", "/api/v1/blocks", tok, map[string]string{"user": "u2"}, &e); code != 429 || e.Error.Code != "quota_exceeded" {
		t.Fatalf("third block: %d %q", code, e.Error.Code)
	}
	s.Close()
	s = imtest.Start(t, dir, func(c *imtestConfig) { c.Limits.BlocksPerUser = 2 })
	tok = s.Login("alice")
	var list struct{ Blocks []struct{ User string } }
	s.MustAPI(200, "GET", "/api/v1/blocks", tok, nil, &list)
	if len(list.Blocks) != 2 || list.Blocks[0].User != "u0" || list.Blocks[1].User != "u1" {
		t.Fatalf("after restart: %+v", list)
	}
	s.MustConnect("u0", imtest.ClientOpts{}).Publish("im/u/alice/dm/u0", 1, "still blocked?")
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	s.MustConnect("u2", imtest.ClientOpts{}).Publish("im/u/alice/dm/u2", 1, "fence")
	alice.WaitFor("im/u/alice/dm/u2", 1)
	if n := len(alice.Messages("im/u/alice/dm/u0")); n != 0 {
		t.Fatalf("a blocked user's DM arrived after a restart")
	}
}

func payloads(ms []imtest.Msg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	return out
}

func mustJSONString(s string) string {
	if json.Valid([]byte(s)) {
		return s
	}
	b, _ := json.Marshal(s)
	return string(b)
}
