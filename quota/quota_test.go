package quota

import "testing"

func TestSlots(t *testing.T) {
	s := NewSlots(2)
	steps := []struct {
		op   string // take, release
		key  string
		want bool // for take
	}{
		{"take", "a", true}, {"take", "a", true},
		{"take", "a", false}, // full
		{"take", "b", true},  // keys are independent
		{"release", "a", false},
		{"take", "a", true},
		{"take", "a", false},
	}
	for i, st := range steps {
		switch st.op {
		case "take":
			if got := s.Take(st.key); got != st.want {
				t.Fatalf("step %d: Take(%s) = %v, want %v", i, st.key, got, st.want)
			}
		case "release":
			s.Release(st.key)
		}
	}
	s.Release("b")
	if n := len(s.held); n != 1 {
		t.Fatalf("keys held after b released all: %d, want 1", n)
	}
	var unlimited Slots
	for range 1000 {
		if !unlimited.Take("x") {
			t.Fatal("zero Slots must not cap")
		}
	}
	if unlimited.Held("x") != 1000 {
		t.Fatalf("held %d", unlimited.Held("x"))
	}
}

func TestRetained(t *testing.T) {
	// Two messages or 20 bytes (topic + payload) per user.
	r := NewRetained(2, 20)
	steps := []struct {
		user, topic string
		n           int // payload length; 0 deletes
		admit       bool
		want        Usage // alice's after the step (if admitted, it is Set)
	}{
		{"alice", "t/1", 5, true, Usage{1, 8}},
		{"alice", "t/1", 7, true, Usage{1, 10}},  // replacing own: bytes change, count does not
		{"alice", "t/2", 5, true, Usage{2, 18}},  // second message
		{"alice", "t/3", 1, false, Usage{2, 18}}, // a third: over the count
		{"alice", "t/2", 8, false, Usage{2, 18}}, // 21 bytes: over the bytes
		{"alice", "t/2", 2, true, Usage{2, 15}},  // shrinking is fine
		{"bob", "t/1", 3, true, Usage{1, 5}},     // bob overwrites t/1: alice's quota is freed
		{"alice", "t/2", 0, true, Usage{0, 0}},   // a delete is always admitted and frees
		{"alice", "t/9", 20, false, Usage{0, 0}}, // 23 bytes alone is too much
		{"carol", "t/1", 0, true, Usage{0, 0}},   // anyone's delete frees bob's
	}
	for i, s := range steps {
		if got := r.Admit(s.user, s.topic, s.n); got != s.admit {
			t.Fatalf("step %d: Admit(%s, %s, %d) = %v, want %v", i, s.user, s.topic, s.n, got, s.admit)
		}
		if s.admit {
			r.Set(s.user, s.topic, s.n)
		}
		if u := r.Usage("alice"); u != s.want {
			t.Fatalf("step %d: alice uses %+v, want %+v", i, u, s.want)
		}
	}
	if u := r.Usage("bob"); u != (Usage{}) {
		t.Fatalf("bob uses %+v after his only message was deleted", u)
	}
	// Lowered limits: a user over them may still shrink or delete, not grow.
	r = NewRetained(0, 0)
	r.Set("dave", "a", 10)
	r.Set("dave", "b", 10)
	r.MaxCount, r.MaxBytes = 1, 5
	if r.Admit("dave", "c", 1) || r.Admit("dave", "a", 11) {
		t.Fatal("a user over a lowered quota must not grow")
	}
	if !r.Admit("dave", "a", 9) || !r.Admit("dave", "b", 0) {
		t.Fatal("a user over a lowered quota may shrink and delete")
	}
	// Load does not override a live publish.
	r.Set("erin", "x", 1)
	r.Load("dave", "x", 4)
	if r.Usage("erin").Count != 1 {
		t.Fatal("Load overrode a newer Set")
	}
}
