// Package accounts stores users with argon2id-hashed passwords and issues
// signed, expiring access tokens (JWT, HS256). Verifying a token never runs the
// KDF, so a reconnect storm with tokens stays cheap; a password login costs one
// argon2id evaluation by design.
package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/argon2"

	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/topic"
)

// Sentinel errors.
var (
	ErrExists          = errors.New("accounts: user exists")
	ErrInvalidUser     = errors.New("accounts: invalid user id")
	ErrInvalidPassword = errors.New("accounts: password must be 8-256 bytes")
	ErrBadCredentials  = errors.New("accounts: bad user or password")
)

// KDF parameters (argon2id, RFC 9106 second recommended option, lighter memory).
type KDF struct {
	Time    uint32
	MemKiB  uint32
	Threads uint8
}

// DefaultKDF is used for new passwords: ~50 ms on the reference machine.
var DefaultKDF = KDF{Time: 2, MemKiB: 32 * 1024, Threads: 1}

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
	kdf      KDF
	secret   []byte
	tokenTTL time.Duration
	now      func() time.Time
	space    *kvstore.Space

	mu     sync.RWMutex
	exists map[string]bool   // cache of positive lookups; users are never deleted
	kinds  map[string]string // cache of kinds, same lifetime
}

// Options configure a Store.
type Options struct {
	KDF      KDF
	TokenTTL time.Duration
	Now      func() time.Time
	// Space, if set, refuses new accounts and keys while the disk is below
	// its reserve (errors wrap kvstore.ErrFull).
	Space *kvstore.Space
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
	s := &Store{db: db, kdf: o.KDF, tokenTTL: o.TokenTTL, now: o.Now, space: o.Space, exists: map[string]bool{}, kinds: map[string]string{}}
	err := db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("k/token"))
		if err == nil {
			s.secret, err = it.ValueCopy(nil)
			return err
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		s.secret = make([]byte, 32)
		if _, err := rand.Read(s.secret); err != nil {
			return err
		}
		return txn.Set([]byte("k/token"), s.secret)
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: token secret: %w", err)
	}
	return s, nil
}

func key(user string) []byte { return []byte("a/" + user) }

// Create adds a person. It fails with ErrExists if the id is taken.
func (s *Store) Create(user, password string) error {
	if !topic.ValidUser(user) {
		return ErrInvalidUser
	}
	if len(password) < 8 || len(password) > 256 {
		return ErrInvalidPassword
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return fmt.Errorf("accounts: salt: %w", err)
	}
	r := record{User: user, Kind: KindPerson, Salt: salt, Time: s.kdf.Time, MemKiB: s.kdf.MemKiB, Threads: s.kdf.Threads, Created: s.now().UnixMilli()}
	r.Hash = argon2.IDKey([]byte(password), salt, r.Time, r.MemKiB, r.Threads, 32)
	return s.insert(r)
}

// CreateDevice adds a device account managed by owner. Devices have no
// password; they authenticate with API keys (CreateKey).
func (s *Store) CreateDevice(device, owner string) error {
	if !topic.ValidUser(device) {
		return ErrInvalidUser
	}
	if err := s.insert(record{User: device, Kind: KindDevice, Owner: owner, Created: s.now().UnixMilli()}); err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("dv/"+owner+"/"+device), nil) })
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

func (s *Store) insert(r record) error {
	if err := s.space.Check(); err != nil {
		return err
	}
	user := r.User
	val, _ := json.Marshal(r)
	err := s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key(user)); err == nil {
			return ErrExists
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return txn.Set(key(user), val)
	})
	if err != nil {
		if errors.Is(err, ErrExists) {
			return err
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

// CheckPassword verifies user's password (runs the KDF).
func (s *Store) CheckPassword(user, password string) error {
	if !topic.ValidUser(user) || len(password) > 256 {
		return ErrBadCredentials
	}
	r, err := s.get(user)
	if errors.Is(err, badger.ErrKeyNotFound) {
		// Spend the same time as a real check so response timing does not
		// reveal which user ids exist.
		argon2.IDKey([]byte(password), make([]byte, 16), s.kdf.Time, s.kdf.MemKiB, s.kdf.Threads, 32)
		return ErrBadCredentials
	}
	if err != nil {
		return fmt.Errorf("accounts: lookup %s: %w", user, err)
	}
	if r.Hash == nil { // device accounts have no password
		return ErrBadCredentials
	}
	h := argon2.IDKey([]byte(password), r.Salt, r.Time, r.MemKiB, r.Threads, 32)
	if subtle.ConstantTimeCompare(h, r.Hash) != 1 {
		return ErrBadCredentials
	}
	return nil
}

// Token is a signed access token and its expiry.
type Token struct {
	Token   string
	Expires time.Time
}

// IssueToken returns a signed token for user, valid for the configured TTL.
func (s *Store) IssueToken(user string) (Token, error) {
	now := s.now()
	exp := now.Add(s.tokenTTL)
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		Issuer:    "mqim",
	})
	signed, err := t.SignedString(s.secret)
	if err != nil {
		return Token{}, fmt.Errorf("accounts: sign token: %w", err)
	}
	return Token{Token: signed, Expires: exp}, nil
}

// LooksLikeToken reports whether a credential is shaped like a JWT, so a
// caller can skip the KDF for it.
func LooksLikeToken(cred string) bool {
	dots := 0
	for i := 0; i < len(cred); i++ {
		if cred[i] == '.' {
			dots++
		}
	}
	return dots == 2 && len(cred) > 40
}

// VerifyToken returns the user a valid, unexpired token was issued to.
func (s *Store) VerifyToken(tok string) (string, error) {
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("mqim"), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now))
	if err != nil {
		return "", ErrBadCredentials
	}
	return claims.Subject, nil
}

// Authenticate accepts a token issued to user, user's password, or (for
// devices) one of user's API keys bound to clientID or unbound. It returns the
// id of the API key used, if any.
func (s *Store) Authenticate(user, clientID, cred string) (keyID string, err error) {
	if strings.HasPrefix(cred, keyPrefix) {
		k, err := s.CheckKey(cred)
		if err != nil || k.User != user || (k.ClientID != "" && k.ClientID != clientID) {
			return "", ErrBadCredentials
		}
		return k.ID, nil
	}
	return "", s.authenticate(user, cred)
}

func (s *Store) authenticate(user, cred string) error {
	if LooksLikeToken(cred) {
		sub, err := s.VerifyToken(cred)
		if err != nil || sub != user {
			return ErrBadCredentials
		}
		return nil
	}
	return s.CheckPassword(user, cred)
}
