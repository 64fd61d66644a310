package quota

import "sync"

// Retained is the ledger of retained messages in operator namespaces: which
// user's publish each retained topic holds, and what that costs each user
// (messages, and bytes: topic plus payload). Admit decides before a publish;
// Set records what the broker actually retained, whatever path it came by
// (a publish, a will), so the ledger follows the broker's retained store.
// A zero MaxCount or MaxBytes disables that bound. Safe for concurrent use.
//
// Admit and Set are separate steps, so concurrent publishes of one user can
// overshoot its quota by at most one message per publish in flight (one per
// connection: mochi reads a connection's packets in order).
type Retained struct {
	MaxCount int
	MaxBytes int64

	mu     sync.Mutex
	topics map[string]retained // topic -> what it holds
	use    map[string]Usage    // user -> totals
}

type retained struct {
	user string
	cost int64
}

// Usage is what one user's retained messages cost.
type Usage struct {
	Count int
	Bytes int64
}

// NewRetained returns an empty ledger with the given bounds per user.
func NewRetained(maxCount int, maxBytes int64) *Retained {
	return &Retained{MaxCount: maxCount, MaxBytes: maxBytes}
}

func cost(topic string, payloadLen int) int64 { return int64(len(topic) + payloadLen) }

// Admit reports whether user may retain payloadLen bytes on topic. A delete
// (empty payload) is always admitted, and so is any change that does not
// make user's usage grow (replacing its own message with one no larger).
func (r *Retained) Admit(user, topic string, payloadLen int) bool {
	if payloadLen == 0 || r == nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.use[user]
	next := u
	if old, ok := r.topics[topic]; ok && old.user == user {
		next.Bytes += cost(topic, payloadLen) - old.cost
	} else {
		next.Count++
		next.Bytes += cost(topic, payloadLen)
	}
	if next.Count <= u.Count && next.Bytes <= u.Bytes {
		return true
	}
	return (r.MaxCount == 0 || next.Count <= r.MaxCount) && (r.MaxBytes == 0 || next.Bytes <= r.MaxBytes)
}

// Set records that topic now retains payloadLen bytes published by user; a
// payloadLen of 0 records that topic retains nothing (deleted or expired),
// which frees its cost from whoever held it.
func (r *Retained) Set(user, topic string, payloadLen int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set(user, topic, payloadLen)
}

func (r *Retained) set(user, topic string, payloadLen int) {
	if old, ok := r.topics[topic]; ok {
		u := r.use[old.user]
		u.Count--
		u.Bytes -= old.cost
		if u.Count <= 0 {
			delete(r.use, old.user)
		} else {
			r.use[old.user] = u
		}
		delete(r.topics, topic)
	}
	if payloadLen == 0 {
		return
	}
	if r.topics == nil {
		r.topics, r.use = map[string]retained{}, map[string]Usage{}
	}
	c := cost(topic, payloadLen)
	r.topics[topic] = retained{user: user, cost: c}
	u := r.use[user]
	u.Count++
	u.Bytes += c
	r.use[user] = u
}

// Load records a retained message found at start (restored from storage),
// unless topic was already set since: a live publish is newer.
func (r *Retained) Load(user, topic string, payloadLen int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.topics[topic]; !ok {
		r.set(user, topic, payloadLen)
	}
}

// Usage returns what user's retained messages cost.
func (r *Retained) Usage(user string) Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.use[user]
}
