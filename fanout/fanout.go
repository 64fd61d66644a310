// Package fanout is the one seam between the chat service and the
// transports that deliver to devices (MQTT sessions, SSE streams, long-poll
// sessions; later other nodes). The service appends to the log and sends
// ephemeral events; every transport consumes the same per-user feed through
// a Hub, instead of each publish finding its own recipients.
//
// Two kinds of thing pass through a Hub:
//
//   - Entries: messages of a user's durable feed (history), each with its
//     feed position. The log is the system of record; an entry is a wake-up
//     that carries the message so a consumer that is caught up need not read
//     it back. A consumer that sees a gap reads the log from its cursor.
//   - Events: what is not kept (receipts, typing, signals, error notices,
//     sync replies, presence). At most once, to whoever is connected now.
//
// Ordering contract of a Hub, which a clustered implementation must keep:
//
//   - Per user, a sink's Entry calls come one at a time, in strictly
//     increasing Pos, each position at most once. Positions can be missing
//     (the sink subscribed late, or a node dropped them under load): a sink
//     must treat Pos > last+1 as "read the log from last".
//   - Entries of one user are published only after the log committed them,
//     so reading the log from any position below an entry's finds it.
//   - Events come in the order Send was called, per user; none is repeated.
//
// Sink methods run on the publisher's goroutine (the log's writer for
// entries): they must not block. A sink that cannot keep up drops and
// recovers from the log.
package fanout

import (
	"sync"
	"sync/atomic"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
)

// Entry is one message of User's feed at position Pos. Msg and Payload are
// shared by every recipient: read-only.
type Entry struct {
	User    string
	Pos     uint64
	Msg     *envelope.Message
	Payload []byte // Msg's JSON
}

// Event is an ephemeral delivery to one concrete topic.
type Event struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Sink consumes one user's feed and events. See the package doc for the
// ordering contract; methods must not block.
type Sink interface {
	Entry(e Entry)
	Event(e Event)
}

// Router delivers events to the MQTT topic tree (the broker's inline
// publish), for subscribers that are not Sinks of a Hub. Nil: none.
type Router interface {
	Route(e Event)
}

// Hub is the fan-out seam. Local is the single-node implementation.
type Hub interface {
	// Subscribe adds s for user's entries and events until cancel is
	// called; with broadcasts, also for every Broadcast.
	Subscribe(user string, s Sink, broadcasts bool) (cancel func())
	// Committed announces messages the log committed, in commit order
	// (history.BadgerOptions.Committed).
	Committed(batch []history.Appended)
	// Send delivers an event to user's sinks and to the router.
	Send(user string, e Event)
	// Broadcast delivers an event to every sink and to the router.
	Broadcast(e Event)
}

// Local is the Hub of one node: an in-memory index of sinks by user.
type Local struct {
	router atomic.Pointer[Router]
	mu     sync.RWMutex
	users  map[string]map[*subscription]struct{}
	all    map[*subscription]struct{} // those that take broadcasts
	count  int
}

type subscription struct{ s Sink }

// NewLocal returns a Hub whose events also go to router (nil: none).
func NewLocal(router Router) *Local {
	h := &Local{users: map[string]map[*subscription]struct{}{}, all: map[*subscription]struct{}{}}
	if router != nil {
		h.SetRouter(router)
	}
	return h
}

// Subscribe implements Hub.
func (h *Local) Subscribe(user string, s Sink, broadcasts bool) (cancel func()) {
	sub := &subscription{s}
	h.mu.Lock()
	if broadcasts {
		h.all[sub] = struct{}{}
	}
	m := h.users[user]
	if m == nil {
		m = map[*subscription]struct{}{}
		h.users[user] = m
	}
	m[sub] = struct{}{}
	h.count++
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.users[user], sub)
			delete(h.all, sub)
			if len(h.users[user]) == 0 {
				delete(h.users, user)
			}
			h.count--
		})
	}
}

// Committed implements Hub. The log's writer calls it for each commit, one
// at a time, so each user's entries arrive in position order.
func (h *Local) Committed(batch []history.Appended) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for i := range batch {
		a := &batch[i]
		for j, u := range a.Recipients {
			for sub := range h.users[u] {
				sub.s.Entry(Entry{User: u, Pos: a.Positions[j], Msg: &a.Msg, Payload: a.Payload})
			}
		}
	}
}

// Send implements Hub.
func (h *Local) Send(user string, e Event) {
	if r := h.router.Load(); r != nil {
		(*r).Route(e)
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for sub := range h.users[user] {
		sub.s.Event(e)
	}
}

// Broadcast implements Hub.
func (h *Local) Broadcast(e Event) {
	if r := h.router.Load(); r != nil {
		(*r).Route(e)
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for sub := range h.all {
		sub.s.Event(e)
	}
}

// SetRouter sets the router (the broker exists after the hub).
func (h *Local) SetRouter(r Router) { h.router.Store(&r) }

// Sinks is the number of subscribed sinks.
func (h *Local) Sinks() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.count
}
