package gateway

import (
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/quota"
)

// HTTP fallback transports for clients without a working WebSocket:
// GET /api/v1/stream (Server-Sent Events), GET /api/v1/poll (long-poll) and
// POST /api/v1/publish. See docs/protocol.md, "HTTP fallback transports".

// ticketTTL is how long a stream ticket may wait to be used.
const ticketTTL = 30 * time.Second

// tickets are short-lived, single-use credentials for GET /api/v1/stream:
// EventSource cannot send an Authorization header, and a long-lived token in
// a URL would end up in logs and histories.
//
// Every ticket lives ticketTTL, so issue order is expiry order: the queue is
// swept from its front, each ticket removed once (at redeem or expiry), and
// issuing costs O(1) amortised however many tickets are outstanding.
type tickets struct {
	mu    sync.Mutex
	m     map[string]*list.Element // id -> its element in queue
	queue list.List                // of *ticket, oldest first
	held  quota.Slots              // outstanding tickets per user
}

type ticket struct {
	id, user string
	expires  time.Time
}

// issue returns a new ticket for user, or false when user already holds
// as many as it may.
func (t *tickets) issue(user string, now time.Time) (string, time.Time, bool) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	if !t.held.Take(user) {
		return "", time.Time{}, false
	}
	if t.m == nil {
		t.m = map[string]*list.Element{}
	}
	exp := now.Add(ticketTTL)
	t.m[id] = t.queue.PushBack(&ticket{id: id, user: user, expires: exp})
	return id, exp, true
}

// expire removes the expired tickets at the front of the queue.
func (t *tickets) expire(now time.Time) {
	for e := t.queue.Front(); e != nil && now.After(e.Value.(*ticket).expires); e = t.queue.Front() {
		t.remove(e)
	}
}

func (t *tickets) remove(e *list.Element) {
	tk := t.queue.Remove(e).(*ticket)
	delete(t.m, tk.id)
	t.held.Release(tk.user)
}

// redeem returns the ticket's user and forgets the ticket.
func (t *tickets) redeem(id string, now time.Time) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	e, ok := t.m[id]
	if !ok {
		return "", false
	}
	tk := e.Value.(*ticket)
	t.remove(e)
	if now.After(tk.expires) { // a clock that went back can leave one behind the front
		return "", false
	}
	return tk.user, true
}

// len is the number of outstanding tickets.
func (t *tickets) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func (g *Gateway) streamTicket(w http.ResponseWriter, _ *http.Request, user string) error {
	id, exp, ok := g.tr.tickets.issue(user, g.o.Now())
	if !ok {
		return fail(http.StatusTooManyRequests, imerr.QuotaExceeded, "%d stream tickets not yet used: use or let them expire (%v) first", g.tr.tickets.held.Max, ticketTTL)
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticket": id, "expires": exp.UnixMilli()})
	return nil
}

// bearer returns the user of a valid Authorization: Bearer token, or "".
func (g *Gateway) bearer(r *http.Request) string {
	t, _ := g.bearerToken(r)
	return t.User
}

// feedDevice is the device a stream or poll session presents as.
func feedDevice(r *http.Request) (string, error) {
	d := r.URL.Query().Get("device")
	if d == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		return "http-" + hex.EncodeToString(b), nil
	}
	if !validDevice(d) {
		return "", fail(http.StatusBadRequest, imerr.Invalid, "device must be 1-64 printable characters without / + #")
	}
	return d, nil
}

// stream serves GET /api/v1/stream as Server-Sent Events. Chat messages carry
// "id: {cursor}", so EventSource's Last-Event-ID (or ?since= on a new
// EventSource) resumes exactly after the last one received.
func (g *Gateway) stream(w http.ResponseWriter, r *http.Request, _ string) error {
	user := g.bearer(r)
	if user == "" {
		if t := r.URL.Query().Get("ticket"); t != "" {
			user, _ = g.tr.tickets.redeem(t, g.o.Now())
		}
	}
	if user == "" {
		return fail(http.StatusUnauthorized, imerr.Unauthorized, "missing or invalid Bearer token or stream ticket")
	}
	device, err := feedDevice(r)
	if err != nil {
		return err
	}
	since := r.URL.Query().Get("since")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		since = id // an EventSource reconnecting by itself
	}
	ctx := r.Context()
	f, err := g.openFeed(user, device, "sse")
	if err != nil {
		return err
	}
	defer f.close()
	cur, err := g.startCursor(ctx, user, since)
	if err != nil {
		return err
	}

	rc := http.NewResponseController(w)
	// The server's ReadTimeout would cancel a long stream's context; a
	// stalled reader is caught by the write deadline instead.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var buf strings.Builder
	send := func() error {
		if buf.Len() == 0 {
			return nil
		}
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := w.Write([]byte(buf.String()))
		buf.Reset()
		if err == nil {
			err = rc.Flush()
		}
		return err
	}
	// The ready event carries the start cursor, so even a stream that saw no
	// message yet resumes from where it began.
	fmt.Fprintf(&buf, "retry: 2000\nid: %s\nevent: ready\ndata: {\"cursor\":%q,\"device\":%q}\n\n", cur, cur, device)
	ping := time.NewTicker(g.heartbeat())
	defer ping.Stop()
	for {
		for {
			msgs, next, more, err := f.chat(ctx, cur, 100)
			if err != nil {
				return nil // the status line is out; the client reconnects
			}
			for _, e := range msgs {
				writeEvent(&buf, e)
			}
			cur = next
			if err := send(); err != nil {
				return nil
			}
			if !more {
				break
			}
		}
		for _, e := range f.take() {
			writeEvent(&buf, e)
		}
		if err := send(); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-g.tr.done:
			return nil
		case <-f.wake:
		case <-ping.C:
			buf.WriteString(": ping\n\n")
		}
	}
}

