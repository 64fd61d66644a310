package accounts

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// KDF parameters (argon2id, RFC 9106 second recommended option, lighter memory).
type KDF struct {
	Time    uint32
	MemKiB  uint32
	Threads uint8
}

// DefaultKDF is used for new passwords: ~50 ms on the reference machine.
var DefaultKDF = KDF{Time: 2, MemKiB: 32 * 1024, Threads: 1}

// KDFLimits bound the password KDF, the one thing an unauthenticated client
// can make the server spend real memory (MemKiB per evaluation) and CPU on.
// Zero fields disable their bound.
type KDFLimits struct {
	// Slots is the number of evaluations at once (about one per core).
	Slots int
	// Queue is how many more callers may wait for a slot; past it a caller
	// is answered ErrBusy at once.
	Queue int
	// Wait is the longest a caller waits in the queue before ErrBusy.
	Wait time.Duration
}

// ErrBusy: every KDF slot is taken and the queue is full (or the wait ran
// out). Nothing was checked; the caller may retry after RetryError.After.
var ErrBusy = errors.New("accounts: server busy")

// ErrThrottled: too many failed logins from this IP or for this account;
// retry after RetryError.After.
var ErrThrottled = errors.New("accounts: too many failed logins")

// RetryError is a refusal that says when to try again. It wraps ErrBusy or
// ErrThrottled.
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string { return fmt.Sprintf("%v: retry in %v", e.Err, e.After) }
func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter returns the whole seconds to wait after err (at least 1) when
// err is a RetryError.
func RetryAfter(err error) (int, bool) {
	var re *RetryError
	if !errors.As(err, &re) {
		return 0, false
	}
	return max(1, int((re.After+time.Second-1)/time.Second)), true
}

// kdfGate is a counting semaphore with a bounded, deadlined queue in front
// of argon2id: memory for the KDF is at most Slots x MemKiB however many
// logins arrive, and a caller that cannot get a slot soon is told so
// instead of piling up.
type kdfGate struct {
	slots   chan struct{}
	queue   int64
	wait    time.Duration
	waiting atomic.Int64
}

func newKDFGate(l KDFLimits) *kdfGate {
	if l.Slots <= 0 {
		return nil
	}
	return &kdfGate{slots: make(chan struct{}, l.Slots), queue: int64(l.Queue), wait: l.Wait}
}

// acquire takes a slot; release gives it back.
func (g *kdfGate) acquire() error {
	if g == nil {
		return nil
	}
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if g.waiting.Add(1) > g.queue {
		g.waiting.Add(-1)
		return &RetryError{ErrBusy, time.Second}
	}
	defer g.waiting.Add(-1)
	var timeout <-chan time.Time
	if g.wait > 0 {
		t := time.NewTimer(g.wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-timeout:
		return &RetryError{ErrBusy, time.Second}
	}
}

func (g *kdfGate) release() {
	if g != nil {
		<-g.slots
	}
}

// hash runs argon2id with p inside the gate.
func (s *Store) hash(password string, salt []byte, p KDF) ([]byte, error) {
	if err := s.gate.acquire(); err != nil {
		return nil, err
	}
	defer s.gate.release()
	return argon2.IDKey([]byte(password), salt, p.Time, p.MemKiB, p.Threads, 32), nil
}
