package platform_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// sseEvent is one Server-Sent Event with its data decoded.
type sseEvent struct {
	ID, Event string
	Topic     string
	Payload   json.RawMessage
	Data      string
}

// sseStream reads a GET /api/v1/stream response into events.
type sseStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	mu     sync.Mutex
	events []sseEvent
	done   chan struct{}
}

func openStream(t *testing.T, s *imtest.Server, query string, hdr map[string]string) (*sseStream, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.HTTP+"/api/v1/stream"+query, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode
	}
	st := &sseStream{resp: resp, cancel: cancel, done: make(chan struct{})}
	go st.read()
	t.Cleanup(st.close)
	return st, 200
}

func (st *sseStream) read() {
	defer close(st.done)
	sc := bufio.NewScanner(st.resp.Body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Data != "" {
				var d struct {
					Topic   string          `json:"topic"`
					Payload json.RawMessage `json:"payload"`
				}
				_ = json.Unmarshal([]byte(ev.Data), &d)
				ev.Topic, ev.Payload = d.Topic, d.Payload
				st.mu.Lock()
				st.events = append(st.events, ev)
				st.mu.Unlock()
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.Data = line[6:]
		}
	}
}

func (st *sseStream) close() {
	st.cancel()
	st.resp.Body.Close()
	<-st.done
}

// matching returns the events whose topic starts with prefix.
func (st *sseStream) matching(prefix string) []sseEvent {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []sseEvent
	for _, e := range st.events {
		if e.Event == "" && strings.HasPrefix(e.Topic, prefix) {
			out = append(out, e)
		}
	}
	return out
}

func (st *sseStream) waitFor(t *testing.T, prefix string, n int) []sseEvent {
	t.Helper()
	imtest.Eventually(t, fmt.Sprintf("%d stream events on %s", n, prefix), 10*time.Second, func() bool {
		return len(st.matching(prefix)) >= n
	})
	return st.matching(prefix)
}

func bodies(t *testing.T, evs []sseEvent) []string {
	t.Helper()
	var out []string
	for _, e := range evs {
		var m envelope.Message
		if err := json.Unmarshal(e.Payload, &m); err != nil || m.ID == "" {
			t.Fatalf("not a stamped message: %s", e.Payload)
		}
		out = append(out, m.Body)
	}
	return out
}

