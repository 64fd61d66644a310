package fanout

import (
	"sync"
	"testing"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
)

type recSink struct {
	mu      sync.Mutex
	entries []Entry
	events  []Event
}

func (r *recSink) Entry(e Entry) { r.mu.Lock(); r.entries = append(r.entries, e); r.mu.Unlock() }
func (r *recSink) Event(e Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

type recRouter struct{ recSink }

func (r *recRouter) Route(e Event) { r.Event(e) }

func TestLocal(t *testing.T) {
	router := &recRouter{}
	h := NewLocal(router)
	bob, bob2, carol := &recSink{}, &recSink{}, &recSink{}
	cancelBob := h.Subscribe("bob", bob, false)
	h.Subscribe("bob", bob2, true)
	h.Subscribe("carol", carol, true)

	h.Committed([]history.Appended{
		{Msg: envelope.Message{ID: "1", Seq: 1}, Recipients: []string{"bob", "carol"}, Positions: []uint64{7, 3}},
		{Msg: envelope.Message{ID: "2", Seq: 2}, Recipients: []string{"bob"}, Positions: []uint64{8}},
	})
	h.Send("bob", Event{Topic: "im/u/bob/typing/alice"})
	h.Broadcast(Event{Topic: "im/presence/alice"})

	pos := func(s *recSink) (out []uint64) {
		for _, e := range s.entries {
			out = append(out, e.Pos)
		}
		return out
	}
	for _, c := range []struct {
		name   string
		s      *recSink
		pos    []uint64
		events int
	}{
		{"bob (no broadcasts)", bob, []uint64{7, 8}, 1},
		{"bob's second sink", bob2, []uint64{7, 8}, 2},
		{"carol", carol, []uint64{3}, 1}, // the broadcast only
		{"router", &router.recSink, nil, 2},
	} {
		if got := pos(c.s); len(got) != len(c.pos) || (len(got) > 0 && (got[0] != c.pos[0] || got[len(got)-1] != c.pos[len(c.pos)-1])) {
			t.Errorf("%s: positions %v, want %v", c.name, got, c.pos)
		}
		if len(c.s.events) != c.events {
			t.Errorf("%s: %d events, want %d", c.name, len(c.s.events), c.events)
		}
	}
	if bob.entries[0].Msg.ID != "1" || bob.entries[0].User != "bob" {
		t.Errorf("entry: %+v", bob.entries[0])
	}

	cancelBob()
	cancelBob() // idempotent
	h.Send("bob", Event{Topic: "x"})
	if len(bob.events) != 1 || h.Sinks() != 2 {
		t.Errorf("after cancel: %d events, %d sinks", len(bob.events), h.Sinks())
	}
}
