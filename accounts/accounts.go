// Package accounts stores users with argon2id-hashed passwords and issues
// signed, expiring, revocable access tokens (JWT, HS256). Verifying a token or
// an API key never runs the KDF, so a reconnect storm with them stays cheap; a
// password login costs one argon2id evaluation by design, so every evaluation
// goes through a bounded gate (KDFLimits), and password attempts from the
// network are throttled per IP and per account first (ratelimit.Logins).
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/ratelimit"
	"github.com/mqim/mqim/topic"
)

// Sentinel errors.
var (
	ErrExists          = errors.New("accounts: user exists")
	ErrInvalidUser     = errors.New("accounts: invalid user id")
	ErrInvalidPassword = errors.New("accounts: password refused") // see PasswordError
	ErrBadCredentials  = errors.New("accounts: bad user or password")
)

// Kinds of account.
const (
	KindPerson = "person"
	KindDevice = "device"
)

type record struct {
	User    string `json:"user"`
	Kind    string `json:"kind,omitempty"`  // "" means person (records before kinds existed)
	Owner   string `json:"owner,omitempty"` // the person who manages a device account`
	Salt    []byte `json:"salt"`
	Hash    []byte `json:"hash"`
	Time    uint32 `json:"t"`
	MemKiB  uint32 `json:"m"`
	Threads uint8  `json:"p"`
	Created int64  `json:"created"`
}

// Store is the account store.
type Store struct {
	db       *badger.DB
	w        kvstore.Writer
	kdf      KDF
	secret   []byte
	tokenTTL time.Duration
	now      func() time.Time
	gate     *kdfGate
	throttle *ratelimit.Logins
	space    *kvstore.Space

	mu     sync.RWMutex
	exists map[string]bool   // cache of positive lookups; users are never deleted
	kinds  map[string]string // cache of kinds, same lifetime

	genMu sync.Mutex
	gens  map[string]uint64 // cache of token generations (see RevokeAll)

	pw *pwCache // verified passwords (PasswordCache); nil: off
}

// Options configure a Store.
type Options struct {
	KDF      KDF
	TokenTTL time.Duration
	Now      func() time.Time
	// KDFLimits bound concurrent KDF evaluations (zero: unbounded).
	KDFLimits KDFLimits
	// Throttle limits password attempts from the network (nil: none).
	Throttle *ratelimit.Logins
	// Space, if set, refuses new accounts and keys while the disk is below
	// its reserve (errors wrap kvstore.ErrFull).
	Space *kvstore.Space
	// PasswordCache, if its TTL and MaxEntries are set, spares a client
	// that logs in again with the password it verified within TTL the KDF.
	PasswordCache PasswordCache
	// Writer commits every change (nil: db itself). A cluster's writer
	// replicates them, so an account made on one node logs in on all.
	Writer kvstore.Writer
}