// TestSSEResume: a stream dropped mid-conversation and reopened with
// Last-Event-ID gets exactly the messages it missed, in order.
func TestSSEResume(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	bobTok := s.User("bob")
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	auth := map[string]string{"Authorization": "Bearer " + bobTok}

	st, _ := openStream(t, s, "?device=laptop", auth)
	imtest.Eventually(t, "ready event", 5*time.Second, func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(st.events) > 0 && st.events[0].Event == "ready"
	})
	for i := 1; i <= 3; i++ {
		alice.Publish("im/u/bob/dm/alice", 1, fmt.Sprintf("before %d", i))
	}
	got := st.waitFor(t, "im/u/bob/dm/alice", 3)
	if b := bodies(t, got); strings.Join(b, ",") != "before 1,before 2,before 3" {
		t.Fatalf("live: %v", b)
	}
	last := got[2].ID
	if last == "" || got[0].ID == got[1].ID {
		t.Fatalf("chat events need distinct ids: %+v", got)
	}
	st.close()

	for i := 1; i <= 4; i++ {
		alice.Publish("im/u/bob/dm/alice", 1, fmt.Sprintf("missed %d", i))
	}
	// bob's own message from another device arrives as a carbon.
	if code, err := s.API("POST", "/api/v1/publish", bobTok, map[string]any{"topic": "im/u/alice/dm/bob", "payload": "mine"}, nil); err != nil || code != 200 {
		t.Fatalf("publish: %d %v", code, err)
	}
	st2, _ := openStream(t, s, "?device=laptop", map[string]string{"Authorization": "Bearer " + bobTok, "Last-Event-ID": last})
	got = st2.waitFor(t, "im/u/bob/dm/", 5)
	if b := bodies(t, got); strings.Join(b, ",") != "missed 1,missed 2,missed 3,missed 4,mine" {
		t.Fatalf("resumed: %v", b)
	}
	if got[4].Topic != "im/u/bob/dm/alice" {
		t.Fatalf("carbon on %q, want im/u/bob/dm/alice (as MQTT devices get it)", got[4].Topic)
	}
	// A few more live ones; nothing repeats.
	alice.Publish("im/u/bob/dm/alice", 1, "after")
	got = st2.waitFor(t, "im/u/bob/dm/", 6)
	time.Sleep(50 * time.Millisecond) // let a duplicate, if any, arrive
	if n := len(st2.matching("im/u/bob/dm/")); n != 6 || bodies(t, got)[5] != "after" {
		t.Fatalf("after resume: %d events %v", n, bodies(t, st2.matching("im/u/bob/dm/")))
	}

	// A ticket opens one stream, once; resuming by ?since works as well.
	var tk struct{ Ticket string }
	s.MustAPI(200, "POST", "/api/v1/stream/ticket", bobTok, nil, &tk)
	st3, code := openStream(t, s, "?ticket="+tk.Ticket+"&since="+last, nil)
	if code != 200 {
		t.Fatalf("ticket stream: %d", code)
	}
	if b := bodies(t, st3.waitFor(t, "im/u/bob/dm/", 6)); len(b) != 6 || b[0] != "missed 1" {
		t.Fatalf("since=: %v", b)
	}
	if _, code := openStream(t, s, "?ticket="+tk.Ticket, nil); code != 401 {
		t.Fatalf("reused ticket: %d, want 401", code)
	}
	if _, code := openStream(t, s, "", nil); code != 401 {
		t.Fatalf("no credentials: %d, want 401", code)
	}
	if _, code := openStream(t, s, "?since=other-epoch-3", auth); code != 410 {
		t.Fatalf("cursor from another epoch: %d, want 410", code)
	}
}

// TestStreamIsADevice: an SSE stream makes its user online, receives the
// ephemeral traffic (typing, signals) an MQTT device gets, and going away
// makes the user offline again.
func TestStreamIsADevice(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	bobTok := s.User("bob")
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	presence := func(status string) func() bool {
		return func() bool {
			ms := alice.Messages("im/presence/bob")
			return len(ms) > 0 && strings.Contains(string(ms[len(ms)-1].Payload), `"`+status+`"`)
		}
	}
	st, _ := openStream(t, s, "", map[string]string{"Authorization": "Bearer " + bobTok})
	imtest.Eventually(t, "bob online", 5*time.Second, presence("online"))
	// The stream starts with retained presence, like an MQTT subscription.
	st.waitFor(t, "im/presence/alice", 1)
	alice.Publish("im/u/bob/typing/alice", 0, `{"state":"typing"}`)
	alice.Publish("im/u/bob/signal/alice", 0, `{"type":"OFFER","sessionID":"s1","sdp":"x"}`)
	sig := st.waitFor(t, "im/u/bob/signal/alice", 1)
	if strings.Contains(string(sig[0].Payload), "OFFLINE") || !strings.Contains(string(sig[0].Payload), `"from":"alice"`) {
		t.Fatalf("signal: %s", sig[0].Payload)
	}
	st.waitFor(t, "im/u/bob/typing/alice", 1)
	if len(alice.Messages("im/u/alice/signal/bob")) != 0 {
		t.Fatal("alice got ERROR OFFLINE although bob's stream is open")
	}
	st.close()
	imtest.Eventually(t, "bob offline", 5*time.Second, presence("offline"))
}