// streamWriteTimeout drops a stream whose reader stopped reading.
const streamWriteTimeout = 10 * time.Second

func writeEvent(b *strings.Builder, e event) {
	id := e.ID
	e.ID = ""
	data, _ := json.Marshal(e)
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
}

func (g *Gateway) heartbeat() time.Duration {
	if g.o.Transport.Heartbeat > 0 {
		return g.o.Transport.Heartbeat
	}
	return 15 * time.Second
}

// ---- long-poll --------------------------------------------------------------

// pollIdle is how long a poll session (its buffered ephemeral events, and
// its presence as a device) outlives its last poll.
const pollIdle = 45 * time.Second

// maxPollWait caps ?timeout=.
const maxPollWait = 55 * time.Second

type pollSession struct {
	f     *feed
	id    string
	mu    sync.Mutex
	last  time.Time     // end of the last poll
	busy  int           // polls waiting
	kick  chan struct{} // closed to end the waiting poll early
	reply sync.Mutex    // one poll reads the feed at a time
}

type polls struct {
	mu     sync.Mutex
	m      map[string]*pollSession
	byUser map[string]map[string]*pollSession // user -> id -> session
	run    sync.Once
}

func (p *polls) add(s *pollSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m, p.byUser = map[string]*pollSession{}, map[string]map[string]*pollSession{}
	}
	p.m[s.id] = s
	if p.byUser[s.f.user] == nil {
		p.byUser[s.f.user] = map[string]*pollSession{}
	}
	p.byUser[s.f.user][s.id] = s
}

// delete forgets s; the caller holds p.mu and closes s's feed after.
func (p *polls) delete(s *pollSession) {
	delete(p.m, s.id)
	if u := p.byUser[s.f.user]; u != nil {
		delete(u, s.id)
		if len(u) == 0 {
			delete(p.byUser, s.f.user)
		}
	}
}

// evictIdlePoll closes user's least recently polled session that no poll is
// waiting on, and reports whether there was one. A poll session has no
// close call, so a client that lost its id (a reloaded page) leaves it
// behind until it idles out; it is the one to give way to a new session.
func (g *Gateway) evictIdlePoll(user string) bool {
	p := &g.tr.polls
	p.mu.Lock()
	var oldest *pollSession
	var oldestLast time.Time
	for _, s := range p.byUser[user] {
		s.mu.Lock()
		idle, last := s.busy == 0, s.last
		s.mu.Unlock()
		if idle && (oldest == nil || last.Before(oldestLast)) {
			oldest, oldestLast = s, last
		}
	}
	if oldest != nil {
		p.delete(oldest)
	}
	p.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.f.close()
	return true
}