// Open returns a Store over db, creating the token signing secret on first use.
func Open(db *badger.DB, o Options) (*Store, error) {
	if o.KDF.Time == 0 {
		o.KDF = DefaultKDF
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Writer == nil {
		o.Writer = kvstore.Local{DB: db}
	}
	s := &Store{db: db, w: o.Writer, kdf: o.KDF, tokenTTL: o.TokenTTL, now: o.Now, gate: newKDFGate(o.KDFLimits), throttle: o.Throttle, space: o.Space,
		exists: map[string]bool{}, kinds: map[string]string{}, gens: map[string]uint64{}, pw: newPWCache(o.PasswordCache, o.Now)}
	// The first node to store a secret wins; every other one reads it.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	err := o.Writer.Commit(context.Background(), kvstore.Batch{Absent: [][]byte{[]byte("k/token")}, Set: []kvstore.Entry{{Key: []byte("k/token"), Value: secret}}})
	if err == nil || errors.Is(err, kvstore.ErrConflict) {
		err = db.View(func(txn *badger.Txn) error {
			it, err := txn.Get([]byte("k/token"))
			if err != nil {
				return err
			}
			s.secret, err = it.ValueCopy(nil)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("accounts: token secret: %w", err)
	}
	return s, nil
}

func key(user string) []byte { return []byte("a/" + user) }

// Create adds a person. It fails with ErrExists if the id is taken and
// with a PasswordError if the password breaks CheckNewPassword.
func (s *Store) Create(user, password string) error {
	return s.create("", user, password)
}

// Register is Create for a request from the network address from: once the
// cheap checks pass, the KDF it costs counts against from's login limit
// (ErrThrottled), and it may be answered ErrBusy.
func (s *Store) Register(from, user, password string) error {
	return s.create(from, user, password)
}

func (s *Store) create(from, user, password string) error {
	if !topic.ValidUser(user) {
		return ErrInvalidUser
	}
	if ok, err := s.Exists(user); err != nil {
		return err
	} else if ok {
		return ErrExists
	}
	if err := CheckNewPassword(user, password); err != nil {
		return err
	}
	if from != "" {
		if wait, ok := s.throttle.Begin(user, from); !ok {
			return &RetryError{ErrThrottled, wait}
		}
	}
	r, err := s.newHash(record{User: user, Kind: KindPerson, Created: s.now().UnixMilli()}, password)
	if err != nil {
		return err
	}
	return s.insert(r)
}

// newHash sets r's salt and hash for password with the current parameters.
func (s *Store) newHash(r record, password string) (record, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return r, fmt.Errorf("accounts: salt: %w", err)
	}
	h, err := s.hash(password, salt, s.kdf)
	if err != nil {
		return r, err
	}
	r.Salt, r.Hash, r.Time, r.MemKiB, r.Threads = salt, h, s.kdf.Time, s.kdf.MemKiB, s.kdf.Threads
	return r, nil
}

// CreateDevice adds a device account managed by owner. Devices have no
// password; they authenticate with API keys (CreateKey).
func (s *Store) CreateDevice(device, owner string) error {
	if !topic.ValidUser(device) {
		return ErrInvalidUser
	}
	return s.insert(record{User: device, Kind: KindDevice, Owner: owner, Created: s.now().UnixMilli()}, []byte("dv/"+owner+"/"+device))
}

// Devices lists the device accounts owner manages.
func (s *Store) Devices(owner string) ([]string, error) {
	out := []string{}
	prefix := []byte("dv/" + owner + "/")
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, string(it.Item().Key()[len(prefix):]))
		}
		return nil
	})
	return out, err
}

// insert stores a new record, and marker keys (empty values) with it in
// the same batch; ErrExists if the id was taken (on any node).
func (s *Store) insert(r record, markers ...[]byte) error {
	if err := s.space.Check(); err != nil {
		return err
	}
	user := r.User
	val, _ := json.Marshal(r)
	b := kvstore.Batch{Absent: [][]byte{key(user)}, Set: []kvstore.Entry{{Key: key(user), Value: val}}}
	for _, m := range markers {
		b.Set = append(b.Set, kvstore.Entry{Key: m, Value: nil})
	}
	if err := s.w.Commit(context.Background(), b); err != nil {
		if errors.Is(err, kvstore.ErrConflict) {
			return ErrExists
		}
		return fmt.Errorf("accounts: create %s: %w", user, err)
	}
	s.mu.Lock()
	s.exists[user] = true
	s.mu.Unlock()
	return nil
}

func (s *Store) get(user string) (record, error) {
	var r record
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key(user))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &r) })
	})
	return r, err
}

// Exists reports whether user is registered.
func (s *Store) Exists(user string) (bool, error) {
	s.mu.RLock()
	ok := s.exists[user]
	s.mu.RUnlock()
	if ok {
		return true, nil
	}
	if !topic.ValidUser(user) {
		return false, nil
	}
	_, err := s.get(user)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("accounts: lookup %s: %w", user, err)
	}
	s.mu.Lock()
	s.exists[user] = true
	s.mu.Unlock()
	return true, nil
}

// PeopleWithPrefix returns up to limit person ids starting with prefix, in
// id order (for the directory; device accounts are not listed).
func (s *Store) PeopleWithPrefix(prefix string, limit int) ([]string, error) {
	var out []string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: key(prefix), PrefetchValues: true, PrefetchSize: limit})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
			var r record
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return err
			}
			if r.Kind == "" || r.Kind == KindPerson {
				out = append(out, r.User)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: list %q: %w", prefix, err)
	}
	return out, nil
}

// Kind returns the kind of a user (KindPerson or KindDevice).
func (s *Store) Kind(user string) (string, error) {
	s.mu.RLock()
	k, ok := s.kinds[user]
	s.mu.RUnlock()
	if ok {
		return k, nil
	}
	r, err := s.get(user)
	if err != nil {
		return "", fmt.Errorf("accounts: lookup %s: %w", user, err)
	}
	k = r.Kind
	if k == "" {
		k = KindPerson
	}
	s.mu.Lock()
	s.kinds[user] = k
	s.mu.Unlock()
	return k, nil
}

