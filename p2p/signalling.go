package p2p

import (
	"sync"

	"github.com/mqim/mqim/roap"
)

// Signaller carries ROAP messages to other users. The MQTT implementation
// publishes msg.Encode() on im/u/{msg.To}/signal/{msg.From} (QoS 0 or 1,
// never retained) and feeds each payload that arrives on
// im/u/{me}/signal/{from} to Peer.HandleSignalPayload(from, payload).
//
// SendSignal must keep the order of messages to one peer and must not call
// Peer.HandleSignal (of any peer) before returning.
type Signaller interface {
	SendSignal(msg roap.Message) error
}

// MemorySignalling is an in-process signalling server for tests and
// examples: it routes messages between registered peers in order, through
// the wire codec, and answers a signal to an unregistered user with ERROR
// OFFLINE, as the MQTT server does.
type MemorySignalling struct {
	mu     sync.Mutex
	queues map[string]*signalQueue
}

// NewMemorySignalling returns an empty hub.
func NewMemorySignalling() *MemorySignalling {
	return &MemorySignalling{queues: make(map[string]*signalQueue)}
}

type signalQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []roap.Message
	closed bool
	done   chan struct{}
}

// Register delivers messages for user to handle, one at a time in order.
func (h *MemorySignalling) Register(user string, handle func(roap.Message) error) {
	sq := &signalQueue{done: make(chan struct{})}
	sq.cond = sync.NewCond(&sq.mu)
	go func() {
		defer close(sq.done)
		for {
			sq.mu.Lock()
			for len(sq.q) == 0 && !sq.closed {
				sq.cond.Wait()
			}
			if sq.closed {
				sq.mu.Unlock()
				return
			}
			m := sq.q[0]
			sq.q = sq.q[1:]
			sq.mu.Unlock()
			_ = handle(m)
		}
	}()
	h.mu.Lock()
	h.queues[user] = sq
	h.mu.Unlock()
}

// Unregister stops delivering to user; later signals to it get ERROR OFFLINE.
func (h *MemorySignalling) Unregister(user string) {
	h.mu.Lock()
	sq := h.queues[user]
	delete(h.queues, user)
	h.mu.Unlock()
	if sq != nil {
		sq.mu.Lock()
		sq.closed = true
		sq.cond.Broadcast()
		sq.mu.Unlock()
		<-sq.done
	}
}

// Close unregisters everyone.
func (h *MemorySignalling) Close() {
	h.mu.Lock()
	var users []string
	for u := range h.queues {
		users = append(users, u)
	}
	h.mu.Unlock()
	for _, u := range users {
		h.Unregister(u)
	}
}

// For returns the Signaller user sends with.
func (h *MemorySignalling) For(user string) Signaller { return memSignaller{h} }

type memSignaller struct{ h *MemorySignalling }

func (s memSignaller) SendSignal(msg roap.Message) error {
	b, err := msg.Encode()
	if err != nil {
		return err
	}
	m, err := roap.Decode(b)
	if err != nil {
		return err
	}
	s.h.mu.Lock()
	sq, online := s.h.queues[m.To]
	back := s.h.queues[m.From]
	s.h.mu.Unlock()
	if !online {
		if back != nil && m.Type != roap.TypeError {
			back.push(roap.Message{Type: roap.TypeError, ErrorType: roap.ErrorOffline, From: m.To, To: m.From, SessionID: m.SessionID})
		}
		return nil
	}
	sq.push(m)
	return nil
}

func (sq *signalQueue) push(m roap.Message) {
	sq.mu.Lock()
	if !sq.closed {
		sq.q = append(sq.q, m)
		sq.cond.Signal()
	}
	sq.mu.Unlock()
}
