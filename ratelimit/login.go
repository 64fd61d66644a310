package ratelimit

import (
	"net"
	"sync"
	"time"
)

// LoginLimits throttle password attempts. Zero fields disable their limit.
type LoginLimits struct {
	// IPRate and IPBurst: password attempts per client IP (IPv6: per /64)
	// that do not end in a successful login, token bucket per second.
	IPRate  float64
	IPBurst int
	// BackoffMax caps the exponential delay after consecutive failures for
	// one account from one IP: 125 ms after the first, doubling, at most
	// BackoffMax. A success resets it.
	BackoffMax time.Duration
	// AccountRate and AccountBurst: failed attempts per account, all IPs
	// together, token bucket per second. It only applies to an IP that has
	// already failed on that account, so the owner's first try from a clean
	// IP always goes through however hard others hammer the account.
	AccountRate  float64
	AccountBurst int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Logins throttles password attempts by client IP and by account, without
// locking anyone out: every refusal says when to try again (Retry-After),
// nothing is ever blocked for longer than a refill or BackoffMax, and the
// account limit never applies to an IP without failures on the account.
// Refusals are decided at once; no goroutine sleeps. Memory follows recent
// failures: each one costs its IP a token, and a pair's state is forgotten
// pairIdle after its last failure. Safe for concurrent use; a nil *Logins
// allows everything.
type Logins struct {
	o       LoginLimits
	ip      *Buckets
	account *Buckets

	mu    sync.Mutex
	pairs map[pairKey]*pair
	sweep time.Time
}

type pairKey struct{ account, ip string }

type pair struct {
	fails int
	until time.Time // no attempt before this
	last  time.Time
}

// pairIdle is how long an (account, IP) pair's failures are remembered.
const pairIdle = 15 * time.Minute

// firstBackoff is the delay after the first failure of a pair.
const firstBackoff = 125 * time.Millisecond

// NewLogins returns a throttle with limits o.
func NewLogins(o LoginLimits) *Logins {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Logins{o: o, ip: NewBuckets(o.IPRate, o.IPBurst, o.Now),
		account: NewBuckets(o.AccountRate, o.AccountBurst, o.Now), pairs: map[pairKey]*pair{}}
}

func (l *Logins) tracksPairs() bool { return l.o.BackoffMax > 0 || l.account.Enabled() }

// Begin is called before a password attempt for account from ip runs the
// KDF. It either admits the attempt (taking the IP's token, and the
// account's if this IP already failed on it) or says how long to wait. An
// admitted attempt is followed by Succeeded or Failed; one that could not be
// evaluated (the KDF was busy) by neither: it still counted for the IP.
func (l *Logins) Begin(account, ip string) (wait time.Duration, ok bool) {
	if l == nil {
		return 0, true
	}
	ip = ipKey(ip)
	now := l.o.Now()
	failed := false
	if l.tracksPairs() {
		l.mu.Lock()
		if p := l.pairs[pairKey{account, ip}]; p != nil && now.Sub(p.last) < pairIdle {
			if now.Before(p.until) {
				l.mu.Unlock()
				return p.until.Sub(now), false
			}
			failed = true
		}
		l.mu.Unlock()
	}
	if wait, ok := l.ip.Take(ip); !ok {
		return wait, false
	}
	if failed {
		if wait, ok := l.account.Take(account); !ok {
			l.ip.Refund(ip)
			return wait, false
		}
	}
	return 0, true
}

// Succeeded records a correct password: the attempt does not count for the
// IP and the pair's failures are forgotten.
func (l *Logins) Succeeded(account, ip string) {
	if l == nil {
		return
	}
	ip = ipKey(ip)
	l.ip.Refund(ip)
	if !l.tracksPairs() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pairs[pairKey{account, ip}] != nil {
		l.account.Refund(account)
		delete(l.pairs, pairKey{account, ip})
	}
}

// Failed records a wrong password for account from ip.
func (l *Logins) Failed(account, ip string) {
	if l == nil || !l.tracksPairs() {
		return
	}
	ip = ipKey(ip)
	now := l.o.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maybeSweep(now)
	k := pairKey{account, ip}
	p := l.pairs[k]
	if p == nil {
		p = &pair{}
		l.pairs[k] = p
	}
	p.fails++
	p.last = now
	if l.o.BackoffMax > 0 {
		d := l.o.BackoffMax
		if p.fails <= 32 {
			d = min(d, firstBackoff<<(p.fails-1))
		}
		p.until = now.Add(d)
	}
}

func (l *Logins) maybeSweep(now time.Time) {
	sweepIdle(l.pairs, &l.sweep, now, time.Minute, pairIdle, func(p *pair) time.Time { return p.last })
}

// Pairs is the number of (account, IP) pairs with remembered failures.
func (l *Logins) Pairs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pairs)
}

// ipKey is the unit an IP limit counts: the address for IPv4, the /64 for
// IPv6 (one subscriber usually holds a whole /64).
func ipKey(ip string) string {
	a := net.ParseIP(ip)
	if a == nil || a.To4() != nil {
		return ip
	}
	return a.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
