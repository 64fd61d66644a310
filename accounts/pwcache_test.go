package accounts

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestPasswordCache: with the one KDF slot held (so anything that runs the
// KDF answers ErrBusy), a password verified within the TTL still logs in;
// a wrong password, an expired entry, one after RevokeAll or after a
// password change all need the KDF again; the cache stays within its size.
func TestPasswordCache(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	s, db := openStore(t, t.TempDir(), Options{Now: clock, KDFLimits: KDFLimits{Slots: 1},
		PasswordCache: PasswordCache{TTL: time.Minute, MaxEntries: 3}})
	defer db.Close()
	const pw = "a fine passphrase"
	if err := s.Create("alice", pw); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckPassword("alice", pw); err != nil { // verified: cached
		t.Fatal(err)
	}
	hold := func(f func()) {
		t.Helper()
		if err := s.gate.acquire(); err != nil {
			t.Fatal(err)
		}
		defer s.gate.release()
		f()
	}
	hold(func() {
		if err := s.CheckPassword("alice", pw); err != nil {
			t.Fatalf("cached password with the KDF busy: %v", err)
		}
		if err := s.CheckPassword("alice", pw+"!"); !errors.Is(err, ErrBusy) {
			t.Fatalf("a wrong password did not need the KDF: %v", err)
		}
		if err := s.CheckPassword("alice", pw[:len(pw)-1]); !errors.Is(err, ErrBusy) {
			t.Fatalf("a prefix of the password did not need the KDF: %v", err)
		}
	})
	now = now.Add(time.Minute)
	hold(func() {
		if err := s.CheckPassword("alice", pw); !errors.Is(err, ErrBusy) {
			t.Fatalf("an expired entry was used: %v", err)
		}
	})
	if err := s.CheckPassword("alice", pw); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAll("alice"); err != nil {
		t.Fatal(err)
	}
	hold(func() {
		if err := s.CheckPassword("alice", pw); !errors.Is(err, ErrBusy) {
			t.Fatalf("used after RevokeAll: %v", err)
		}
	})
	const pw2 = "another fine passphrase"
	if err := s.ChangePassword("", "alice", pw, pw2); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckPassword("alice", pw); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password after the change: %v", err)
	}
	if err := s.CheckPassword("alice", pw2); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		u := fmt.Sprintf("user%d", i)
		if err := s.Create(u, pw); err != nil {
			t.Fatal(err)
		}
		if err := s.CheckPassword(u, pw); err != nil {
			t.Fatal(err)
		}
		if n := s.pw.len(); n > 3 {
			t.Fatalf("%d entries, at most 3", n)
		}
	}
	hold(func() {
		if err := s.CheckPassword("user4", pw); err != nil {
			t.Fatalf("the newest entry was evicted: %v", err)
		}
	})

	off, db2 := openStore(t, t.TempDir(), Options{KDFLimits: KDFLimits{Slots: 1}})
	defer db2.Close()
	if err := off.Create("bob", pw); err != nil {
		t.Fatal(err)
	}
	off.CheckPassword("bob", pw)
	off.gate.acquire()
	if err := off.CheckPassword("bob", pw); !errors.Is(err, ErrBusy) {
		t.Fatalf("without a cache: %v", err)
	}
}