// poll serves GET /api/v1/poll. Without session it opens one and answers at
// once (retained presence, the start cursor); with one it answers as soon as
// something is there, or after timeout seconds with no events.
func (g *Gateway) poll(w http.ResponseWriter, r *http.Request, user string) error {
	q := r.URL.Query()
	wait, err := intParam(r, "timeout", 25, 0, int64(maxPollWait/time.Second))
	if err != nil {
		return err
	}
	ctx := r.Context()
	sid := q.Get("session")
	var s *pollSession
	if sid == "" {
		device, err := feedDevice(r)
		if err != nil {
			return err
		}
		f, err := g.openFeed(user, device, "poll")
		if err != nil {
			return err
		}
		cur, err := g.startCursor(ctx, user, q.Get("since"))
		if err != nil {
			f.close()
			return err
		}
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		s = &pollSession{f: f, id: hex.EncodeToString(b), last: time.Now(), kick: make(chan struct{})}
		g.tr.polls.add(s)
		g.tr.polls.run.Do(func() { go g.reapPolls() })
		writeJSON(w, http.StatusOK, map[string]any{"session": s.id, "cursor": cur.String(), "events": nonNil(f.take()), "more": false})
		return nil
	}
	g.tr.polls.mu.Lock()
	s = g.tr.polls.m[sid]
	g.tr.polls.mu.Unlock()
	if s == nil || s.f.user != user {
		return fail(http.StatusNotFound, imerr.NotFound, "no such poll session (expired?): open a new one")
	}
	cur, err := g.startCursor(ctx, user, q.Get("since"))
	if err != nil {
		return err
	}
	// A newer poll of the same session ends this one (a client that gave up
	// on a request and asked again).
	s.mu.Lock()
	close(s.kick)
	kick := make(chan struct{})
	s.kick = kick
	s.busy++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy--
		s.last = time.Now()
		s.mu.Unlock()
	}()
	timer := time.NewTimer(time.Duration(wait) * time.Second)
	defer timer.Stop()
	for {
		has, err := s.f.hasChat(ctx, cur)
		if err != nil {
			return err
		}
		if has || s.f.pending() {
			break
		}
		select {
		case <-s.f.wake:
			continue
		case <-timer.C:
		case <-kick:
		case <-ctx.Done():
			return nil
		case <-g.tr.done:
		}
		break
	}
	s.reply.Lock()
	defer s.reply.Unlock()
	msgs, next, more, err := s.f.chat(ctx, cur, 100)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": s.id, "cursor": next.String(), "events": nonNil(append(msgs, s.f.take()...)), "more": more})
	return nil
}

func nonNil(e []event) []event {
	if e == nil {
		return []event{}
	}
	return e
}

// reapPolls closes poll sessions nobody polled for pollIdle (within a
// ninth of it: the sweep runs at that interval, from the configured value).
func (g *Gateway) reapPolls() {
	t := time.NewTicker(g.pollIdle() / 9)
	defer t.Stop()
	for {
		select {
		case <-g.tr.done:
			g.closePolls(func(*pollSession) bool { return true })
			return
		case <-t.C:
			now := time.Now()
			g.closePolls(func(s *pollSession) bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.busy == 0 && now.Sub(s.last) > g.pollIdle()
			})
		}
	}
}

func (g *Gateway) pollIdle() time.Duration {
	if g.o.Transport.PollIdle > 0 {
		return g.o.Transport.PollIdle
	}
	return pollIdle
}

func (g *Gateway) closePolls(expired func(*pollSession) bool) {
	var gone []*pollSession
	g.tr.polls.mu.Lock()
	for _, s := range g.tr.polls.m {
		if expired(s) {
			g.tr.polls.delete(s)
			gone = append(gone, s)
		}
	}
	g.tr.polls.mu.Unlock()
	for _, s := range gone {
		s.f.close()
	}
}

// ---- publish ----------------------------------------------------------------

// httpStatus maps the protocol's error codes to HTTP.
var httpStatus = map[imerr.Code]int{
	imerr.Reset:         http.StatusGone,
	imerr.Forbidden:     http.StatusForbidden,
	imerr.Invalid:       http.StatusBadRequest,
	imerr.TooLarge:      http.StatusRequestEntityTooLarge,
	imerr.RateLimited:   http.StatusTooManyRequests,
	imerr.QuotaExceeded: http.StatusTooManyRequests,
	imerr.NotFound:      http.StatusNotFound,
	imerr.Internal:      http.StatusInternalServerError,
	imerr.StorageFull:   http.StatusInsufficientStorage,
}

// imFail is the HTTP answer to a refusal of the chat service.
func imFail(e *imerr.Error) error {
	status := httpStatus[e.Code]
	if status == 0 {
		status = http.StatusBadRequest
	}
	return fail(status, e.Code, "%s", e.Detail)
}

// publish serves POST /api/v1/publish: one publish through the same path as
// an MQTT publish (im.Service.Handle), answered with the stamped message for
// chat, {} for the rest, or the error notice's code.
func (g *Gateway) publish(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		Topic   string          `json:"topic"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if !strings.HasPrefix(body.Topic, "im/") {
		return fail(http.StatusBadRequest, imerr.Invalid, "topic must be under im/")
	}
	var payload []byte
	switch p := strings.TrimSpace(string(body.Payload)); {
	case p == "" || p == "null":
	case p[0] == '"':
		var s string
		if err := json.Unmarshal(body.Payload, &s); err != nil {
			return fail(http.StatusBadRequest, imerr.Invalid, "payload: %v", err)
		}
		payload = []byte(s)
	default:
		payload = []byte(p)
	}
	var stamped envelope.Message
	req := im.Request{User: user, ClientID: user + ":http", Topic: body.Topic, Payload: payload, Stamped: &stamped}
	if e := g.o.Transport.IM.Handle(req); e != nil {
		return imFail(e)
	}
	if stamped.ID != "" {
		writeJSON(w, http.StatusOK, map[string]any{"message": stamped})
	} else {
		writeJSON(w, http.StatusOK, map[string]any{})
	}
	return nil
}
