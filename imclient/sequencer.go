package imclient

import (
	"sync"

	"github.com/mqim/mqim/envelope"
)

// ConvKey names a conversation from one user's point of view: "dm:{peer}" or
// "g:{gid}".
type ConvKey string

// KeyOf returns the conversation of m as seen by me.
func KeyOf(me string, m envelope.Message) ConvKey {
	if m.Group != "" {
		return ConvKey("g:" + m.Group)
	}
	if m.From == me {
		return ConvKey("dm:" + m.To)
	}
	return ConvKey("dm:" + m.From)
}

// sequencer turns two unreliable sources, live MQTT deliveries (which may
// repeat, arrive out of order or be missing) and the authoritative, gap-free
// sync feed, into one stream that delivers each conversation in seq order,
// exactly once.
//
// A live message is delivered at once when it is the next one expected for
// its conversation; a repeat is dropped; anything else is held and a sync is
// requested. A sync started after a message arrived live is guaranteed to
// contain it (the server stores before it delivers), so after that sync
// nothing held is left undelivered.
type sequencer struct {
	me      string
	deliver func(envelope.Message)

	mu     sync.Mutex
	next   map[ConvKey]uint64 // next seq to deliver; absent: unknown
	held   map[ConvKey]map[uint64]envelope.Message
	cursor string
	dupes  int
}

func newSequencer(me string, st State, deliver func(envelope.Message)) *sequencer {
	s := &sequencer{me: me, deliver: deliver, next: map[ConvKey]uint64{}, held: map[ConvKey]map[uint64]envelope.Message{}, cursor: st.Cursor}
	for k, v := range st.Next {
		s.next[k] = v
	}
	return s
}

// live handles a message from MQTT; it reports whether a sync is needed.
func (s *sequencer) live(m envelope.Message) (needSync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := KeyOf(s.me, m)
	next, known := s.next[k]
	switch {
	case known && m.Seq < next:
		s.dupes++
		return false
	case known && m.Seq == next:
		s.emit(k, m)
		s.drainHeld(k)
		return len(s.held[k]) > 0
	default:
		h := s.held[k]
		if h == nil {
			h = map[uint64]envelope.Message{}
			s.held[k] = h
		}
		if _, dup := h[m.Seq]; dup {
			s.dupes++
		}
		h[m.Seq] = m
		return true
	}
}

// synced applies one page of the sync feed (oldest first) and its cursor.
func (s *sequencer) synced(msgs []envelope.Message, cursor string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		k := KeyOf(s.me, m)
		if next, known := s.next[k]; known && m.Seq < next {
			s.dupes++
			continue
		}
		// The feed is authoritative: a jump here is history this user was not
		// part of (e.g. a group joined late), not a loss.
		s.emit(k, m)
		s.drainHeld(k)
	}
	s.cursor = cursor
}

// settle drops held messages the feed has already delivered; called after a
// complete sync, when nothing older can still arrive.
func (s *sequencer) settle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, h := range s.held {
		next := s.next[k]
		for seq := range h {
			if seq < next {
				delete(h, seq)
				s.dupes++
			}
		}
		if len(h) == 0 {
			delete(s.held, k)
		}
	}
}

func (s *sequencer) emit(k ConvKey, m envelope.Message) {
	s.next[k] = m.Seq + 1
	if h := s.held[k]; h != nil {
		delete(h, m.Seq)
	}
	s.deliver(m)
}

func (s *sequencer) drainHeld(k ConvKey) {
	for {
		h := s.held[k]
		m, ok := h[s.next[k]]
		if !ok {
			break
		}
		s.emit(k, m)
	}
	for seq := range s.held[k] {
		if seq < s.next[k] {
			delete(s.held[k], seq)
			s.dupes++
		}
	}
	if len(s.held[k]) == 0 {
		delete(s.held, k)
	}
}

func (s *sequencer) state() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Cursor: s.cursor, Next: map[ConvKey]uint64{}}
	for k, v := range s.next {
		st.Next[k] = v
	}
	return st
}
