// Package quota bounds what one user can make the server hold: things held
// at once (SSE streams, poll sessions, stream tickets) through Slots, and
// retained messages in operator namespaces through Retained. Rates (how fast)
// are the ratelimit package's; quotas are how much.
package quota

import "sync"

// Slots counts what each key (a user) holds, up to Max per key. A Max of 0
// disables the cap (Take always succeeds, and still counts). Keys that hold
// nothing are forgotten, so memory follows current holders. Safe for
// concurrent use; the zero value is an unlimited Slots.
type Slots struct {
	Max int

	mu   sync.Mutex
	held map[string]int
}

// NewSlots returns slots of max per key.
func NewSlots(max int) *Slots { return &Slots{Max: max} }

// Take takes one slot of key and reports whether one was free.
func (s *Slots) Take(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Max > 0 && s.held[key] >= s.Max {
		return false
	}
	if s.held == nil {
		s.held = map[string]int{}
	}
	s.held[key]++
	return true
}

// Release gives back one slot of key taken by Take.
func (s *Slots) Release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[key] <= 1 {
		delete(s.held, key)
		return
	}
	s.held[key]--
}

// Held is the number of slots key holds.
func (s *Slots) Held(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[key]
}