// TestLongPoll: a poll session waits for the next message, carries the
// same events as the stream, and answers an idle poll at its timeout.
func TestLongPoll(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	bobTok := s.User("bob")
	// alice is bob's contact: her DMs raise no message request, so bob's inbox holds only what this test counts.
	s.MustAPI(200, "POST", "/api/v1/contacts", bobTok, map[string]string{"user": "alice"}, nil)
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	type pollResp struct {
		Session, Cursor string
		More            bool
		Events          []struct {
			Topic, ID string
			Payload   json.RawMessage
		}
	}
	var open pollResp
	s.MustAPI(200, "GET", "/api/v1/poll?device=old-browser", bobTok, nil, &open)
	if open.Session == "" || open.Cursor == "" {
		t.Fatalf("open: %+v", open)
	}
	imtest.Eventually(t, "bob online", 5*time.Second, func() bool {
		ms := alice.Messages("im/presence/bob")
		return len(ms) > 0 && strings.Contains(string(ms[len(ms)-1].Payload), `"online"`)
	})

	poll := func(since string, timeout int) (pollResp, time.Duration) {
		var r pollResp
		start := time.Now()
		s.MustAPI(200, "GET", fmt.Sprintf("/api/v1/poll?session=%s&since=%s&timeout=%d", open.Session, since, timeout), bobTok, nil, &r)
		return r, time.Since(start)
	}
	type result struct {
		r pollResp
		d time.Duration
	}
	ch := make(chan result, 1)
	go func() { r, d := poll(open.Cursor, 20); ch <- result{r, d} }()
	time.Sleep(200 * time.Millisecond) // the poll is waiting (a late publish is found anyway)
	alice.Publish("im/u/bob/dm/alice", 1, "first")
	res := <-ch
	if res.d > 10*time.Second || len(res.r.Events) == 0 {
		t.Fatalf("poll: %+v after %v", res.r, res.d)
	}
	var chat []string
	for _, e := range res.r.Events {
		if e.Topic == "im/u/bob/dm/alice" {
			var m envelope.Message
			_ = json.Unmarshal(e.Payload, &m)
			chat = append(chat, m.Body)
			if e.ID == "" {
				t.Fatalf("chat event without cursor: %+v", e)
			}
		}
	}
	if len(chat) != 1 || chat[0] != "first" || res.r.Cursor == open.Cursor {
		t.Fatalf("poll events %+v", res.r)
	}
	// Ephemeral events wait in the session between polls.
	alice.Publish("im/u/bob/typing/alice", 0, `{"state":"typing"}`)
	alice.Publish("im/u/bob/dm/alice", 1, "second")
	r2, _ := poll(res.r.Cursor, 20)
	var topics []string
	for _, e := range r2.Events {
		topics = append(topics, e.Topic)
	}
	if !strings.Contains(strings.Join(topics, " "), "im/u/bob/typing/alice") || !strings.Contains(strings.Join(topics, " "), "im/u/bob/dm/alice") {
		t.Fatalf("second poll topics %v", topics)
	}
	// Repeating a cursor repeats exactly what follows it (a lost answer).
	r3, _ := poll(res.r.Cursor, 1)
	if len(r3.Events) != 1 || r3.Events[0].Topic != "im/u/bob/dm/alice" || r3.Cursor != r2.Cursor {
		t.Fatalf("repeat poll: %+v", r3)
	}
	// Nothing new: the poll answers empty at its timeout.
	r4, d := poll(r2.Cursor, 1)
	if len(r4.Events) != 0 || d < 900*time.Millisecond || d > 5*time.Second || r4.Cursor != r2.Cursor {
		t.Fatalf("idle poll: %+v after %v", r4, d)
	}
	if code, _ := s.API("GET", "/api/v1/poll?session=nope", bobTok, nil, nil); code != 404 {
		t.Fatalf("unknown session: %d", code)
	}
}

