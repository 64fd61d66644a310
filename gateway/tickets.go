package gateway

import (
	"container/list"
	"net/http"
	"sync"
	"time"

	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/quota"
)

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
	id := randomHex(24)
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
