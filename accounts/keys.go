package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/kvstore"
)

// API keys are long-lived, revocable credentials for device accounts:
// "mqk_{id}_{secret}", 256 random bits of secret. Only a SHA-256 of the
// secret is stored: with that much entropy a slow KDF adds nothing, and a
// device reconnecting often must stay cheap to verify.
const keyPrefix = "mqk_"

// Sentinel errors.
var (
	ErrNoKey     = errors.New("accounts: no such API key")
	ErrNotDevice = errors.New("accounts: API keys are for device accounts")
)

// Key describes an API key (never its secret).
type Key struct {
	ID       string `json:"id"`
	User     string `json:"user"`
	ClientID string `json:"client_id,omitempty"` // if set, the only client id it may connect as
	Created  int64  `json:"created"`
	Revoked  int64  `json:"revoked,omitempty"`
	Hash     []byte `json:"hash,omitempty"`
}

func keyKey(id string) []byte           { return []byte("ak/" + id) }
func userKeyKey(user, id string) []byte { return []byte("akd/" + user + "/" + id) }

// CreateKey issues a new API key for a device account and returns the key
// (shown once) and its description.
func (s *Store) CreateKey(device, clientID string) (string, Key, error) {
	kind, err := s.Kind(device)
	if err != nil {
		return "", Key{}, err
	}
	if kind != KindDevice {
		return "", Key{}, ErrNotDevice
	}
	idb, secret := make([]byte, 6), make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return "", Key{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return "", Key{}, err
	}
	k := Key{ID: hex.EncodeToString(idb), User: device, ClientID: clientID, Created: s.now().UnixMilli()}
	sum := sha256.Sum256(secret)
	k.Hash = sum[:]
	val, _ := json.Marshal(k)
	if err := s.space.Check(); err != nil {
		return "", Key{}, err
	}
	err = s.w.Commit(context.Background(), kvstore.Batch{Set: []kvstore.Entry{{Key: keyKey(k.ID), Value: val}, {Key: userKeyKey(device, k.ID)}}})
	if err != nil {
		return "", Key{}, fmt.Errorf("accounts: create key for %s: %w", device, err)
	}
	k.Hash = nil
	return keyPrefix + k.ID + "_" + hex.EncodeToString(secret), k, nil
}

func (s *Store) getKey(id string) (Key, error) {
	var k Key
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keyKey(id))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &k) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return k, ErrNoKey
	}
	return k, err
}

// CheckKey verifies an API key and returns its description.
func (s *Store) CheckKey(cred string) (Key, error) {
	k, found := s.lookupKey(cred)
	if !found || !k.valid(cred) {
		return Key{}, ErrBadCredentials
	}
	k.Hash = nil
	return k, nil
}

// lookupKey finds the stored key (with its hash) that cred names, if cred
// has the shape of an API key and its id exists.
func (s *Store) lookupKey(cred string) (Key, bool) {
	rest, ok := strings.CutPrefix(cred, keyPrefix)
	id, _, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 {
		return Key{}, false
	}
	k, err := s.getKey(id)
	return k, err == nil
}

// valid reports whether cred carries k's secret and k is not revoked.
func (k Key) valid(cred string) bool {
	_, secretHex, _ := strings.Cut(strings.TrimPrefix(cred, keyPrefix), "_")
	secret, err := hex.DecodeString(secretHex)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(secret)
	return subtle.ConstantTimeCompare(sum[:], k.Hash) == 1 && k.Revoked == 0
}

// Keys lists a device's API keys, revoked ones included.
func (s *Store) Keys(device string) ([]Key, error) {
	var ids []string
	prefix := []byte("akd/" + device + "/")
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			ids = append(ids, string(it.Item().Key()[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: keys of %s: %w", device, err)
	}
	out := []Key{}
	for _, id := range ids {
		k, err := s.getKey(id)
		if err != nil {
			return nil, err
		}
		k.Hash = nil
		out = append(out, k)
	}
	return out, nil
}

// RevokeKey revokes a device's key; the caller disconnects sessions using it.
func (s *Store) RevokeKey(device, id string) (Key, error) {
	k, err := s.getKey(id)
	if err != nil || k.User != device {
		return Key{}, ErrNoKey
	}
	if k.Revoked == 0 {
		k.Revoked = s.now().UnixMilli()
		val, _ := json.Marshal(k)
		if err := s.w.Commit(context.Background(), kvstore.Set(keyKey(id), val)); err != nil {
			return Key{}, fmt.Errorf("accounts: revoke %s: %w", id, err)
		}
	}
	k.Hash = nil
	return k, nil
}

// RevokeKeys revokes every key of a device ("sign the device out
// everywhere") and returns them; the caller disconnects their sessions.
func (s *Store) RevokeKeys(device string) ([]Key, error) {
	keys, err := s.Keys(device)
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		if keys[i], err = s.RevokeKey(device, k.ID); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
