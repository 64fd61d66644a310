package hooks

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/imerr"
)

// Pipelined publishes. A chat message is acknowledged only once it is
// stored (group commit, fsync), but a client's next publishes need not wait
// for that: the read loop hands each to the service (im.Service.HandleAsync)
// and reads on, and the PUBACKs go out as the stores complete, in the order
// the publishes arrived [MQTT-4.6.0-2]. Without this one connection could
// have one message per commit in flight, whatever its own window.

// maxPendingAcks bounds one client's publishes awaiting their store; past
// it the read loop waits (TCP backpressure). It is what the server
// advertises as its Receive Maximum to MQTT 5 clients (mochi's default).
const maxPendingAcks = 1024

// ackQueue is one client's publishes awaiting their PUBACK, oldest first.
type ackQueue struct {
	mu    sync.Mutex
	slots []*ackSlot
	room  chan struct{} // a token per pending slot
}

type ackSlot struct {
	id   uint16
	done bool
	err  *imerr.Error
}

// acks holds the queue of every client with publishes in flight.
type acks struct {
	mu sync.Mutex
	m  map[*mqtt.Client]*ackQueue
}

func (a *acks) queue(cl *mqtt.Client) *ackQueue {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[*mqtt.Client]*ackQueue{}
	}
	q := a.m[cl]
	if q == nil {
		q = &ackQueue{room: make(chan struct{}, maxPendingAcks)}
		a.m[cl] = q
	}
	return q
}

func (a *acks) forget(cl *mqtt.Client) {
	a.mu.Lock()
	delete(a.m, cl)
	a.mu.Unlock()
}

// add appends a slot for the QoS 1 publish id. When maxPendingAcks are
// pending, an MQTT 5 client has exceeded the Receive Maximum the server
// advertised (mochi's default, 1024) and add returns nil: the caller ends
// the connection with 0x93 [MQTT-3.3.4-8]; a 3.1.1 client, which was told
// no limit, waits (TCP backpressure).
func (q *ackQueue) add(id uint16, v5 bool) *ackSlot {
	select {
	case q.room <- struct{}{}:
	default:
		if v5 {
			return nil
		}
		q.room <- struct{}{}
	}
	s := &ackSlot{id: id}
	q.mu.Lock()
	q.slots = append(q.slots, s)
	q.mu.Unlock()
	return s
}

// complete records s's outcome and sends every PUBACK now due, in order.
func (q *ackQueue) complete(cl *mqtt.Client, s *ackSlot, e *imerr.Error) {
	q.mu.Lock()
	defer q.mu.Unlock() // held while writing: PUBACKs never overtake each other
	s.done, s.err = true, e
	n := 0
	for n < len(q.slots) && q.slots[n].done {
		n++
	}
	for _, d := range q.slots[:n] {
		if ack, ok := pubackFor(cl, d.id, d.err); ok {
			_ = cl.WritePacket(ack) // a failed write: the connection is gone
		}
		<-q.room
	}
	q.slots = append(q.slots[:0], q.slots[n:]...)
}

// pubackFor is the PUBACK a stored or refused QoS 1 publish gets, or none
// when nothing was kept for a 3.1.1 client (see refuse).
func pubackFor(cl *mqtt.Client, id uint16, e *imerr.Error) (packets.Packet, bool) {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id}
	if e == nil {
		return ack, true
	}
	if cl.Properties.ProtocolVersion == 5 {
		code := refusal[e.Code]
		ack.ReasonCode = code.Code
		return ack, true
	}
	if unkept(e.Code) {
		return ack, false
	}
	return ack, true
}
