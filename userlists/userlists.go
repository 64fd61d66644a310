// Package userlists stores per-user lists of other users: who a user
// blocked (Badger keys bl/{owner}/{user}) and who its contacts are
// (ct/{owner}/{user}); each value is when the entry was added (unix ms,
// 8 bytes big-endian). The rules built on them live in acl.Policy (blocks,
// contacts, message requests). Lists are read on every DM publish and every
// presence delivery, so each is cached in memory, both ways (who is on
// owner's list, whose lists hold user), and written through kvstore.Writer
// (in a cluster, to every node: Changed takes in other nodes' changes).
package userlists

import (
	"context"
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
	// ErrSelf: a user cannot put itself on its own list.
	ErrSelf = errors.New("userlists: cannot list yourself")
	// ErrQuota: the owner's list is full.
	ErrQuota = errors.New("userlists: list full")
)

// Prefixes of the lists (see kvstore's package doc).
const (
	Blocks   = "bl/"
	Contacts = "ct/"
)

// Entry is one user on a list.
type Entry struct {
	User  string `json:"user"`
	Since int64  `json:"since"` // unix ms
}

// List is one kind of list, for every user.
type List struct {
	db     *badger.DB
	w      kvstore.Writer
	prefix string
	space  *kvstore.Space
	max    int // entries per owner; 0: unbounded

	// writeMu orders changes (a count check and its write must agree);
	// mu guards the maps, held only for a lookup or an update, so a
	// Badger write never stalls the readers on every publish.
	writeMu sync.Mutex
	mu      sync.RWMutex
	by      map[string]map[string]int64 // owner -> user -> since
	rev     map[string]map[string]bool  // user -> owners listing it
}

// Open loads the list stored under prefix (Blocks or Contacts). max bounds
// an owner's entries (0: no bound); space, if set, refuses additions while
// the disk is below its reserve (errors wrap kvstore.ErrFull). Removing is
// never refused. w commits every change (nil: db itself).
func Open(db *badger.DB, prefix string, max int, space *kvstore.Space, w kvstore.Writer) (*List, error) {
	if w == nil {
		w = kvstore.Local{DB: db}
	}
	l := &List{db: db, w: w, prefix: prefix, space: space, max: max, by: map[string]map[string]int64{}, rev: map[string]map[string]bool{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			owner, user, ok := strings.Cut(string(it.Item().Key()[len(prefix):]), "/")
			if !ok {
				continue
			}
			var since int64
			_ = it.Item().Value(func(v []byte) error {
				since = decodeSince(v)
				return nil
			})
			l.set(owner, user, since)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("userlists: load %s: %w", prefix, err)
	}
	return l, nil
}

func (l *List) key(owner, user string) []byte { return []byte(l.prefix + owner + "/" + user) }

func decodeSince(v []byte) int64 {
	if len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

// Changed takes in a change another node of the cluster made to key (any
// key: those outside this list are ignored), read back from the database.
func (l *List) Changed(key []byte) {
	rest, ok := strings.CutPrefix(string(key), l.prefix)
	if !ok {
		return
	}
	owner, user, ok := strings.Cut(rest, "/")
	if !ok {
		return
	}
	var since int64
	err := l.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { since = decodeSince(v); return nil })
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.set(owner, user, since)
	} else {
		l.unset(owner, user)
	}
}

func (l *List) unset(owner, user string) {
	delete(l.by[owner], user)
	if len(l.by[owner]) == 0 {
		delete(l.by, owner)
	}
	delete(l.rev[user], owner)
	if len(l.rev[user]) == 0 {
		delete(l.rev, user)
	}
}

func (l *List) set(owner, user string, since int64) {
	m := l.by[owner]
	if m == nil {
		m = map[string]int64{}
		l.by[owner] = m
	}
	m[user] = since
	r := l.rev[user]
	if r == nil {
		r = map[string]bool{}
		l.rev[user] = r
	}
	r[owner] = true
}

// Has reports whether user is on owner's list (for blocks: owner blocked
// user; it implements acl.Blocks).
func (l *List) Has(owner, user string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.by[owner][user]
	return ok
}

// Add puts user on owner's list at now (unix ms). Adding a user already
// there changes nothing and is not an error.
func (l *List) Add(owner, user string, now int64) error {
	if owner == user {
		return ErrSelf
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.RLock()
	_, had := l.by[owner][user]
	n := len(l.by[owner])
	l.mu.RUnlock()
	if had {
		return nil
	}
	if l.max > 0 && n >= l.max {
		return ErrQuota
	}
	if err := l.space.Check(); err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(now))
	if err := l.w.Commit(context.Background(), kvstore.Set(l.key(owner, user), v)); err != nil {
		return fmt.Errorf("userlists: %s adds %s to %s: %w", owner, user, l.prefix, err)
	}
	l.mu.Lock()
	l.set(owner, user, now)
	l.mu.Unlock()
	return nil
}

// Remove takes user off owner's list; it reports whether it was there.
func (l *List) Remove(owner, user string) (bool, error) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if !l.Has(owner, user) {
		return false, nil
	}
	if err := l.w.Commit(context.Background(), kvstore.Batch{Delete: [][]byte{l.key(owner, user)}}); err != nil {
		return false, fmt.Errorf("userlists: %s removes %s from %s: %w", owner, user, l.prefix, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unset(owner, user)
	return true, nil
}

// Entries returns owner's list, by user id.
func (l *List) Entries(owner string) []Entry {
	l.mu.RLock()
	out := make([]Entry, 0, len(l.by[owner]))
	for u, since := range l.by[owner] {
		out = append(out, Entry{User: u, Since: since})
	}
	l.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// Holders returns the owners whose lists hold user (unordered).
func (l *List) Holders(user string) []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]string, 0, len(l.rev[user]))
	for o := range l.rev[user] {
		out = append(out, o)
	}
	return out
}

// Max is the bound on an owner's entries (0: none).
func (l *List) Max() int { return l.max }
