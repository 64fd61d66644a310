// Package groups stores chat groups and their members. Membership is read on
// every group publish, so it is cached in memory and written through to Badger.
package groups

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
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
	// ErrQuota: a user would own, or be a member of, more groups than
	// Limits allow.
	ErrQuota = errors.New("groups: quota exceeded")
	// ErrDeclined: the user left the group; only they can bring themselves back.
	ErrDeclined = errors.New("groups: user left this group")
	// ErrBusy: the group kept changing on other nodes of the cluster
	// while this change was tried (see kvstore.Writer).
	ErrBusy = errors.New("groups: the group is changing; try again")
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
	// Declined are the users who left: leaving is refusing, so no member
	// can add them back (they may rejoin by adding themselves). In the
	// order they left; at most MaxMembers, the longest-gone forgotten first.
	Declined []string `json:"declined,omitempty"`
	// Deleted marks a deleted group's tombstone: its id is never reused,
	// so a new group under it can never read the old one's history.
	Deleted bool `json:"deleted,omitempty"`
}

// Limits bound what one user's groups cost; zero disables a bound.
type Limits struct {
	// Owned: groups a user may create (own).
	Owned int
	// Memberships: groups a user may be a member of, however it got
	// there. Every group a user adds others to is one it is a member of,
	// so this also bounds how many groups one user can pull a victim into.
	Memberships int
}

// Store holds all groups in memory, backed by Badger.
type Store struct {
	db     *badger.DB
	w      kvstore.Writer
	limits Limits
	space  *kvstore.Space
	mu     sync.RWMutex
	g      map[string]*Group
	raw    map[string][]byte // each group's record as stored: what a change expects to replace
	owned  map[string]int    // user -> groups owned
	member map[string]int    // user -> groups it is a member of
}

func key(gid string) []byte { return []byte("g/" + gid) }

// Open loads every group; limits apply to what changes from now on. space,
// if not nil, refuses changes while the disk is below its reserve (errors
// wrap kvstore.ErrFull).
//
// w commits every change (nil: db itself); a cluster's writer replicates
// them, and Changed takes in the changes other nodes made.
func Open(db *badger.DB, limits Limits, space *kvstore.Space, w kvstore.Writer) (*Store, error) {
	if w == nil {
		w = kvstore.Local{DB: db}
	}
	s := &Store{db: db, w: w, limits: limits, space: space, g: map[string]*Group{}, raw: map[string][]byte{}, owned: map[string]int{}, member: map[string]int{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("g/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			s.take(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("groups: load: %w", err)
	}
	return s, nil
}

// take puts a stored record in the cache, replacing what it held for
// that group (s.mu held, or at Open). A record that does not decode is
// skipped: it cannot be a group.
func (s *Store) take(v []byte) {
	var g Group
	if json.Unmarshal(v, &g) != nil || g.ID == "" {
		return
	}
	if old, ok := s.g[g.ID]; ok && !old.Deleted {
		s.count(old, -1)
	}
	s.g[g.ID], s.raw[g.ID] = &g, v
	if !g.Deleted {
		s.count(&g, 1)
	}
}

// save stores g if its record is still what this node last saw; if another
// node changed it first, the cache takes that version and save returns
// kvstore.ErrConflict (s.mu held).
func (s *Store) save(g *Group) error {
	if err := s.space.Check(); err != nil {
		return err
	}
	val, _ := json.Marshal(g)
	b := kvstore.Set(key(g.ID), val)
	if old, ok := s.raw[g.ID]; ok {
		b.Match = []kvstore.Entry{{Key: key(g.ID), Value: old}}
	} else {
		b.Absent = [][]byte{key(g.ID)}
	}
	if err := s.w.Commit(context.Background(), b); err != nil {
		if errors.Is(err, kvstore.ErrConflict) {
			s.reload(g.ID)
			return err
		}
		return fmt.Errorf("groups: save %s: %w", g.ID, err)
	}
	s.raw[g.ID] = val
	return nil
}

// reload reads gid's record into the cache (s.mu held).
func (s *Store) reload(gid string) {
	_ = s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key(gid))
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err == nil {
			s.take(v)
		}
		return err
	})
}