// TestHTTPPublish: POST /api/v1/publish goes through the same checks as an
// MQTT publish and answers with the stamped message or the stable code.
func TestHTTPPublish(t *testing.T) {
	s := imtest.Start(t, "", func(c *config.Config) { c.BodyLimit = 100 })
	aliceTok := s.User("alice")
	s.User("bob")
	s.User("carol")
	s.MustAPI(201, "POST", "/api/v1/groups", aliceTok, map[string]any{"id": "team", "members": []string{"bob"}}, nil)
	carolTok := s.Login("carol")
	bob := s.MustConnect("bob", imtest.ClientOpts{})

	type answer struct {
		Message *envelope.Message
		Error   *struct{ Code, Message string }
	}
	cases := []struct {
		name   string
		token  string
		body   any
		status int
		code   string
		body1  string // expected stamped body
	}{
		{"json envelope", aliceTok, map[string]any{"topic": "im/u/bob/dm/alice", "payload": map[string]any{"cid": "c1", "body": "hi"}}, 200, "", "hi"},
		{"plain text", aliceTok, map[string]any{"topic": "im/u/bob/dm/alice", "payload": "plain"}, 200, "", "plain"},
		{"group", aliceTok, map[string]any{"topic": "im/g/team", "payload": "to the team"}, 200, "", "to the team"},
		{"typing has no message", aliceTok, map[string]any{"topic": "im/u/bob/typing/alice", "payload": map[string]any{"state": "typing"}}, 200, "", ""},
		{"spoofed sender", aliceTok, map[string]any{"topic": "im/u/bob/dm/carol", "payload": "x"}, 403, "forbidden", ""},
		{"not a member", carolTok, map[string]any{"topic": "im/g/team", "payload": "x"}, 403, "forbidden", ""},
		{"unknown user", aliceTok, map[string]any{"topic": "im/u/nobody/dm/alice", "payload": "x"}, 404, "not_found", ""},
		{"body over limit", aliceTok, map[string]any{"topic": "im/u/bob/dm/alice", "payload": strings.Repeat("x", 101)}, 413, "too_large", ""},
		{"bad envelope", aliceTok, map[string]any{"topic": "im/u/bob/dm/alice", "payload": map[string]any{"body": 5}}, 400, "invalid", ""},
		{"unknown im/ topic", aliceTok, map[string]any{"topic": "im/u/bob/nope/alice", "payload": "x"}, 400, "invalid", ""},
		{"outside im/", aliceTok, map[string]any{"topic": "sensors/1", "payload": "x"}, 400, "invalid", ""},
		{"malformed body", aliceTok, `{"topic":`, 400, "invalid", ""},
		{"unknown field", aliceTok, map[string]any{"topic": "im/u/bob/dm/alice", "payload": "x", "qos": 1}, 400, "invalid", ""},
		{"no token", "", map[string]any{"topic": "im/u/bob/dm/alice", "payload": "x"}, 401, "unauthorized", ""},
	}
	var first *envelope.Message
	for _, c := range cases {
		var a answer
		code, err := s.API("POST", "/api/v1/publish", c.token, c.body, &a)
		if err != nil || code != c.status {
			t.Fatalf("%s: status %d (want %d) %v", c.name, code, c.status, err)
		}
		switch {
		case c.code != "":
			if a.Error == nil || a.Error.Code != c.code {
				t.Fatalf("%s: error %+v, want code %s", c.name, a.Error, c.code)
			}
		case c.body1 != "":
			if a.Message == nil || a.Message.Body != c.body1 || a.Message.Seq == 0 || a.Message.From != "alice" {
				t.Fatalf("%s: message %+v", c.name, a.Message)
			}
			if first == nil {
				first = a.Message
			}
		default:
			if a.Message != nil || a.Error != nil {
				t.Fatalf("%s: answer %+v, want {}", c.name, a)
			}
		}
	}
	// A retry with the same cid answers with the message stored first.
	var again answer
	s.MustAPI(200, "POST", "/api/v1/publish", aliceTok, map[string]any{"topic": "im/u/bob/dm/alice", "payload": map[string]any{"cid": "c1", "body": "hi"}}, &again)
	if again.Message == nil || again.Message.ID != first.ID {
		t.Fatalf("retry: %+v, want id %s", again.Message, first.ID)
	}
	// bob's MQTT device got the accepted ones once, the refused ones never.
	bob.WaitFor("im/u/bob/", 3)
	time.Sleep(50 * time.Millisecond)
	if n := len(bob.Envelopes("im/u/bob/dm/alice")); n != 2 {
		t.Fatalf("bob got %d DMs, want 2", n)
	}
	// The refused publishes were also explained on alice's error topic (as
	// for MQTT): a device of hers sees them.
	var h struct{ Messages []envelope.Message }
	s.MustAPI(200, "GET", "/api/v1/history/dm/alice", s.Login("bob"), nil, &h)
	if len(h.Messages) != 2 {
		t.Fatalf("history: %d messages, want 2", len(h.Messages))
	}
}

