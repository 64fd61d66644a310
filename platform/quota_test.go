package platform_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// apiError is the body of an HTTP error answer.
type apiError struct {
	Error struct{ Code, Message string }
}

// openOrRefused opens GET /api/v1/stream with a Bearer token. A stream that
// opens is closed at cleanup; a refusal's status and error code are returned.
func openOrRefused(t *testing.T, s *imtest.Server, token string) (*sseStream, int, string) {
	t.Helper()
	st, code := openStream(t, s, "", map[string]string{"Authorization": "Bearer " + token})
	if code == http.StatusOK {
		return st, code, ""
	}
	// Refused: ask again for the body (a refusal is not a stream, so this returns).
	var e apiError
	c, err := s.API("GET", "/api/v1/stream", token, nil, &e)
	if err != nil || c != code {
		t.Fatalf("stream refused with %d, then %d (%v)", code, c, err)
	}
	return nil, code, e.Error.Code
}

// TestStreamQuota: one user's SSE streams and poll sessions together are
// capped (limits.streams_per_user); over it, the user's oldest idle poll
// session gives way, and with none left the answer is 429 quota_exceeded.
// Closing a stream frees its slot; other users are not affected.
func TestStreamQuota(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.StreamsPerUser = 3 })
	bob := s.User("bob")
	alice := s.User("alice")

	var p1, p2 struct{ Session string }
	s.MustAPI(200, "GET", "/api/v1/poll", bob, nil, &p1)
	s.MustAPI(200, "GET", "/api/v1/poll", bob, nil, &p2)
	st1, code, _ := openOrRefused(t, s, bob)
	if code != 200 {
		t.Fatalf("third feed: %d", code)
	}
	// Full: each new stream evicts the least recently polled session.
	if _, code, _ := openOrRefused(t, s, bob); code != 200 {
		t.Fatalf("stream over the cap with an idle poll session: %d, want 200 (the session gives way)", code)
	}
	if code, _ := s.API("GET", "/api/v1/poll?timeout=0&session="+p1.Session, bob, nil, nil); code != 404 {
		t.Fatalf("evicted (oldest) poll session: %d, want 404", code)
	}
	if _, code, _ := openOrRefused(t, s, bob); code != 200 {
		t.Fatalf("second eviction: %d", code)
	}
	// Only streams left: refused, whichever transport asks.
	_, code, ecode := openOrRefused(t, s, bob)
	if code != http.StatusTooManyRequests || ecode != "quota_exceeded" {
		t.Fatalf("stream over the cap: %d %q, want 429 quota_exceeded", code, ecode)
	}
	var e apiError
	if code, _ := s.API("GET", "/api/v1/poll", bob, nil, &e); code != http.StatusTooManyRequests || e.Error.Code != "quota_exceeded" {
		t.Fatalf("poll over the cap: %d %+v", code, e)
	}
	if _, code, _ := openOrRefused(t, s, alice); code != 200 {
		t.Fatalf("another user's stream: %d", code)
	}
	// A closed stream frees its slot (the server sees the close a little later).
	st1.close()
	imtest.Eventually(t, "a slot freed by a closed stream", 5*time.Second, func() bool {
		code, _ := s.API("GET", "/api/v1/poll", bob, nil, nil)
		return code == 200
	})
}

// TestStreamTicketQuota: a user holds at most limits.stream_tickets_per_user
// unused tickets (429 quota_exceeded beyond); a spent or expired ticket
// frees its place.
func TestStreamTicketQuota(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.TicketsPerUser = 2 })
	bob := s.User("bob")
	carol := s.User("carol")
	var tk struct{ Ticket string }
	s.MustAPI(200, "POST", "/api/v1/stream/ticket", bob, nil, &tk)
	s.MustAPI(200, "POST", "/api/v1/stream/ticket", bob, nil, nil)
	var e apiError
	if code, _ := s.API("POST", "/api/v1/stream/ticket", bob, nil, &e); code != http.StatusTooManyRequests || e.Error.Code != "quota_exceeded" {
		t.Fatalf("third ticket: %d %+v, want 429 quota_exceeded", code, e)
	}
	s.MustAPI(200, "POST", "/api/v1/stream/ticket", carol, nil, nil)
	if _, code := openStream(t, s, "?ticket="+tk.Ticket, nil); code != 200 {
		t.Fatalf("stream by ticket: %d", code)
	}
	s.MustAPI(200, "POST", "/api/v1/stream/ticket", bob, nil, nil) // the spent one freed its place
}

