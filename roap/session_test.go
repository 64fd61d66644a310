package roap

import (
	"errors"
	"testing"
	"time"
)

// party is one user's Manager with its outbox and the events it saw.
type party struct {
	m      *Manager
	outbox []Message
	events []Event
}

func newParty(t *testing.T, self string, clock Clock) *party {
	p := &party{}
	p.m = NewManager(Config{
		Self:          self,
		Clock:         clock,
		Send:          func(m Message) error { p.outbox = append(p.outbox, m); return nil },
		OnEvent:       func(e Event) { p.events = append(p.events, e) },
		OfferTimeout:  30 * time.Second,
		AnswerTimeout: 10 * time.Second,
	})
	return p
}

// deliver hands everything in from's outbox to to, round-tripping each
// message through the wire codec.
func deliver(t *testing.T, from, to *party) {
	t.Helper()
	out := from.outbox
	from.outbox = nil
	for _, m := range out {
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := to.m.Handle(d); err != nil {
			t.Fatalf("Handle %s: %v", d.Type, err)
		}
	}
}

func (p *party) lastEvent(t *testing.T) Event {
	t.Helper()
	if len(p.events) == 0 {
		t.Fatal("no event")
	}
	return p.events[len(p.events)-1]
}

const sdpX = "v=0\r\n"

func open(t *testing.T, a, b *party, sid string) string {
	t.Helper()
	sid, err := a.m.Offer("bob", sid, sdpX)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, a, b)
	if e := b.lastEvent(t); e.Kind != EventOffer || e.SessionID != sid || e.Peer != "alice" {
		t.Fatalf("bob got %+v", e)
	}
	if err := b.m.Answer("alice", sid, sdpX); err != nil {
		t.Fatal(err)
	}
	deliver(t, b, a)
	if e := a.lastEvent(t); e.Kind != EventAnswer {
		t.Fatalf("alice got %+v", e)
	}
	if err := a.m.Confirm("bob", sid); err != nil {
		t.Fatal(err)
	}
	deliver(t, a, b)
	if e := b.lastEvent(t); e.Kind != EventOpen || e.State != StateOpen {
		t.Fatalf("bob got %+v", e)
	}
	return sid
}

func TestSessionHappyPathAndShutdown(t *testing.T) {
	clk := NewManualClock(time.Unix(0, 0))
	a, b := newParty(t, "alice", clk), newParty(t, "bob", clk)
	sid := open(t, a, b, "")
	if err := a.m.Candidate("bob", sid, Candidate{Candidate: ""}); err != nil {
		t.Fatal(err)
	}
	deliver(t, a, b)
	if e := b.lastEvent(t); e.Kind != EventCandidate || e.Candidate == nil {
		t.Fatalf("bob got %+v", e)
	}
	// Timers of the negotiation are disarmed once open.
	clk.Advance(time.Hour)
	if st, _ := a.m.State("bob", sid); st != StateOpen {
		t.Fatalf("alice state %s", st)
	}
	if err := b.m.Shutdown("alice", sid); err != nil {
		t.Fatal(err)
	}
	deliver(t, b, a)
	if e := a.lastEvent(t); e.Kind != EventClosed || !e.Remote || e.Error != "" {
		t.Fatalf("alice got %+v", e)
	}
	if a.m.Len() != 0 || b.m.Len() != 0 {
		t.Fatalf("sessions left: %d, %d", a.m.Len(), b.m.Len())
	}
}

func TestOfferTimeout(t *testing.T) {
	clk := NewManualClock(time.Unix(0, 0))
	a := newParty(t, "alice", clk)
	sid, err := a.m.Offer("bob", "", sdpX)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(29 * time.Second)
	if len(a.events) != 0 {
		t.Fatalf("early event %+v", a.events)
	}
	clk.Advance(time.Second)
	if e := a.lastEvent(t); e.Kind != EventClosed || e.Error != ErrorTimeout || e.Remote {
		t.Fatalf("alice got %+v", e)
	}
	if last := a.outbox[len(a.outbox)-1]; last.Type != TypeError || last.ErrorType != ErrorTimeout || last.SessionID != sid {
		t.Fatalf("alice sent %+v", last)
	}
	if _, ok := a.m.State("bob", sid); ok {
		t.Fatal("session survived its timeout")
	}
}

func TestAnswerTimeout(t *testing.T) {
	clk := NewManualClock(time.Unix(0, 0))
	a, b := newParty(t, "alice", clk), newParty(t, "bob", clk)
	sid, _ := a.m.Offer("bob", "", sdpX)
	deliver(t, a, b)
	if err := b.m.Answer("alice", sid, sdpX); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second) // alice never confirms
	if e := b.lastEvent(t); e.Kind != EventClosed || e.Error != ErrorTimeout {
		t.Fatalf("bob got %+v", e)
	}
	// The ERROR reaches alice and closes her side too.
	deliver(t, b, a)
	if e := a.lastEvent(t); e.Kind != EventClosed || e.Error != ErrorTimeout || !e.Remote {
		t.Fatalf("alice got %+v", e)
	}
}

func TestOfflineErrorFromServer(t *testing.T) {
	a := newParty(t, "alice", NewManualClock(time.Unix(0, 0)))
	sid, _ := a.m.Offer("bob", "", sdpX)
	err := a.m.Handle(Message{Type: TypeError, ErrorType: ErrorOffline, From: "bob", To: "alice", SessionID: sid})
	if err != nil {
		t.Fatal(err)
	}
	if e := a.lastEvent(t); e.Kind != EventClosed || e.Error != ErrorOffline || !e.Remote {
		t.Fatalf("alice got %+v", e)
	}
}

