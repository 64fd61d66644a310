// Package groups stores chat groups and their members. Membership is read on
// every group publish, so it is cached in memory and written through to Badger.
package groups

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/topic"
)

// Sentinel errors.
var (
	ErrNotFound     = errors.New("groups: no such group")
	ErrExists       = errors.New("groups: group id taken")
	ErrInvalid      = errors.New("groups: invalid group id or name")
	ErrNotMember    = errors.New("groups: not a member")
	ErrNotPermitted = errors.New("groups: not permitted")
	ErrTooMany      = errors.New("groups: too many members")
)

// MaxMembers bounds a group's size.
const MaxMembers = 5000

// Group is a chat group.
type Group struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Owner   string   `json:"owner"`
	Members []string `json:"members"`
	Created int64    `json:"created"`
}

// Store holds all groups in memory, backed by Badger.
type Store struct {
	db    *badger.DB
	space *kvstore.Space
	mu    sync.RWMutex
	g     map[string]*Group
}

func key(gid string) []byte { return []byte("g/" + gid) }

// Open loads every group. space, if not nil, refuses changes while the disk
// is below its reserve (errors wrap kvstore.ErrFull).
func Open(db *badger.DB, space *kvstore.Space) (*Store, error) {
	s := &Store{db: db, space: space, g: map[string]*Group{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("g/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var g Group
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &g) }); err != nil {
				return err
			}
			s.g[g.ID] = &g
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("groups: load: %w", err)
	}
	return s, nil
}

func (s *Store) save(g *Group) error {
	if err := s.space.Check(); err != nil {
		return err
	}
	val, _ := json.Marshal(g)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key(g.ID), val) }); err != nil {
		return fmt.Errorf("groups: save %s: %w", g.ID, err)
	}
	return nil
}

func clone(g *Group) Group {
	c := *g
	c.Members = append([]string(nil), g.Members...)
	return c
}

// Create makes a group owned by owner, who is always a member.
func (s *Store) Create(gid, name, owner string, members []string, now int64) (Group, error) {
	if !topic.ValidGroup(gid) || len(name) > 100 {
		return Group{}, ErrInvalid
	}
	set := map[string]bool{owner: true}
	for _, m := range members {
		set[m] = true
	}
	if len(set) > MaxMembers {
		return Group{}, ErrTooMany
	}
	g := &Group{ID: gid, Name: name, Owner: owner, Created: now}
	for m := range set {
		g.Members = append(g.Members, m)
	}
	sort.Strings(g.Members)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.g[gid]; ok {
		return Group{}, ErrExists
	}
	if err := s.save(g); err != nil {
		return Group{}, err
	}
	s.g[gid] = g
	return clone(g), nil
}

// Get returns a copy of a group.
func (s *Store) Get(gid string) (Group, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.g[gid]
	if !ok {
		return Group{}, ErrNotFound
	}
	return clone(g), nil
}

// IsMember reports whether user is in gid (false for unknown groups).
func (s *Store) IsMember(gid, user string) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.g[gid]
	if !ok {
		return false, nil
	}
	i := sort.SearchStrings(g.Members, user)
	return i < len(g.Members) && g.Members[i] == user, nil
}

// Members returns the members of gid.
func (s *Store) Members(gid string) ([]string, error) {
	g, err := s.Get(gid)
	return g.Members, err
}

// Of returns the groups user belongs to, sorted by id.
func (s *Store) Of(user string) []Group {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Group
	for _, g := range s.g {
		i := sort.SearchStrings(g.Members, user)
		if i < len(g.Members) && g.Members[i] == user {
			out = append(out, clone(g))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// AddMember adds user to gid; actor must be a member.
func (s *Store) AddMember(gid, actor, user string) (Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.g[gid]
	if !ok {
		return Group{}, ErrNotFound
	}
	if !has(g.Members, actor) {
		return Group{}, ErrNotMember
	}
	if has(g.Members, user) {
		return clone(g), nil
	}
	if len(g.Members) >= MaxMembers {
		return Group{}, ErrTooMany
	}
	n := clone(g)
	n.Members = append(n.Members, user)
	sort.Strings(n.Members)
	if err := s.save(&n); err != nil {
		return Group{}, err
	}
	s.g[gid] = &n
	return clone(&n), nil
}

// RemoveMember removes user from gid. The owner may remove anyone; anyone may
// remove themselves. The owner cannot leave (a group always has an owner).
func (s *Store) RemoveMember(gid, actor, user string) (Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.g[gid]
	if !ok {
		return Group{}, ErrNotFound
	}
	if actor != g.Owner && actor != user {
		return Group{}, ErrNotPermitted
	}
	if user == g.Owner {
		return Group{}, ErrNotPermitted
	}
	if !has(g.Members, user) {
		return Group{}, ErrNotMember
	}
	n := clone(g)
	n.Members = n.Members[:0]
	for _, m := range g.Members {
		if m != user {
			n.Members = append(n.Members, m)
		}
	}
	if err := s.save(&n); err != nil {
		return Group{}, err
	}
	s.g[gid] = &n
	return clone(&n), nil
}

func has(sorted []string, x string) bool {
	i := sort.SearchStrings(sorted, x)
	return i < len(sorted) && sorted[i] == x
}
