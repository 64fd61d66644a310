package imclient

import (
	"math/rand"
	"testing"

	"github.com/mqim/mqim/envelope"
)

func msg(from, to string, seq uint64) envelope.Message {
	return envelope.Message{ID: from + to + string(rune('a'+seq)), From: from, To: to, Seq: seq}
}

// Live deliveries in random order with repeats, plus the sync feed, come out
// per conversation in seq order, each exactly once.
func TestSequencerOrdersAndDeduplicates(t *testing.T) {
	for trial := 0; trial < 50; trial++ {
		rng := rand.New(rand.NewSource(int64(trial)))
		var feed []envelope.Message
		for i := uint64(1); i <= 30; i++ {
			feed = append(feed, msg("alice", "bob", i))
			if i <= 20 {
				feed = append(feed, envelope.Message{ID: "g" + string(rune('a'+i)), From: "carol", Group: "team", Seq: i})
			}
		}
		var got []envelope.Message
		s := newSequencer("bob", State{}, func(m envelope.Message) { got = append(got, m) })
		// The device first synced the first 10 feed entries.
		s.synced(feed[:10], "e-10")
		// Then live: a random subset of the rest, shuffled, some twice.
		live := append([]envelope.Message(nil), feed[5:]...)
		rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		for _, m := range live {
			if rng.Intn(3) == 0 {
				continue // dropped by the broker
			}
			s.live(m)
			if rng.Intn(4) == 0 {
				s.live(m) // redelivered
			}
		}
		// A sync fills whatever is missing.
		s.synced(feed[10:], "e-50")
		s.settle()
		if len(got) != len(feed) {
			t.Fatalf("trial %d: delivered %d of %d", trial, len(got), len(feed))
		}
		last := map[ConvKey]uint64{}
		for _, m := range got {
			k := KeyOf("bob", m)
			if m.Seq != last[k]+1 {
				t.Fatalf("trial %d: %s seq %d after %d", trial, k, m.Seq, last[k])
			}
			last[k] = m.Seq
		}
		if st := s.state(); st.Cursor != "e-50" || st.Next["dm:alice"] != 31 || st.Next["g:team"] != 21 || len(s.held) != 0 {
			t.Fatalf("trial %d: state %+v held %v", trial, st, s.held)
		}
	}
}

func TestSequencerResumesFromState(t *testing.T) {
	var got []uint64
	s := newSequencer("bob", State{Cursor: "e-3", Next: map[ConvKey]uint64{"dm:alice": 4}}, func(m envelope.Message) { got = append(got, m.Seq) })
	if s.live(msg("alice", "bob", 3)) {
		t.Fatal("old message asked for a sync")
	}
	if s.live(msg("alice", "bob", 4)) {
		t.Fatal("next message asked for a sync")
	}
	if !s.live(msg("alice", "bob", 6)) {
		t.Fatal("a hole did not ask for a sync")
	}
	s.live(msg("alice", "bob", 5))
	if len(got) != 3 || got[0] != 4 || got[2] != 6 {
		t.Fatalf("delivered %v", got)
	}
	// My own sent message (carbon) belongs to the same conversation.
	if k := KeyOf("bob", msg("bob", "alice", 7)); k != "dm:alice" {
		t.Fatalf("carbon key %s", k)
	}
}