// TestPollIdle: a poll session nobody polls for limits.poll_idle is closed
// and frees its stream slot.
func TestPollIdle(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) {
		c.Limits.StreamsPerUser = 1
		c.Limits.PollIdle = 300 * time.Millisecond
	})
	bob := s.User("bob")
	var p struct{ Session string }
	s.MustAPI(200, "GET", "/api/v1/poll", bob, nil, &p)
	// (Polling the session would keep it alive: watch the gateway instead.)
	imtest.Eventually(t, "the idle session closed", 5*time.Second, func() bool { return s.Gateway.Feeds() == 0 })
	if code, _ := s.API("GET", "/api/v1/poll?timeout=0&session="+p.Session, bob, nil, nil); code != 404 {
		t.Fatalf("idle session: %d, want 404", code)
	}
	if _, code, _ := openOrRefused(t, s, bob); code != 200 {
		t.Fatalf("stream after the idle session closed: %d", code)
	}
}

// retainedTopics lists the retained topics under prefix in s's broker,
// outside im/ and $SYS.
func retainedTopics(s *imtest.Server, prefix string) map[string]string {
	out := map[string]string{}
	for t, pk := range s.Broker.Server.Topics.Retained.GetAll() {
		if strings.HasPrefix(t, prefix) && !strings.HasPrefix(t, "im/") && !strings.HasPrefix(t, "$") {
			out[t] = string(pk.Payload)
		}
	}
	return out
}

