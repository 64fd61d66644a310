// Package checkfor is the tests' poll-with-deadline, after nats-server's
// checkFor: poll a check until it passes or time runs out, and on failure
// report the check's last error, so a failing test says what it saw, not
// only what it waited for.
package checkfor

import (
	"errors"
	"testing"
	"time"
)

// Interval is how often a check is polled.
const Interval = 5 * time.Millisecond

// Err polls check every Interval until it returns nil; after d it fails
// the test with the last error.
func Err(t testing.TB, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(Interval)
	}
}

// True is Err for a condition: on timeout it reports what was awaited.
func True(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	Err(t, d, func() error {
		if cond() {
			return nil
		}
		return errors.New("still waiting for " + what)
	})
}
