package accounts

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mqim/mqim/kvstore"
)

// Tokens are HS256 JWTs with a random id (jti) and the user's token
// generation (gen). Revocation is stored in the database and so survives a
// restart, and checking it is O(1) per verification:
//   - one token (logout): its id is put on a deny list ("tr/{jti}") with a
//     Badger TTL of the token's remaining life, so the list holds only
//     tokens that would otherwise still be valid;
//   - all of a user's tokens (password change, "sign out everywhere"): the
//     user's generation ("tg/{user}") is incremented; a token carrying an
//     older generation is refused. Tokens issued before generations existed
//     carry none, which reads as generation 0.

// Token is a signed access token and its expiry.
type Token struct {
	Token   string
	Expires time.Time
}

// TokenInfo is what a valid token says.
type TokenInfo struct {
	User    string
	ID      string // jti
	Expires time.Time
}

type tokenClaims struct {
	jwt.RegisteredClaims
	Gen uint64 `json:"gen,omitempty"`
}

func genKey(user string) []byte    { return []byte("tg/" + user) }
func revokedKey(jti string) []byte { return []byte("tr/" + jti) }

// IssueToken returns a signed token for user, valid for the configured TTL.
func (s *Store) IssueToken(user string) (Token, error) {
	gen, err := s.generation(user)
	if err != nil {
		return Token{}, err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return Token{}, fmt.Errorf("accounts: token id: %w", err)
	}
	now := s.now()
	exp := now.Add(s.tokenTTL)
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, tokenClaims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   user,
		ID:        hex.EncodeToString(id),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		Issuer:    "mqim",
	}, Gen: gen})
	signed, err := t.SignedString(s.secret)
	if err != nil {
		return Token{}, fmt.Errorf("accounts: sign token: %w", err)
	}
	return Token{Token: signed, Expires: exp}, nil
}

// VerifyToken returns the user a valid, unexpired, unrevoked token was
// issued to.
func (s *Store) VerifyToken(tok string) (string, error) {
	t, err := s.ParseToken(tok)
	return t.User, err
}

// ParseToken is VerifyToken returning the token's id and expiry as well.
func (s *Store) ParseToken(tok string) (TokenInfo, error) {
	t, _, err := s.parseToken(tok)
	return t, err
}

// parseToken verifies tok. ours reports whether its signature verified with
// our secret (so it is certainly a token, valid or not); err is
// ErrBadCredentials for any token that is not valid now, or a storage error.
func (s *Store) parseToken(tok string) (t TokenInfo, ours bool, err error) {
	c := &tokenClaims{}
	_, err = jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("mqim"), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now))
	// jwt checks the signature before the claims: a claims error means the
	// token is ours but expired or malformed inside.
	if errors.Is(err, jwt.ErrTokenInvalidClaims) {
		return TokenInfo{}, true, ErrBadCredentials
	}
	if err != nil {
		return TokenInfo{}, false, ErrBadCredentials
	}
	t = TokenInfo{User: c.Subject, ID: c.ID, Expires: c.ExpiresAt.Time}
	gen, err := s.generation(t.User)
	if err != nil {
		return TokenInfo{}, true, err
	}
	if c.Gen != gen {
		return TokenInfo{}, true, ErrBadCredentials
	}
	if t.ID != "" {
		revoked := false
		err := s.db.View(func(txn *badger.Txn) error {
			_, err := txn.Get(revokedKey(t.ID))
			if err == nil {
				revoked = true
				return nil
			}
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			return TokenInfo{}, true, fmt.Errorf("accounts: revocation of %s: %w", t.ID, err)
		}
		if revoked {
			return TokenInfo{}, true, ErrBadCredentials
		}
	}
	return t, true, nil
}

// RevokeToken revokes one token (logout). The caller drops the connections
// that authenticated with it.
func (s *Store) RevokeToken(t TokenInfo) error {
	ttl := t.Expires.Sub(s.now()) + time.Minute // slack for clock steps
	if t.ID == "" || ttl <= time.Minute {
		return nil // expired already, or from before token ids (RevokeAll covers those)
	}
	err := s.w.Commit(context.Background(), kvstore.Batch{Set: []kvstore.Entry{{Key: revokedKey(t.ID), TTL: ttl}}})
	if err != nil {
		return fmt.Errorf("accounts: revoke token of %s: %w", t.User, err)
	}
	return nil
}

// RevokeAll revokes every token issued to user so far, and forgets its
// verified password (PasswordCache). The caller drops the user's
// connections that authenticated with a token or a password.
func (s *Store) RevokeAll(user string) error {
	s.pw.forget(user)
	s.genMu.Lock()
	defer s.genMu.Unlock()
	gen, err := s.loadGeneration(user)
	if err != nil {
		return err
	}
	gen++
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], gen)
	if err := s.w.Commit(context.Background(), kvstore.Set(genKey(user), b[:])); err != nil {
		return fmt.Errorf("accounts: revoke tokens of %s: %w", user, err)
	}
	s.gens[user] = gen
	return nil
}

// generation is user's current token generation (cached; only verified
// tokens' subjects and real users reach it, so the cache is bounded by the
// number of users).
func (s *Store) generation(user string) (uint64, error) {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	return s.loadGeneration(user)
}

func (s *Store) loadGeneration(user string) (uint64, error) {
	if g, ok := s.gens[user]; ok {
		return g, nil
	}
	var gen uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(genKey(user))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("token generation is %d bytes", len(v))
			}
			gen = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("accounts: token generation of %s: %w", user, err)
	}
	s.gens[user] = gen
	return gen, nil
}

// Changed tells the store that key was written by another node of its
// cluster (see kvstore.Writer), so caches drop what it replaced.
func (s *Store) Changed(key []byte) {
	if user, ok := strings.CutPrefix(string(key), "tg/"); ok {
		s.genMu.Lock()
		delete(s.gens, user)
		s.genMu.Unlock()
	}
}
