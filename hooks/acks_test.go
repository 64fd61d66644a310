package hooks

import (
	"testing"
	"time"
)

// TestAckQueueBound: past maxPendingAcks an MQTT 5 client is refused (the
// caller disconnects it with 0x93); a 3.1.1 client waits until a slot
// frees.
func TestAckQueueBound(t *testing.T) {
	q := (&acks{}).queue(nil)
	var first *ackSlot
	for i := 0; i < maxPendingAcks; i++ {
		s := q.add(uint16(i+1), true)
		if s == nil {
			t.Fatalf("slot %d refused", i)
		}
		if first == nil {
			first = s
		}
	}
	if q.add(9999, true) != nil {
		t.Fatal("an MQTT 5 client got a slot past the Receive Maximum")
	}
	got := make(chan *ackSlot)
	go func() { got <- q.add(10000, false) }()
	select {
	case <-got:
		t.Fatal("a 3.1.1 client got a slot past the bound without waiting")
	case <-time.After(50 * time.Millisecond): // it waits: nothing to poll for
	}
	// Completing the head frees its slot (no PUBACK: the client is nil, so
	// complete is driven through the queue's bookkeeping only).
	q.mu.Lock()
	q.slots = q.slots[1:]
	q.mu.Unlock()
	<-q.room
	select {
	case s := <-got:
		if s == nil || s.id != 10000 {
			t.Fatalf("waiting client got %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a freed slot did not reach the waiting client")
	}
}
