package platform_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/internal/imtest"
)

type searchPage struct {
	Messages []envelope.Message
	More     bool
	Error    struct{ Code imerr.Code }
}

func searchAPI(t *testing.T, s *imtest.Server, tok string, params ...string) (int, searchPage) {
	t.Helper()
	v := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		v.Set(params[i], params[i+1])
	}
	var p searchPage
	status, err := s.API("GET", "/api/v1/search?"+v.Encode(), tok, nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	return status, p
}

func searchBodies(p searchPage) []string {
	out := []string{}
	for _, m := range p.Messages {
		out = append(out, m.Body)
	}
	return out
}

// TestSearchAPI: GET /api/v1/search over messages sent over MQTT and
// HTTP: words and CJK pairs, newest first, only conversations the caller
// may read now, the latest body of an edit, never a retracted message,
// paging, and every refusal of a bad query.
func TestSearchAPI(t *testing.T) {
	// Polling for the index searches often: no rate limit here (TestSearchRate).
	w := newAnnotationWorld(t, func(c *imtestConfig) { c.Limits.SearchRate = 0 })
	send := func(user, topic string, p map[string]any) envelope.Message {
		t.Helper()
		m, code := sendMQTT(t, w, user, topic, p)
		if code != "" {
			t.Fatalf("send %v: %s", p, code)
		}
		return m
	}
	lunch := send("alice", "im/u/bob/dm/alice", map[string]any{"body": "Lunch at noon?"})
	send("bob", "im/u/alice/dm/bob", map[string]any{"body": "明天的会议改到三点", "reply_to": lunch.ID})
	send("bob", "im/g/team", map[string]any{"body": "team lunch friday"})
	typo := send("alice", "im/u/carol/dm/alice", map[string]any{"body": "lunhc with carol"})
	send("alice", "im/u/carol/dm/alice", map[string]any{"type": "edit", "ref": typo.ID, "body": "lunch with carol"})
	secret := send("carol", "im/g/team", map[string]any{"body": "secret lunch plan"})
	send("carol", "im/g/team", map[string]any{"type": "retract", "ref": secret.ID})
	if m, code := sendHTTP(t, w, "dave", "im/u/carol/dm/dave", map[string]any{"body": "dave's lunch"}); code != "" {
		t.Fatalf("http send: %s %+v", code, m)
	}

	// The index follows history within moments.
	var got searchPage
	imtest.Eventually(t, "alice finds the three lunches she may read", 10*time.Second, func() bool {
		_, got = searchAPI(t, w.s, w.tok["alice"], "q", "LUNCH")
		return len(got.Messages) == 3
	})
	imtest.Eventually(t, "carol finds dave's lunch, the last message sent", 10*time.Second, func() bool {
		_, p := searchAPI(t, w.s, w.tok["carol"], "q", "dave's")
		return len(p.Messages) == 1
	})
	if want := []string{"lunch with carol", "team lunch friday", "Lunch at noon?"}; !slices.Equal(searchBodies(got), want) || got.More {
		t.Fatalf("alice's lunches: %q (more %v), want %q newest first", searchBodies(got), got.More, want)
	}
	if m := got.Messages[0]; m.Edited == 0 {
		t.Errorf("the edited message without edited: %+v", m)
	}

	cases := []struct {
		name, user string
		params     []string
		want       []string
	}{
		{"two CJK characters in a run", "alice", []string{"q", "会议"}, []string{"明天的会议改到三点"}},
		{"Chinese words and a Latin word", "bob", []string{"q", "三点 会议"}, []string{"明天的会议改到三点"}},
		{"two words", "bob", []string{"q", "lunch friday"}, []string{"team lunch friday"}},
		{"one conversation", "alice", []string{"q", "lunch", "conv", "dm/bob"}, []string{"Lunch at noon?"}},
		{"one group", "bob", []string{"q", "lunch", "conv", "g/team"}, []string{"team lunch friday"}},
		{"the old body of an edit", "alice", []string{"q", "lunhc"}, nil},
		{"a retracted message", "carol", []string{"q", "secret"}, nil},
		{"no one else's DMs", "dave", []string{"q", "lunch"}, []string{"dave's lunch"}},
		{"carol: her DMs and her group", "carol", []string{"q", "lunch"}, []string{"dave's lunch", "lunch with carol", "team lunch friday"}},
	}
	for _, c := range cases {
		status, p := searchAPI(t, w.s, w.tok[c.user], c.params...)
		if want := append([]string{}, c.want...); status != 200 || !slices.Equal(searchBodies(p), want) {
			t.Errorf("%s: %d %q, want %q", c.name, status, searchBodies(p), want)
		}
	}

	// Paging by id.
	_, p1 := searchAPI(t, w.s, w.tok["carol"], "q", "lunch", "limit", "2")
	_, p2 := searchAPI(t, w.s, w.tok["carol"], "q", "lunch", "limit", "2", "before", p1.Messages[1].ID)
	if !p1.More || p2.More || len(p2.Messages) != 1 || p2.Messages[0].Body != "team lunch friday" {
		t.Errorf("pages: %q more %v, then %q more %v", searchBodies(p1), p1.More, searchBodies(p2), p2.More)
	}

	// Only groups one may read now: bob leaves the team.
	w.s.MustAPI(200, "DELETE", "/api/v1/groups/team/members/bob", w.tok["bob"], nil, nil)
	if _, p := searchAPI(t, w.s, w.tok["bob"], "q", "friday"); len(p.Messages) != 0 {
		t.Errorf("bob still finds the team's messages after leaving: %q", searchBodies(p))
	}

	refusals := []struct {
		name   string
		params []string
		status int
		code   imerr.Code
	}{
		{"no q", nil, 400, imerr.Invalid},
		{"blank q", []string{"q", "   "}, 400, imerr.Invalid},
		{"q too long", []string{"q", strings.Repeat("a", 257)}, 400, imerr.Invalid},
		{"q of no words", []string{"q", ",;"}, 400, imerr.Invalid},
		{"bad before", []string{"q", "lunch", "before", "7"}, 400, imerr.Invalid},
		{"limit 0", []string{"q", "lunch", "limit", "0"}, 400, imerr.Invalid},
		{"limit 101", []string{"q", "lunch", "limit", "101"}, 400, imerr.Invalid},
		{"bad conv", []string{"q", "lunch", "conv", "team"}, 400, imerr.Invalid},
		{"a group one left", []string{"q", "lunch", "conv", "g/team"}, 403, imerr.Forbidden},
		{"a group that is not", []string{"q", "lunch", "conv", "g/nope"}, 404, imerr.NotFound},
		{"a DM with no one", []string{"q", "lunch", "conv", "dm/nobody"}, 404, imerr.NotFound},
	}
	for _, c := range refusals {
		status, p := searchAPI(t, w.s, w.tok["bob"], c.params...)
		if status != c.status || p.Error.Code != c.code {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, p.Error.Code, c.status, c.code)
		}
	}
	if status, _ := searchAPI(t, w.s, "", "q", "lunch"); status != 401 {
		t.Errorf("without a token: %d", status)
	}
}

// TestSearchRate: searches are rate limited per user (429 with
// Retry-After); another user is not held back.
func TestSearchRate(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.SearchRate, c.Limits.SearchBurst = 0.01, 3 })
	a, b := s.User("alice"), s.User("bob")
	for i := range 3 {
		if status, _ := searchAPI(t, s, a, "q", "x"); status != 200 {
			t.Fatalf("search %d: %d", i, status)
		}
	}
	if status, p := searchAPI(t, s, a, "q", "x"); status != 429 || p.Error.Code != imerr.RateLimited {
		t.Fatalf("over the burst: %d %+v", status, p)
	}
	if status, _ := searchAPI(t, s, b, "q", "x"); status != 200 {
		t.Fatalf("another user: %d", status)
	}
}
