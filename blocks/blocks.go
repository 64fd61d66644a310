// Package blocks stores who blocked whom. A block is one-way: the blocker
// stops receiving the blocked user's DMs, receipts, typing and signals,
// cannot be added to groups by them, and hides its presence from them (the
// rules live in acl.Policy, which asks Store.Blocked). Every DM publish and
// every presence delivery asks, so the whole list is cached in memory and
// written through to Badger (keys bl/{blocker}/{blocked}, value: when, unix
// ms).
package blocks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/kvstore"
)

// Sentinel errors.
var (
	// ErrSelf: a user cannot block itself.
	ErrSelf = errors.New("blocks: cannot block yourself")
	// ErrQuota: the blocker already blocks Store's limit of users.
	ErrQuota = errors.New("blocks: too many blocked users")
)

// Block is one entry of a user's block list.
type Block struct {
	User  string `json:"user"`
	Since int64  `json:"since"` // unix ms
}

// Store is the block list of every user.
type Store struct {
	db    *badger.DB
	space *kvstore.Space
	max   int // blocks per user; 0: unbounded

	// writeMu orders changes (a count check and its write must agree);
	// mu guards the map, held only for the lookup or the update, so a
	// Badger write never stalls the readers on every publish.
	writeMu sync.Mutex
	mu      sync.RWMutex
	by      map[string]map[string]int64 // blocker -> blocked -> since
}

func key(blocker, blocked string) []byte { return []byte("bl/" + blocker + "/" + blocked) }

// Open loads every block. max bounds the users one user may block (0: no
// bound); space, if set, refuses new blocks while the disk is below its
// reserve (errors wrap kvstore.ErrFull). Unblocking is never refused.
func Open(db *badger.DB, max int, space *kvstore.Space) (*Store, error) {
	s := &Store{db: db, space: space, max: max, by: map[string]map[string]int64{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("bl/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			blocker, blocked, ok := strings.Cut(string(it.Item().Key()[3:]), "/")
			if !ok {
				continue
			}
			var since int64
			_ = it.Item().Value(func(v []byte) error {
				if len(v) == 8 {
					since = int64(binary.BigEndian.Uint64(v))
				}
				return nil
			})
			s.set(blocker, blocked, since)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blocks: load: %w", err)
	}
	return s, nil
}

func (s *Store) set(blocker, blocked string, since int64) {
	m := s.by[blocker]
	if m == nil {
		m = map[string]int64{}
		s.by[blocker] = m
	}
	m[blocked] = since
}

// Blocked reports whether blocker has blocked user. It implements
// acl.Blocks.
func (s *Store) Blocked(blocker, user string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.by[blocker][user]
	return ok
}

// Block makes blocker block user at now (unix ms). Blocking a user already
// blocked changes nothing and is not an error.
func (s *Store) Block(blocker, user string, now int64) error {
	if blocker == user {
		return ErrSelf
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	_, had := s.by[blocker][user]
	n := len(s.by[blocker])
	s.mu.RUnlock()
	if had {
		return nil
	}
	if s.max > 0 && n >= s.max {
		return ErrQuota
	}
	if err := s.space.Check(); err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(now))
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key(blocker, user), v) }); err != nil {
		return fmt.Errorf("blocks: %s blocks %s: %w", blocker, user, err)
	}
	s.mu.Lock()
	s.set(blocker, user, now)
	s.mu.Unlock()
	return nil
}

// Unblock lifts blocker's block of user; it reports whether there was one.
func (s *Store) Unblock(blocker, user string) (bool, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if !s.Blocked(blocker, user) {
		return false, nil
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(key(blocker, user)) }); err != nil {
		return false, fmt.Errorf("blocks: %s unblocks %s: %w", blocker, user, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.by[blocker], user)
	if len(s.by[blocker]) == 0 {
		delete(s.by, blocker)
	}
	return true, nil
}

// List returns the users blocker blocks, by user id.
func (s *Store) List(blocker string) []Block {
	s.mu.RLock()
	out := make([]Block, 0, len(s.by[blocker]))
	for u, since := range s.by[blocker] {
		out = append(out, Block{User: u, Since: since})
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// Max is the bound on blocks per user (0: none).
func (s *Store) Max() int { return s.max }