// Changed takes in a group record another node of the cluster wrote.
func (s *Store) Changed(k []byte) {
	gid, ok := strings.CutPrefix(string(k), "g/")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reload(gid)
}

// again runs a change, trying again while it loses to changes other nodes
// make to the same group at the same time.
func again(op func() (Group, error)) (Group, error) {
	for range 5 {
		g, err := op()
		if !errors.Is(err, kvstore.ErrConflict) {
			return g, err
		}
	}
	return Group{}, ErrBusy
}

func clone(g *Group) Group {
	c := *g
	c.Members = append([]string(nil), g.Members...)
	c.Declined = append([]string(nil), g.Declined...)
	return c
}

// count adds d to the counts of g's owner and members (s.mu held).
func (s *Store) count(g *Group, d int) {
	s.owned[g.Owner] += d
	for _, m := range g.Members {
		s.member[m] += d
	}
}

// roomFor returns ErrQuota if user cannot join one more group (s.mu held).
func (s *Store) roomFor(user string) error {
	if n := s.member[user]; s.limits.Memberships > 0 && n >= s.limits.Memberships {
		return fmt.Errorf("%w: %s is already a member of %d groups", ErrQuota, user, n)
	}
	return nil
}

// Create makes a group owned by owner, who is always a member.
func (s *Store) Create(gid, name, owner string, members []string, now int64) (Group, error) {
	return again(func() (Group, error) { return s.create(gid, name, owner, members, now) })
}

func (s *Store) create(gid, name, owner string, members []string, now int64) (Group, error) {
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
	if n := s.owned[owner]; s.limits.Owned > 0 && n >= s.limits.Owned {
		return Group{}, fmt.Errorf("%w: %s already owns %d groups", ErrQuota, owner, n)
	}
	for _, m := range g.Members {
		if err := s.roomFor(m); err != nil {
			return Group{}, err
		}
	}
	if err := s.save(g); err != nil {
		return Group{}, err
	}
	s.g[gid] = g
	s.count(g, 1)
	return clone(g), nil
}

// Get returns a copy of a group.
func (s *Store) Get(gid string) (Group, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.g[gid]
	if !ok || g.Deleted {
		return Group{}, ErrNotFound
	}
	return clone(g), nil
}

// Exists reports whether gid is a group (not deleted).
func (s *Store) Exists(gid string) bool {
	_, err := s.Get(gid)
	return err == nil
}