// TestRetainedQuota: retained messages in operator namespaces are capped per
// user by count and by bytes (topic + payload): over it an MQTT 5 publisher
// gets PUBACK 0x97 and the notice quota_exceeded on im/u/{me}/error, an MQTT
// 3.1.1 publisher a plain PUBACK, and nothing is retained. A retained delete
// is always accepted and frees quota, and the quota survives a restart.
func TestRetainedQuota(t *testing.T) {
	dir := t.TempDir()
	limits := func(c *imtestConfig) {
		c.Rules = []acl.Rule{{User: "*", Access: "readwrite", Topics: []string{"devices/%u/#", "shared/#"}}}
		c.Limits.RetainedPerUser = 2
		c.Limits.RetainedBytesPerUser = 100
	}
	s := imtest.Start(t, dir, limits)
	s.User("alice")
	s.User("bob")
	notices := s.MustConnect("alice", imtest.ClientOpts{Device: "watch", Clean: true})
	raw := s.MustDialRaw5("alice:v5", "alice", imtest.Password)
	steps := []struct {
		topic, payload string
		want           byte
	}{
		{"devices/alice/a", "1", 0},
		{"devices/alice/a", "2", 0}, // replacing one's own message costs nothing more
		{"shared/x", "3", 0},
		{"devices/alice/c", "4", 0x97},                     // a third message
		{"devices/alice/a", strings.Repeat("x", 90), 0x97}, // 15+90 bytes
		{"devices/alice/a", "", 0},                         // a delete frees
		{"devices/alice/c", "5", 0},
		{"devices/alice/d", "", 0}, // deleting nothing is fine too
	}
	for i, st := range steps {
		rc, err := raw.PublishRetained(st.topic, []byte(st.payload))
		if err != nil || rc != st.want {
			t.Fatalf("step %d: retain %s %q: reason %#x, err %v; want %#x", i, st.topic, st.payload, rc, err, st.want)
		}
	}
	want := map[string]string{"devices/alice/c": "5", "shared/x": "3"}
	if got := retainedTopics(s, ""); !maps.Equal(got, want) {
		t.Fatalf("retained %v, want %v", got, want)
	}
	// The notices client handles messages concurrently: find c's by topic.
	ms := notices.WaitFor("im/u/alice/error", 2)
	var n envelope.Notice
	for _, m := range ms {
		if err := json.Unmarshal(m.Payload, &n); err != nil || n.Topic == "devices/alice/c" {
			break
		}
	}
	if n.Code != "quota_exceeded" || n.Topic != "devices/alice/c" {
		t.Fatalf("no quota_exceeded notice for devices/alice/c among %d: last %+v", len(ms), n)
	}
	// MQTT 3.1.1: acknowledged, not retained.
	v3 := s.MustConnect("alice", imtest.ClientOpts{Device: "v3", Clean: true, NoSub: true})
	if tok := v3.Client.Publish("devices/alice/e", 1, true, "6"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("3.1.1 publish: %v", tok.Error())
	}
	notices.WaitFor("im/u/alice/error", 3)
	if _, ok := retainedTopics(s, "devices/alice/e")["devices/alice/e"]; ok {
		t.Fatal("a 3.1.1 publish over the quota was retained")
	}
	// bob overwrites alice's shared/x: it counts as his, and frees hers.
	rb, _, err := imtest.DialRaw5(s.MQTT, "bob:v5", "bob", imtest.Password)
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := rb.PublishRetained("shared/x", []byte("b")); err != nil || rc != 0 {
		t.Fatalf("bob: %#x %v", rc, err)
	}
	rb.Close()
	if rc, err := raw.PublishRetained("devices/alice/f", []byte("7")); err != nil || rc != 0 {
		t.Fatalf("after bob took shared/x over: %#x %v", rc, err)
	}
	raw.Close()
	notices.Disconnect(0)
	v3.Disconnect(0)
	s.Close()

	// After a restart alice still holds two: a third is refused.
	s = imtest.Start(t, dir, limits)
	raw, _, err = imtest.DialRaw5(s.MQTT, "alice:v5", "alice", imtest.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if rc, err := raw.PublishRetained("devices/alice/g", []byte("8")); err != nil || rc != 0x97 {
		t.Fatalf("after restart, a third retained message: %#x %v, want 0x97", rc, err)
	}
	if rc, err := raw.PublishRetained("devices/alice/c", nil); err != nil || rc != 0 {
		t.Fatalf("after restart, delete: %#x %v", rc, err)
	}
	if rc, err := raw.PublishRetained("devices/alice/g", []byte("8")); err != nil || rc != 0 {
		t.Fatalf("after restart and a delete: %#x %v", rc, err)
	}
}

// TestOperatorPublishRate: publishes in operator namespaces take from the
// same per-user bucket as im/ publishes: past it, 0x97 and rate_limited.
func TestOperatorPublishRate(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) {
		c.Rules = []acl.Rule{{User: "*", Access: "readwrite", Topics: []string{"devices/%u/#"}}}
		c.Limits.PublishRate, c.Limits.PublishBurst = 0.001, 3 // no refill during the test
	})
	s.User("alice")
	s.User("bob")
	raw, _, err := imtest.DialRaw5(s.MQTT, "alice:v5", "alice", imtest.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	steps := []struct {
		topic string
		want  byte
	}{
		{"devices/alice/t", 0},
		{"im/u/bob/dm/alice", 0}, // im/ and operator publishes share the bucket
		{"devices/alice/t", 0},
		{"devices/alice/t", 0x97},
		{"im/u/bob/dm/alice", 0x97},
	}
	for i, st := range steps {
		rc, err := raw.Publish(st.topic, []byte(`{"body":"x"}`))
		if err != nil || rc != st.want {
			t.Fatalf("step %d: %s: reason %#x, err %v; want %#x", i, st.topic, rc, err, st.want)
		}
	}
	// bob's bucket is his own.
	rb, _, err := imtest.DialRaw5(s.MQTT, "bob:v5", "bob", imtest.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	if rc, err := rb.Publish("devices/bob/t", []byte("x")); err != nil || rc != 0 {
		t.Fatalf("bob: %#x %v", rc, err)
	}
}

// TestRetainedWillQuota: a retained will over the user's retained quota is
// still published when its client drops, but not retained (mochi sends
// wills without OnPublish, so the quota is checked as the will goes out).
func TestRetainedWillQuota(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) {
		c.Rules = []acl.Rule{{User: "*", Access: "readwrite", Topics: []string{"devices/%u/#"}}}
		c.Limits.RetainedPerUser = 1
	})
	s.User("alice")
	dial := func(device, will string) *imtest.Raw5 {
		cp := packets.ConnectParams{ClientIdentifier: "alice:" + device,
			Username: []byte("alice"), UsernameFlag: true, Password: []byte(imtest.Password), PasswordFlag: true}
		if will != "" {
			cp.WillFlag, cp.WillRetain, cp.WillTopic, cp.WillPayload = true, true, will, []byte("gone")
		}
		r, code, err := imtest.DialRaw5Connect(s.MQTT, cp)
		if err != nil || code != 0 {
			t.Fatalf("connect %s: %#x %v", device, code, err)
		}
		return r
	}
	// Within the quota, a dropped client's will is retained.
	w1 := dial("w1", "devices/alice/w1")
	w1.Close()
	imtest.Eventually(t, "the first will retained", 5*time.Second, func() bool {
		return retainedTopics(s, "devices/alice/w1")["devices/alice/w1"] == "gone"
	})
	// The quota is full: the second will reaches subscribers, unretained.
	watch := s.MustConnect("alice", imtest.ClientOpts{Device: "watch", Clean: true})
	if tok := watch.Subscribe("devices/alice/w2", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	w2 := dial("w2", "devices/alice/w2")
	w2.Close()
	watch.WaitFor("devices/alice/w2", 1)
	if _, ok := retainedTopics(s, "devices/alice/w2")["devices/alice/w2"]; ok {
		t.Fatal("a will over the retained quota was retained")
	}
}

