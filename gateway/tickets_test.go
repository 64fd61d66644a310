package gateway

import (
	"fmt"
	"testing"
	"time"
)

// TestTickets: tickets are single-use, capped per user, and expire from the
// front of their queue, freeing their user's place; a redeemed or expired
// ticket is gone from both the map and the queue.
func TestTickets(t *testing.T) {
	var tk tickets
	tk.held.Max = 2
	t0 := time.Unix(1_700_000_000, 0)
	a1, _, ok1 := tk.issue("alice", t0)
	_, _, ok2 := tk.issue("alice", t0.Add(time.Second))
	if _, _, ok := tk.issue("alice", t0.Add(2*time.Second)); !ok1 || !ok2 || ok {
		t.Fatalf("issue: %v %v, third %v; want true true false", ok1, ok2, ok)
	}
	for i := range 1000 {
		if _, _, ok := tk.issue(fmt.Sprint("u", i), t0.Add(3*time.Second)); !ok {
			t.Fatal("another user's ticket refused")
		}
	}
	if u, ok := tk.redeem(a1, t0.Add(5*time.Second)); !ok || u != "alice" {
		t.Fatalf("redeem: %q %v", u, ok)
	}
	if _, ok := tk.redeem(a1, t0.Add(5*time.Second)); ok {
		t.Fatal("a ticket redeemed twice")
	}
	if _, _, ok := tk.issue("alice", t0.Add(5*time.Second)); !ok {
		t.Fatal("a redeemed ticket did not free its place")
	}
	// Past every TTL one issue clears the queue from the front.
	late := t0.Add(ticketTTL + 10*time.Second)
	late1, _, _ := tk.issue("bob", late)
	if n, q := tk.len(), tk.queue.Len(); n != 1 || q != 1 {
		t.Fatalf("after expiry: %d tickets, queue %d; want 1, 1", n, q)
	}
	if tk.held.Held("alice") != 0 || tk.held.Held("u1") != 0 {
		t.Fatal("expired tickets still held")
	}
	if _, ok := tk.redeem(late1, late.Add(ticketTTL+time.Second)); ok {
		t.Fatal("an expired ticket redeemed")
	}
}