// TestRateLimit: one user's flood is cut with rate_limited (MQTT and HTTP
// share the bucket) while another user publishes undisturbed.
func TestRateLimit(t *testing.T) {
	const burst = 10
	s := imtest.Start(t, "", func(c *config.Config) {
		c.Limits.PublishRate = 0.001 // no refill within the test
		c.Limits.PublishBurst = burst
	})
	aliceTok := s.User("alice")
	s.User("bob")
	s.User("carol")
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	carol := s.MustConnect("carol", imtest.ClientOpts{})
	for i := 0; i < 3*burst; i++ {
		alice.Publish("im/u/bob/dm/alice", 1, fmt.Sprintf(`{"cid":"a%d","body":"flood %d"}`, i, i))
	}
	for i := 0; i < burst; i++ {
		carol.Publish("im/u/bob/dm/carol", 1, fmt.Sprintf("carol %d", i))
	}
	bob.WaitFor("im/u/bob/dm/carol", burst)
	notices := alice.WaitFor("im/u/alice/error", 2*burst)
	for _, n := range notices {
		var e envelope.Notice
		if json.Unmarshal(n.Payload, &e); e.Code != "rate_limited" || e.CID == "" {
			t.Fatalf("notice %s", n.Payload)
		}
	}
	if n := len(bob.Envelopes("im/u/bob/dm/alice")); n != burst {
		t.Fatalf("bob got %d of alice's flood, want %d", n, burst)
	}
	var a struct{ Error struct{ Code string } }
	code, _ := s.API("POST", "/api/v1/publish", aliceTok, map[string]any{"topic": "im/u/bob/dm/alice", "payload": "over http"}, &a)
	if code != 429 || a.Error.Code != "rate_limited" {
		t.Fatalf("HTTP publish while limited: %d %+v", code, a)
	}
}

