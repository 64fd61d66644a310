// Package ratelimit holds the platform's abuse limits: per-key token buckets
// (a user's publishes, an IP's connection attempts) and a net.Listener
// wrapper that bounds connections per client IP. Every limit takes an
// injected clock, so tests drive time instead of sleeping.
package ratelimit

import (
	"sync"
	"time"
)

// Buckets is a set of token buckets keyed by string (a user id, an IP). Each
// bucket holds at most Burst tokens and refills at Rate tokens per second;
// Allow takes one token. A zero Rate disables the limit (Allow is always
// true). Buckets that are full again are forgotten, so memory follows the
// number of recently active keys. Safe for concurrent use.
type Buckets struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewBuckets returns buckets refilling at rate per second up to burst (burst
// below 1 is taken as 1). now is the clock; nil means time.Now.
func NewBuckets(rate float64, burst int, now func() time.Time) *Buckets {
	if now == nil {
		now = time.Now
	}
	if burst < 1 {
		burst = 1
	}
	return &Buckets{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// Enabled reports whether the buckets limit anything.
func (b *Buckets) Enabled() bool { return b != nil && b.rate > 0 }

// Allow takes a token from key's bucket and reports whether there was one.
func (b *Buckets) Allow(key string) bool {
	_, ok := b.Take(key)
	return ok
}

// Take is Allow that also says, when the bucket is empty, how long until it
// holds a token again (for Retry-After).
func (b *Buckets) Take(key string) (wait time.Duration, ok bool) {
	if !b.Enabled() {
		return 0, true
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.maybeSweep(now)
	k := b.buckets[key]
	if k == nil {
		k = &bucket{tokens: b.burst, last: now}
		b.buckets[key] = k
	}
	if el := now.Sub(k.last).Seconds(); el > 0 {
		k.tokens = min(b.burst, k.tokens+el*b.rate)
	}
	k.last = now
	if k.tokens < 1 {
		return time.Duration((1 - k.tokens) / b.rate * float64(time.Second)), false
	}
	k.tokens--
	return 0, true
}

// Refund gives back a token taken by Take (an attempt that turned out not
// to count), up to the burst.
func (b *Buckets) Refund(key string) {
	if !b.Enabled() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if k := b.buckets[key]; k != nil {
		k.tokens = min(b.burst, k.tokens+1)
	}
}

// maybeSweep drops buckets that have refilled completely: they behave exactly
// like a new bucket. It runs at most once per refill period.
func (b *Buckets) maybeSweep(now time.Time) {
	full := time.Duration(b.burst / b.rate * float64(time.Second))
	sweepIdle(b.buckets, &b.sweep, now, full, full, func(k *bucket) time.Time { return k.last })
}

// sweepIdle drops the entries of m last used (by last) idle or more before
// now. It runs at most once per every: *swept is when it last ran.
func sweepIdle[K comparable, V any](m map[K]V, swept *time.Time, now time.Time, every, idle time.Duration, last func(V) time.Time) {
	if now.Sub(*swept) < every {
		return
	}
	*swept = now
	for k, v := range m {
		if now.Sub(last(v)) >= idle {
			delete(m, k)
		}
	}
}

// Len is the number of buckets held (for tests and metrics).
func (b *Buckets) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buckets)
}
