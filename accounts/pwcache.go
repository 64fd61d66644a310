package accounts

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"sync"
	"time"
)

// PasswordCache bounds what a reconnecting password client costs: after a
// password verifies, a keyed digest of it (HMAC-SHA256 under a random key
// of this process, over the user, the stored argon2id hash and the
// password; never the password itself) is kept for TTL, and a CONNECT or
// login with the same password within it is checked against the digest in
// constant time instead of running the KDF.
//
// Security: only successes are cached, so every wrong guess still costs a
// KDF evaluation inside the gate and counts against the login throttle (a
// hit is throttled like any attempt); a hit's speed tells the caller only
// that the password it holds is right, which the success says anyway. The
// digest binds the stored hash, so a password change misses at once;
// ChangePassword and RevokeAll also drop the user's entry. The cache holds
// at most MaxEntries users (one entry each, the last verified password);
// when full, an expired entry or else an arbitrary one is dropped. A stolen
// process memory yields digests under a key that is in the same memory:
// the exposure is the stored hashes' plus TTL, which is why TTL is short.
type PasswordCache struct {
	TTL        time.Duration
	MaxEntries int
}

type pwEntry struct {
	digest  [sha256.Size]byte
	expires time.Time
}

type pwCache struct {
	ttl time.Duration
	max int
	key [32]byte
	now func() time.Time

	mu      sync.Mutex
	entries map[string]pwEntry
}

// newPWCache returns the cache, nil (always a miss) when disabled.
func newPWCache(c PasswordCache, now func() time.Time) *pwCache {
	if c.TTL <= 0 || c.MaxEntries <= 0 {
		return nil
	}
	pc := &pwCache{ttl: c.TTL, max: c.MaxEntries, now: now, entries: map[string]pwEntry{}}
	if _, err := rand.Read(pc.key[:]); err != nil {
		return nil
	}
	return pc
}

func (c *pwCache) digest(user string, stored []byte, password string) (d [sha256.Size]byte) {
	m := hmac.New(sha256.New, c.key[:])
	for _, part := range [][]byte{[]byte(user), stored, []byte(password)} {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(part)>>24), byte(len(part)>>16), byte(len(part)>>8), byte(len(part))
		m.Write(n[:])
		m.Write(part)
	}
	copy(d[:], m.Sum(nil))
	return d
}

// hit reports whether password is user's verified password of the stored
// hash, verified within TTL.
func (c *pwCache) hit(user string, stored []byte, password string) bool {
	if c == nil {
		return false
	}
	d := c.digest(user, stored, password)
	c.mu.Lock()
	e, ok := c.entries[user]
	c.mu.Unlock()
	return ok && c.now().Before(e.expires) && subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1
}

// add records that password verified against stored.
func (c *pwCache) add(user string, stored []byte, password string) {
	if c == nil {
		return
	}
	e := pwEntry{digest: c.digest(user, stored, password), expires: c.now().Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[user]; !ok && len(c.entries) >= c.max {
		c.evict()
	}
	c.entries[user] = e
}

// evict drops the expired entries, or one entry when none has expired.
func (c *pwCache) evict() {
	now := c.now()
	var any string
	for u, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, u)
		}
		any = u
	}
	if len(c.entries) >= c.max {
		delete(c.entries, any)
	}
}

// forget drops user's entry (password change, revocation).
func (c *pwCache) forget(user string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.entries, user)
	c.mu.Unlock()
}

// len is the number of entries (tests).
func (c *pwCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
