// Package presence tracks which devices of each user are connected, so the
// server can publish "online" when the first device of a user arrives and
// "offline" when the last one leaves, and answer "is anyone there?" for
// signalling.
//
// A device is keyed by MQTT client id and identified by a connection token
// (any comparable value, in practice the *mqtt.Client): when a device
// reconnects and takes over its own session, the old connection's late
// disconnect must not remove the new one.
package presence

import (
	"sort"
	"sync"
)

// Status of a user as shown to others.
type Status struct {
	Status string // online, away, offline
	Text   string
	TS     int64
}

// Tracker is safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	devices map[string]map[string]any // user -> client id -> connection token
	status  map[string]Status         // last published status of users seen since start
}

// New returns an empty tracker.
func New() *Tracker {
	return &Tracker{devices: map[string]map[string]any{}, status: map[string]Status{}}
}

// Connect records a device; first reports whether it is the user's only one.
func (t *Tracker) Connect(user, clientID string, conn any) (first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[user]
	if d == nil {
		d = map[string]any{}
		t.devices[user] = d
	}
	d[clientID] = conn
	return len(d) == 1
}

// Disconnect removes a device if conn is still its current connection; last
// reports whether the user now has no device connected.
func (t *Tracker) Disconnect(user, clientID string, conn any) (last bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[user]
	if d == nil || d[clientID] != conn {
		return false
	}
	delete(d, clientID)
	if len(d) == 0 {
		delete(t.devices, user)
		return true
	}
	return false
}

// Online reports whether user has at least one device connected.
func (t *Tracker) Online(user string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.devices[user]) > 0
}

// Devices returns the number of connected devices of user.
func (t *Tracker) Devices(user string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.devices[user])
}

// OnlineUsers returns the users with a device connected, sorted.
func (t *Tracker) OnlineUsers() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.devices))
	for u := range t.devices {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// SetStatus records the status last published for user.
func (t *Tracker) SetStatus(user string, s Status) {
	t.mu.Lock()
	t.status[user] = s
	t.mu.Unlock()
}

// StatusOf returns user's last status; unknown users are offline.
func (t *Tracker) StatusOf(user string) Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.status[user]; ok {
		return s
	}
	return Status{Status: "offline"}
}

// View is what the chat service and the API read and change of presence: a
// Tracker on a single node; on a cluster node, one that aggregates every
// node's devices (package cluster). Connect's first and Disconnect's last
// then mean the user's first and last device anywhere.
type View interface {
	Connect(user, clientID string, conn any) (first bool)
	Disconnect(user, clientID string, conn any) (last bool)
	Online(user string) bool
	SetStatus(user string, s Status)
	StatusOf(user string) Status
}

var _ View = (*Tracker)(nil)