// TestCORS: the allowlist decides which foreign pages may call the API,
// open the stream or the WebSocket; no credentials mode is ever offered.
func TestCORS(t *testing.T) {
	const allowed = "https://app.example.com"
	s := imtest.Start(t, "", func(c *config.Config) { c.AllowedOrigins = []string{allowed} })
	tok := s.User("alice")
	self := s.HTTP
	cases := []struct {
		method, path, origin string
		status               int
		acao                 string
	}{
		{"GET", "/api/v1/me", "", 200, ""},
		{"GET", "/api/v1/me", self, 200, self},
		{"GET", "/api/v1/me", allowed, 200, allowed},
		{"GET", "/api/v1/me", "https://evil.example", 403, ""},
		{"OPTIONS", "/api/v1/publish", allowed, 204, allowed},
		{"OPTIONS", "/api/v1/publish", "https://evil.example", 403, ""},
		{"POST", "/api/v1/stream/ticket", "https://evil.example", 403, ""},
		{"GET", "/api/v1/stream", "https://evil.example", 403, ""},
		{"GET", "/api/v1/poll", "https://evil.example", 403, ""},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, s.HTTP+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		if c.method == "OPTIONS" {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Access-Control-Allow-Origin") != c.acao {
			t.Fatalf("%s %s from %q: %d ACAO %q, want %d %q", c.method, c.path, c.origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), c.status, c.acao)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("%s %s: credentials mode offered", c.method, c.path)
		}
		if c.method == "OPTIONS" && c.status == 204 && !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("preflight allows headers %q", resp.Header.Get("Access-Control-Allow-Headers"))
		}
	}
	// The allowed origin's stream works and carries the CORS header.
	st, code := openStream(t, s, "", map[string]string{"Authorization": "Bearer " + tok, "Origin": allowed})
	if code != 200 || st.resp.Header.Get("Access-Control-Allow-Origin") != allowed {
		t.Fatalf("allowed stream: %d", code)
	}
	// WebSocket: a foreign Origin is refused before the upgrade.
	for _, c := range []struct {
		origin string
		ok     bool
	}{{"https://evil.example", false}, {allowed, true}, {"", true}} {
		h := http.Header{}
		if c.origin != "" {
			h.Set("Origin", c.origin)
		}
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		conn, resp, err := d.Dial(s.WS, h)
		if c.ok != (err == nil) {
			t.Fatalf("WebSocket from %q: err %v", c.origin, err)
		}
		if conn != nil {
			conn.Close()
		}
		if !c.ok && (resp == nil || resp.StatusCode != 403) {
			t.Fatalf("WebSocket from %q: %v, want 403", c.origin, resp)
		}
	}
	// The web client's CSP names its own origin for connections, not ws: at large.
	resp, err := http.Get(s.HTTP + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	host := strings.TrimPrefix(s.HTTP, "http://")
	if !strings.Contains(csp, "connect-src 'self' ws://"+host+" wss://"+host) || strings.Contains(csp, " ws: ") {
		t.Fatalf("CSP %q", csp)
	}
}

// TestConnLimits: per-IP connection caps on the MQTT and HTTP ports.
func TestConnLimits(t *testing.T) {
	s := imtest.Start(t, "", func(c *config.Config) { c.Limits.ConnsPerIP = 2 })
	for _, addr := range []string{strings.TrimPrefix(s.MQTT, "tcp://"), strings.TrimPrefix(s.HTTP, "http://")} {
		var conns []net.Conn
		for i := 0; i < 3; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		_ = conns[2].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conns[2].Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("%s: third connection from one IP not closed: %v", addr, err)
		}
		conns[0].Close()
		imtest.Eventually(t, "a freed slot", 5*time.Second, func() bool {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return false
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, err = c.Read(make([]byte, 1))
			return isTimeout(err) // still open: admitted
		})
		for _, c := range conns {
			c.Close()
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestConnectAdvertisesThisNode: in a single node /connect names this node's
// WebSocket and SSE URLs, taken from the registry.
func TestConnectAdvertisesThisNode(t *testing.T) {
	s := imtest.Start(t, "")
	tok := s.User("alice")
	var c struct{ Node, WS, SSE, Poll, MQTT string }
	s.MustAPI(200, "GET", "/api/v1/connect", tok, nil, &c)
	host := strings.TrimPrefix(s.HTTP, "http://")
	if c.WS != "ws://"+host+"/mqtt" || c.SSE != s.HTTP+"/api/v1/stream" || c.Poll != s.HTTP+"/api/v1/poll" || c.MQTT != s.MQTT || c.Node == "" {
		t.Fatalf("connect: %+v", c)
	}
	imtest.Eventually(t, "this node registered", 5*time.Second, func() bool {
		nodes, _ := s.Registry.Live(context.Background())
		return len(nodes) == 1 && nodes[0].ID == c.Node
	})
}