// TestGroupQuotas: a user owns at most limits.groups_owned_per_user groups
// and is a member of at most limits.groups_per_user, however it was added
// (so a spammer cannot pull a victim into thousands of groups); past either,
// 429 quota_exceeded. A user added to a group can leave it, which frees the
// place and refuses the group: no member can add them back, though they may
// rejoin themselves. The counts survive a restart.
func TestGroupQuotas(t *testing.T) {
	dir := t.TempDir()
	limits := func(c *imtestConfig) { c.Limits.GroupsOwnedPerUser, c.Limits.GroupsPerUser = 2, 3 }
	s := imtest.Start(t, dir, limits)
	spam := s.User("spam")
	victim := s.User("victim")
	other := s.User("other")
	var e apiError
	create := func(tok, id string, members ...string) int {
		t.Helper()
		e = apiError{}
		code, err := s.API("POST", "/api/v1/groups", tok, map[string]any{"id": id, "members": members}, &e)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	add := func(tok, gid, user string) int {
		t.Helper()
		e = apiError{}
		code, err := s.API("POST", "/api/v1/groups/"+gid+"/members", tok, map[string]string{"user": user}, &e)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	if c := create(spam, "s1", "victim"); c != 201 {
		t.Fatalf("s1: %d", c)
	}
	if c := create(spam, "s2"); c != 201 {
		t.Fatalf("s2: %d", c)
	}
	if c := create(spam, "s3"); c != 429 || e.Error.Code != "quota_exceeded" {
		t.Fatalf("third owned group: %d %+v, want 429 quota_exceeded", c, e)
	}
	if c := add(spam, "s2", "victim"); c != 200 {
		t.Fatalf("add victim to s2: %d", c)
	}
	if c := create(other, "o1", "victim"); c != 201 {
		t.Fatalf("o1: %d", c)
	}
	// victim is in three groups: nobody can add it to a fourth.
	if c := create(other, "o2", "victim"); c != 429 || e.Error.Code != "quota_exceeded" {
		t.Fatalf("create with a member at its cap: %d %+v", c, e)
	}
	if c := create(other, "o2"); c != 201 {
		t.Fatalf("o2: %d", c)
	}
	if c := add(other, "o2", "victim"); c != 429 || e.Error.Code != "quota_exceeded" {
		t.Fatalf("add a member at its cap: %d %+v", c, e)
	}
	// victim leaves s1: a place is free, and spam cannot add it back.
	s.MustAPI(200, "DELETE", "/api/v1/groups/s1/members/victim", victim, nil, nil)
	if c := add(spam, "s1", "victim"); c != 403 || e.Error.Code != "forbidden" {
		t.Fatalf("re-adding a user who left: %d %+v, want 403", c, e)
	}
	if c := add(other, "o2", "victim"); c != 200 {
		t.Fatalf("add after a place was freed: %d %+v", c, e)
	}
	s.Close()

	s = imtest.Start(t, dir, limits)
	spam, victim = s.Login("spam"), s.Login("victim")
	if c := create(spam, "s3"); c != 429 {
		t.Fatalf("after restart, a third owned group: %d", c)
	}
	if c := add(spam, "s1", "victim"); c != 403 {
		t.Fatalf("after restart, re-adding a user who left: %d", c)
	}
	s.MustAPI(200, "DELETE", "/api/v1/groups/s2/members/victim", victim, nil, nil)
	// A user who left may rejoin by itself.
	if c := add(victim, "s1", "victim"); c != 200 {
		t.Fatalf("rejoining a group one left: %d %+v", c, e)
	}
	// Rejoining counts like any membership: victim is in three again.
	if c := add(victim, "s2", "victim"); c != 429 {
		t.Fatalf("rejoining at the cap: %d, want 429", c)
	}
}
