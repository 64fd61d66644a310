package accounts

import (
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/ratelimit"
)

// fastKDF keeps unit tests quick; the gate does not care about the cost.
var fastKDF = KDF{Time: 1, MemKiB: 64, Threads: 1}

func openStore(t *testing.T, dir string, o Options) (*Store, *badger.DB) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	o.KDF = fastKDF
	s, err := Open(db, o)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

// TestKDFGate: a full gate with a full queue answers ErrBusy at once; a
// queued caller gets the slot when it frees, or ErrBusy at its deadline.
func TestKDFGate(t *testing.T) {
	s, db := openStore(t, t.TempDir(), Options{KDFLimits: KDFLimits{Slots: 1, Queue: 1, Wait: time.Hour}})
	defer db.Close()
	if err := s.Create("alice", "a fine passphrase"); err != nil {
		t.Fatal(err)
	}
	if err := s.gate.acquire(); err != nil { // the one slot, held
		t.Fatal(err)
	}
	queued := make(chan error, 1)
	go func() { queued <- s.CheckPassword("alice", "a fine passphrase") }()
	for s.gate.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	err := s.CheckPassword("alice", "a fine passphrase")
	if secs, ok := RetryAfter(err); !errors.Is(err, ErrBusy) || !ok || secs < 1 {
		t.Fatalf("with slot and queue full: %v", err)
	}
	if err := s.Create("bob", "another passphrase"); !errors.Is(err, ErrBusy) {
		t.Fatalf("registration with the gate full: %v", err)
	}
	s.gate.release()
	if err := <-queued; err != nil {
		t.Fatalf("queued check after the slot freed: %v", err)
	}

	short, db2 := openStore(t, t.TempDir(), Options{KDFLimits: KDFLimits{Slots: 1, Queue: 1, Wait: 10 * time.Millisecond}})
	defer db2.Close()
	short.gate.acquire()
	if err := short.CheckPassword("nobody", "whatever-it-is"); !errors.Is(err, ErrBusy) {
		t.Fatalf("after the queue deadline: %v", err)
	}
}

// TestAuthenticateDispatch: tokens and API keys of ours never reach the
// password path (no KDF, no throttle), valid or not; anything else is a
// password, whatever it looks like.
func TestAuthenticateDispatch(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	s, db := openStore(t, t.TempDir(), Options{Now: clock, TokenTTL: time.Hour,
		Throttle: ratelimit.NewLogins(ratelimit.LoginLimits{IPRate: 0.001, IPBurst: 1, Now: clock})})
	defer db.Close()
	const dotted = "a.password.with-two-dots-longer-than-forty-bytes"
	if err := s.Create("alice", dotted); err != nil {
		t.Fatal(err)
	}
	tok, _ := s.IssueToken("alice")
	now = now.Add(2 * time.Hour) // expired
	for range 3 {
		if _, err := s.Authenticate("10.0.0.1", "alice", "alice:x", tok.Token); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("expired token: %v", err)
		}
	}
	// The IP's one password attempt is still there: the token took none.
	c, err := s.Authenticate("10.0.0.1", "alice", "alice:x", dotted)
	if err != nil || c.Kind != CredPassword {
		t.Fatalf("dotted password: %+v %v", c, err)
	}
	fresh, _ := s.IssueToken("alice")
	if c, err := s.Authenticate("10.0.0.1", "alice", "alice:x", fresh.Token); err != nil || c.Kind != CredToken || c.ID == "" {
		t.Fatalf("token: %+v %v", c, err)
	}
	if _, err := s.Authenticate("10.0.0.1", "bob", "bob:x", fresh.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("alice's token for bob: %v", err)
	}
}

// TestRevocationSurvivesReopen: a revoked token and a user's bumped token
// generation are in the database.
func TestRevocationSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, db := openStore(t, dir, Options{})
	a, _ := s.IssueToken("alice")
	b, _ := s.IssueToken("alice")
	c, _ := s.IssueToken("carol")
	ta, err := s.ParseToken(a.Token)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ta); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAll("carol"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, db = openStore(t, dir, Options{})
	defer db.Close()
	for _, x := range []struct {
		tok   string
		valid bool
	}{{a.Token, false}, {b.Token, true}, {c.Token, false}} {
		if _, err := s.VerifyToken(x.tok); (err == nil) != x.valid {
			t.Fatalf("token valid %v after reopen, want %v", err == nil, x.valid)
		}
	}
	if n, _ := s.IssueToken("carol"); n.Token != "" {
		if _, err := s.VerifyToken(n.Token); err != nil {
			t.Fatalf("a new token after RevokeAll: %v", err)
		}
	}
}

// TestCheckNewPassword covers the policy's edges the API test does not.
func TestCheckNewPassword(t *testing.T) {
	for _, c := range []struct {
		user, pw string
		ok       bool
	}{
		{"al", "al-is-fine-here", true}, // ids under 3 characters may appear
		{"alice", "ALICE-in-wonderland", false},
		{"bob", "correct horse battery", true},
		{"bob", "PASSWORD", false},
		{"bob", string(make([]byte, 257)), false},
	} {
		if err := CheckNewPassword(c.user, c.pw); (err == nil) != c.ok {
			t.Errorf("CheckNewPassword(%q, %q) = %v, want ok %v", c.user, c.pw, err, c.ok)
		}
	}
	if len(common) < 900 {
		t.Fatalf("common list has %d entries", len(common))
	}
}