// Owner returns who manages a device account ("" for persons).
func (s *Store) Owner(user string) (string, error) {
	r, err := s.get(user)
	if err != nil {
		return "", fmt.Errorf("accounts: lookup %s: %w", user, err)
	}
	return r.Owner, nil
}

// CheckPassword verifies user's password (runs the KDF, inside the gate:
// it may fail with ErrBusy; or, for a password verified within the
// PasswordCache's TTL, compares its digest). It is not throttled; see Login.
func (s *Store) CheckPassword(user, password string) error {
	if !topic.ValidUser(user) || len(password) > MaxPasswordLen {
		return ErrBadCredentials
	}
	r, err := s.get(user)
	if errors.Is(err, badger.ErrKeyNotFound) {
		// Spend the same time as a real check so response timing does not
		// reveal which user ids exist.
		if _, err := s.hash(password, make([]byte, 16), s.kdf); err != nil {
			return err
		}
		return ErrBadCredentials
	}
	if err != nil {
		return fmt.Errorf("accounts: lookup %s: %w", user, err)
	}
	if r.Hash == nil { // device accounts have no password
		return ErrBadCredentials
	}
	if s.pw.hit(user, r.Hash, password) {
		return nil
	}
	h, err := s.hash(password, r.Salt, KDF{r.Time, r.MemKiB, r.Threads})
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(h, r.Hash) != 1 {
		return ErrBadCredentials
	}
	s.pw.add(user, r.Hash, password)
	return nil
}

// Login checks a password attempt from the network address from: throttled
// per IP and per account (ErrThrottled, at once, without running the KDF),
// then CheckPassword.
func (s *Store) Login(from, user, password string) error {
	if !topic.ValidUser(user) || len(password) > MaxPasswordLen || !utf8.ValidString(password) {
		// No stored password can match: refuse without spending anything.
		return ErrBadCredentials
	}
	if wait, ok := s.throttle.Begin(user, from); !ok {
		return &RetryError{ErrThrottled, wait}
	}
	err := s.CheckPassword(user, password)
	switch {
	case err == nil:
		s.throttle.Succeeded(user, from)
	case errors.Is(err, ErrBadCredentials):
		s.throttle.Failed(user, from)
	}
	return err
}

// ChangePassword replaces user's password after checking the old one (as
// Login does, from the network address from), and revokes every token issued
// to user so far (RevokeAll). The new password must pass CheckNewPassword.
func (s *Store) ChangePassword(from, user, old, password string) error {
	if err := CheckNewPassword(user, password); err != nil {
		return err
	}
	if err := s.Login(from, user, old); err != nil {
		return err
	}
	r, err := s.get(user)
	if err != nil {
		return fmt.Errorf("accounts: lookup %s: %w", user, err)
	}
	if r, err = s.newHash(r, password); err != nil {
		return err
	}
	val, _ := json.Marshal(r)
	if err := s.w.Commit(context.Background(), kvstore.Set(key(user), val)); err != nil {
		return fmt.Errorf("accounts: set password of %s: %w", user, err)
	}
	return s.RevokeAll(user)
}

// How a connection authenticated (Credential.Kind).
const (
	CredPassword = "password"
	CredToken    = "token"
	CredKey      = "key"
)

// Credential says how a connection authenticated: its kind and, for a token
// or an API key, that token's or key's id (to drop the connection when it is
// revoked).
type Credential struct {
	Kind string
	ID   string
}

// Authenticate accepts, for a connection from the network address from, an
// API key of user bound to clientID or unbound, a token issued to user, or
// user's password. A credential is taken for a key or a token only when it
// is one of ours (a key id that exists, a token whose signature verifies);
// anything else is tried as a password, so a password may look like either,
// and an attacker's garbage costs no more than one password check.
func (s *Store) Authenticate(from, user, clientID, cred string) (Credential, error) {
	if strings.HasPrefix(cred, keyPrefix) {
		if k, found := s.lookupKey(cred); found {
			if !k.valid(cred) || k.User != user || (k.ClientID != "" && k.ClientID != clientID) {
				return Credential{}, ErrBadCredentials
			}
			return Credential{Kind: CredKey, ID: k.ID}, nil
		}
	}
	if t, ours, err := s.parseToken(cred); ours {
		if err != nil || t.User != user {
			return Credential{}, ErrBadCredentials
		}
		return Credential{Kind: CredToken, ID: t.ID}, nil
	}
	if err := s.Login(from, user, cred); err != nil {
		return Credential{}, err
	}
	return Credential{Kind: CredPassword}, nil
}
