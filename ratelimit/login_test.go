package ratelimit

import (
	"testing"
	"time"
)

// TestLogins: failures back off per (account, IP) and drain the IP's bucket;
// a success refunds and resets; the account limit never stops an IP without
// failures on the account, so the owner gets in while others hammer it.
func TestLogins(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewLogins(LoginLimits{IPRate: 1, IPBurst: 5, BackoffMax: time.Second, AccountRate: 0.1, AccountBurst: 2,
		Now: func() time.Time { return now }})
	type step struct {
		advance     time.Duration
		account, ip string
		outcome     string // "ok", "fail", or "" (refused expected)
		wait        time.Duration
	}
	steps := []step{
		{0, "alice", "1.1.1.1", "fail", 0},
		{0, "alice", "1.1.1.1", "", 125 * time.Millisecond}, // backoff after one failure
		{125 * time.Millisecond, "alice", "1.1.1.1", "fail", 0},
		{0, "alice", "1.1.1.1", "", 250 * time.Millisecond}, // doubled
		{250 * time.Millisecond, "alice", "1.1.1.1", "fail", 0},
		// The account's bucket (burst 2) is spent by the two repeat failures.
		{500 * time.Millisecond, "alice", "1.1.1.1", "", 10 * time.Second},
		{0, "alice", "2.2.2.2", "ok", 0}, // the owner, from a clean IP
		{0, "bob", "1.1.1.1", "fail", 0}, // another account from the same IP
		{0, "carol", "1.1.1.1", "fail", 0},
		{0, "dave", "1.1.1.1", "", 125 * time.Millisecond}, // IP bucket (5) empty
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		wait, ok := l.Begin(s.account, s.ip)
		if ok != (s.outcome != "") {
			t.Fatalf("step %d (%s from %s): admitted %v (wait %v)", i, s.account, s.ip, ok, wait)
		}
		if !ok && (wait <= 0 || wait > s.wait) {
			t.Fatalf("step %d: wait %v, want (0, %v]", i, wait, s.wait)
		}
		switch s.outcome {
		case "ok":
			l.Succeeded(s.account, s.ip)
		case "fail":
			l.Failed(s.account, s.ip)
		}
	}
	// Backoff is capped.
	m := NewLogins(LoginLimits{BackoffMax: 3 * time.Second, Now: func() time.Time { return now }})
	for range 40 {
		m.Failed("x", "9.9.9.9")
	}
	if wait, ok := m.Begin("x", "9.9.9.9"); ok || wait != 3*time.Second {
		t.Fatalf("after 40 failures: admitted %v, wait %v; want the 3 s cap", ok, wait)
	}
	// A success forgets the pair; idle pairs are forgotten too.
	now = now.Add(3 * time.Second)
	if _, ok := m.Begin("x", "9.9.9.9"); !ok {
		t.Fatal("not admitted after the backoff")
	}
	m.Succeeded("x", "9.9.9.9")
	m.Failed("y", "9.9.9.9")
	if m.Pairs() != 1 {
		t.Fatalf("pairs %d, want 1", m.Pairs())
	}
	now = now.Add(pairIdle + time.Minute)
	m.Failed("z", "9.9.9.9")
	if m.Pairs() != 1 {
		t.Fatalf("pairs after idle %d, want 1", m.Pairs())
	}
	// IPv6 counts per /64; a nil throttle allows all.
	if ipKey("2001:db8:1:2:aaaa::1") != ipKey("2001:db8:1:2:bbbb::2") || ipKey("2001:db8:1:3::1") == ipKey("2001:db8:1:2::1") {
		t.Fatal("IPv6 addresses must be keyed by /64")
	}
	var none *Logins
	if _, ok := none.Begin("a", "b"); !ok {
		t.Fatal("nil throttle refused")
	}
}