func TestGlareLowerIDWins(t *testing.T) {
	clk := NewManualClock(time.Unix(0, 0))
	a, b := newParty(t, "alice", clk), newParty(t, "bob", clk)
	sid := open(t, a, b, "s-1")
	a.events, b.events = nil, nil
	// Both renegotiate the same session at once (e.g. both try to resume).
	if _, err := a.m.Offer("bob", sid, sdpX); err != nil {
		t.Fatal(err)
	}
	if _, err := b.m.Offer("alice", sid, sdpX); err != nil {
		t.Fatal(err)
	}
	deliver(t, a, b)
	deliver(t, b, a)
	if len(a.events) != 0 {
		t.Fatalf("alice (winner) got events %+v", a.events)
	}
	if st, _ := a.m.State("bob", sid); st != StateOfferSent {
		t.Fatalf("alice state %s", st)
	}
	if e := b.lastEvent(t); e.Kind != EventOffer || !e.Rollback {
		t.Fatalf("bob (loser) got %+v", e)
	}
	if err := b.m.Answer("alice", sid, sdpX); err != nil {
		t.Fatal(err)
	}
	deliver(t, b, a)
	if err := a.m.Confirm("bob", sid); err != nil {
		t.Fatal(err)
	}
	deliver(t, a, b)
	if e := b.lastEvent(t); e.Kind != EventOpen {
		t.Fatalf("bob got %+v", e)
	}
	// The loser's offer timer was cancelled with its offer.
	clk.Advance(time.Hour)
	if a.m.Len() != 1 || b.m.Len() != 1 {
		t.Fatal("a session timed out after glare")
	}
}

func TestSeveralSessionsPerPair(t *testing.T) {
	clk := NewManualClock(time.Unix(0, 0))
	a, b := newParty(t, "alice", clk), newParty(t, "bob", clk)
	s1 := open(t, a, b, "")
	s2 := open(t, a, b, "")
	// A session from bob to alice at the same time is independent too.
	if _, err := b.m.Offer("alice", "from-bob", sdpX); err != nil {
		t.Fatal(err)
	}
	deliver(t, b, a)
	if err := a.m.Shutdown("bob", s1); err != nil {
		t.Fatal(err)
	}
	deliver(t, a, b)
	if st, ok := b.m.State("alice", s2); !ok || st != StateOpen {
		t.Fatalf("s2 on bob: %s %v", st, ok)
	}
	if st, ok := a.m.State("bob", "from-bob"); !ok || st != StateOfferReceived {
		t.Fatalf("from-bob on alice: %s %v", st, ok)
	}
	if a.m.Len() != 2 || b.m.Len() != 2 {
		t.Fatalf("live sessions %d, %d", a.m.Len(), b.m.Len())
	}
}

func TestOutOfStateMessagesAreRefused(t *testing.T) {
	clk := NewManualClock(time.Unix(0, 0))
	a, b := newParty(t, "alice", clk), newParty(t, "bob", clk)
	sid := open(t, a, b, "s")
	for _, tc := range []struct {
		name string
		msg  Message
		want error
	}{
		{"answer when open", Message{Type: TypeAnswer, From: "bob", To: "alice", SessionID: sid, SDP: sdpX}, ErrWrongState},
		{"ok when open", Message{Type: TypeOK, From: "bob", To: "alice", SessionID: sid}, ErrWrongState},
		{"candidate for unknown session", Message{Type: TypeCandidate, From: "bob", To: "alice", SessionID: "nope", Candidate: &Candidate{}}, ErrUnknownSession},
		{"shutdown from another peer", Message{Type: TypeShutdown, From: "carol", To: "alice", SessionID: sid}, ErrUnknownSession},
		{"addressed to someone else", Message{Type: TypeOK, From: "bob", To: "carol", SessionID: sid}, ErrNotForMe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.m.Handle(tc.msg); !errors.Is(err, tc.want) {
				t.Fatalf("Handle error %v, want %v", err, tc.want)
			}
			if st, _ := a.m.State("bob", sid); st != StateOpen {
				t.Fatalf("state changed to %s", st)
			}
		})
	}
	if _, err := a.m.Offer("bob", "s2", sdpX); err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.Offer("bob", "s2", sdpX); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("second offer on a negotiating session: %v", err)
	}
	if err := a.m.Answer("bob", "s2", sdpX); !errors.Is(err, ErrWrongState) {
		t.Fatalf("answer own offer: %v", err)
	}
}

// Abandon ends a session locally and sends the peer nothing.
func TestAbandonSendsNothing(t *testing.T) {
	clk := NewManualClock(time.Unix(0, 0))
	a, b := newParty(t, "alice", clk), newParty(t, "bob", clk)
	sid := open(t, a, b, "")
	if err := b.m.Abandon("alice", sid); err != nil {
		t.Fatal(err)
	}
	if len(b.outbox) != 0 {
		t.Fatalf("Abandon sent %+v", b.outbox)
	}
	if e := b.lastEvent(t); e.Kind != EventClosed || e.Remote || e.Error != "" {
		t.Fatalf("bob got %+v", e)
	}
	if b.m.Len() != 0 {
		t.Fatal("session kept")
	}
	if err := b.m.Abandon("alice", sid); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("second Abandon: %v", err)
	}
}