// IsMember reports whether user is in gid (false for unknown groups).
func (s *Store) IsMember(gid, user string) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.g[gid]
	if !ok || g.Deleted {
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

// AddMember adds user to gid; actor must be a member, or be user coming
// back to a group it left. A user who left cannot be added by others.
func (s *Store) AddMember(gid, actor, user string) (Group, error) {
	return again(func() (Group, error) { return s.addMember(gid, actor, user) })
}

func (s *Store) addMember(gid, actor, user string) (Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.g[gid]
	if !ok || g.Deleted {
		return Group{}, ErrNotFound
	}
	declined := slices.Contains(g.Declined, user)
	rejoin := actor == user && declined
	if !has(g.Members, actor) && !rejoin {
		return Group{}, ErrNotMember
	}
	if has(g.Members, user) {
		return clone(g), nil
	}
	if declined && !rejoin {
		return Group{}, ErrDeclined
	}
	if len(g.Members) >= MaxMembers {
		return Group{}, ErrTooMany
	}
	if err := s.roomFor(user); err != nil {
		return Group{}, err
	}
	n := clone(g)
	n.Members = insert(n.Members, user)
	n.Declined = slices.DeleteFunc(n.Declined, func(d string) bool { return d == user })
	if err := s.save(&n); err != nil {
		return Group{}, err
	}
	s.g[gid] = &n
	s.member[user]++
	return clone(&n), nil
}

// RemoveMember removes user from gid. The owner may remove anyone; anyone may
// remove themselves (leave), which also declines the group: no member can
// add them back. The owner cannot leave (a group always has an owner).
func (s *Store) RemoveMember(gid, actor, user string) (Group, error) {
	return again(func() (Group, error) { return s.removeMember(gid, actor, user) })
}

func (s *Store) removeMember(gid, actor, user string) (Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.g[gid]
	if !ok || g.Deleted {
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
	n.Members = without(n.Members, user)
	if actor == user {
		if len(n.Declined) >= MaxMembers {
			n.Declined = n.Declined[1:]
		}
		n.Declined = append(n.Declined, user)
	}
	if err := s.save(&n); err != nil {
		return Group{}, err
	}
	s.g[gid] = &n
	s.member[user]--
	return clone(&n), nil
}

// Transfer makes member `to` the owner of gid; only the owner may. The old
// owner stays a member (and may then leave). The new owner's Owned limit
// applies.
func (s *Store) Transfer(gid, actor, to string) (Group, error) {
	return again(func() (Group, error) { return s.transfer(gid, actor, to) })
}

func (s *Store) transfer(gid, actor, to string) (Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.ownedBy(gid, actor)
	if err != nil {
		return Group{}, err
	}
	if !has(g.Members, to) {
		return Group{}, ErrNotMember
	}
	if to == g.Owner {
		return clone(g), nil
	}
	if n := s.owned[to]; s.limits.Owned > 0 && n >= s.limits.Owned {
		return Group{}, fmt.Errorf("%w: %s already owns %d groups", ErrQuota, to, n)
	}
	n := clone(g)
	n.Owner = to
	if err := s.save(&n); err != nil {
		return Group{}, err
	}
	s.g[gid] = &n
	s.owned[actor]--
	s.owned[to]++
	return clone(&n), nil
}

func has(sorted []string, x string) bool {
	i := sort.SearchStrings(sorted, x)
	return i < len(sorted) && sorted[i] == x
}

// insert adds x to a sorted list that lacks it.
func insert(sorted []string, x string) []string {
	i := sort.SearchStrings(sorted, x)
	return slices.Insert(sorted, i, x)
}

// without removes x from a sorted list.
func without(sorted []string, x string) []string {
	i := sort.SearchStrings(sorted, x)
	if i < len(sorted) && sorted[i] == x {
		return slices.Delete(sorted, i, i+1)
	}
	return sorted
}

// ownedBy returns live group gid if actor owns it (s.mu held).
func (s *Store) ownedBy(gid, actor string) (*Group, error) {
	g, ok := s.g[gid]
	if !ok || g.Deleted {
		return nil, ErrNotFound
	}
	if actor != g.Owner {
		return nil, ErrNotPermitted
	}
	return g, nil
}

// Rename sets gid's name; only the owner may.
func (s *Store) Rename(gid, actor, name string) (Group, error) {
	return again(func() (Group, error) { return s.rename(gid, actor, name) })
}

func (s *Store) rename(gid, actor, name string) (Group, error) {
	if name == "" || len(name) > 100 {
		return Group{}, ErrInvalid
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.ownedBy(gid, actor)
	if err != nil {
		return Group{}, err
	}
	n := clone(g)
	n.Name = name
	if err := s.save(&n); err != nil {
		return Group{}, err
	}
	s.g[gid] = &n
	return clone(&n), nil
}

// Delete ends gid; only the owner may. It returns the group as it was (its
// members are to be told). What remains is a tombstone: the id stays taken.
func (s *Store) Delete(gid, actor string) (Group, error) {
	return again(func() (Group, error) { return s.del(gid, actor) })
}

func (s *Store) del(gid, actor string) (Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.ownedBy(gid, actor)
	if err != nil {
		return Group{}, err
	}
	t := Group{ID: gid, Name: g.Name, Owner: g.Owner, Created: g.Created, Deleted: true}
	if err := s.save(&t); err != nil {
		return Group{}, err
	}
	before := clone(g)
	s.count(g, -1)
	s.g[gid] = &t
	return before, nil
}
