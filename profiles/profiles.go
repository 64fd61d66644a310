// Package profiles stores what a person shows of themselves besides the id:
// a display name and an avatar. The avatar is stored only as the server's
// own re-encoding of an uploaded image (see Thumbnail), never the uploaded
// bytes. Profiles are read on every user lookup and directory search, so
// they are cached in memory (without avatar bytes) and written through
// kvstore.Writer (in a cluster, to every node; Changed takes in other
// nodes' changes): pf/{user} the profile (JSON), av/{user} the avatar
// thumbnail.
package profiles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/kvstore"
)

// MaxDisplayName bounds a display name, in runes (after trimming).
const MaxDisplayName = 64

// ErrDisplayName: a display name is refused (see CleanDisplayName).
var ErrDisplayName = errors.New("profiles: display name refused")

// Profile is what a user shows besides its id.
type Profile struct {
	DisplayName string `json:"display_name,omitempty"`
	// DMPolicy is who may write to the user one to one: DMAnyone,
	// DMContacts, or "" for the server's default. Private: not shown.
	DMPolicy string `json:"dm_policy,omitempty"`
	// Avatar is the ETag of the avatar thumbnail ("" when none), AvatarType
	// its media type.
	Avatar     string `json:"avatar,omitempty"`
	AvatarType string `json:"avatar_type,omitempty"`
}

// Store holds every profile.
type Store struct {
	db    *badger.DB
	w     kvstore.Writer
	space *kvstore.Space
	mu    sync.RWMutex
	p     map[string]Profile
}

func key(user string) []byte       { return []byte("pf/" + user) }
func avatarKey(user string) []byte { return []byte("av/" + user) }

// Open loads every profile. space, if set, refuses changes while the disk
// is below its reserve (errors wrap kvstore.ErrFull); w commits every
// change (nil: db itself).
func Open(db *badger.DB, space *kvstore.Space, w kvstore.Writer) (*Store, error) {
	if w == nil {
		w = kvstore.Local{DB: db}
	}
	s := &Store{db: db, w: w, space: space, p: map[string]Profile{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("pf/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var p Profile
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &p) }); err != nil {
				return err
			}
			s.p[string(it.Item().Key()[3:])] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("profiles: load: %w", err)
	}
	return s, nil
}

// Get returns user's profile (zero when none was set).
func (s *Store) Get(user string) Profile {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.p[user]
}

// update applies f to user's profile and stores it, with avatar bytes to
// set (nil: unchanged; empty: deleted).
func (s *Store) update(user string, f func(*Profile), avatar []byte) (Profile, error) {
	if err := s.space.Check(); err != nil {
		return Profile{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.p[user]
	f(&p)
	val, _ := json.Marshal(p)
	b := kvstore.Set(key(user), val)
	switch {
	case avatar == nil:
	case len(avatar) == 0:
		b.Delete = [][]byte{avatarKey(user)}
	default:
		b.Set = append(b.Set, kvstore.Entry{Key: avatarKey(user), Value: avatar})
	}
	if err := s.w.Commit(context.Background(), b); err != nil {
		return Profile{}, fmt.Errorf("profiles: save %s: %w", user, err)
	}
	s.p[user] = p
	return p, nil
}

// Changed takes in a change another node of the cluster made to key (keys
// other than profiles are ignored; avatars are read from the database).
func (s *Store) Changed(k []byte) {
	user, ok := strings.CutPrefix(string(k), "pf/")
	if !ok {
		return
	}
	var p Profile
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &p) })
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.p[user] = p
	} else {
		delete(s.p, user)
	}
}

// DM policies (Profile.DMPolicy).
const (
	DMAnyone   = "anyone"
	DMContacts = "contacts"
)

// SetDMPolicy sets user's DM policy (DMAnyone, DMContacts, or "" for the
// server's default).
func (s *Store) SetDMPolicy(user, policy string) (Profile, error) {
	if policy != "" && policy != DMAnyone && policy != DMContacts {
		return Profile{}, fmt.Errorf("profiles: dm_policy must be anyone or contacts, got %q", policy)
	}
	return s.update(user, func(p *Profile) { p.DMPolicy = policy }, nil)
}

// SetDisplayName sets user's display name, cleaned by CleanDisplayName
// ("" clears it).
func (s *Store) SetDisplayName(user, name string) (Profile, error) {
	name, err := CleanDisplayName(name)
	if err != nil {
		return Profile{}, err
	}
	return s.update(user, func(p *Profile) { p.DisplayName = name }, nil)
}

// SetAvatar stores a thumbnail (from Thumbnail) as user's avatar.
func (s *Store) SetAvatar(user string, t Thumb) (Profile, error) {
	return s.update(user, func(p *Profile) { p.Avatar, p.AvatarType = t.ETag, t.Type }, t.Data)
}

// ClearAvatar removes user's avatar.
func (s *Store) ClearAvatar(user string) (Profile, error) {
	return s.update(user, func(p *Profile) { p.Avatar, p.AvatarType = "", "" }, []byte{})
}

// Avatar returns user's avatar thumbnail, or ok false when it has none.
func (s *Store) Avatar(user string) (t Thumb, ok bool, err error) {
	p := s.Get(user)
	if p.Avatar == "" {
		return Thumb{}, false, nil
	}
	err = s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(avatarKey(user))
		if err != nil {
			return err
		}
		t.Data, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Thumb{}, false, nil
	}
	if err != nil {
		return Thumb{}, false, fmt.Errorf("profiles: avatar of %s: %w", user, err)
	}
	t.ETag, t.Type = p.Avatar, p.AvatarType
	return t, true, nil
}

// Match is one directory hit.
type Match struct {
	User        string
	DisplayName string
}

// MatchNames returns up to limit users whose display name starts with
// prefix, case-folded, by user id. It scans the cached profiles: the
// directory is rate-limited and bounded (see the gateway).
func (s *Store) MatchNames(prefix string, limit int) []Match {
	prefix = strings.ToLower(prefix)
	var out []Match
	s.mu.RLock()
	for u, p := range s.p {
		if p.DisplayName != "" && strings.HasPrefix(strings.ToLower(p.DisplayName), prefix) {
			out = append(out, Match{u, p.DisplayName})
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// CleanDisplayName trims name (Unicode white space) and checks it: at most
// MaxDisplayName runes of valid UTF-8, without control characters (C0, C1,
// line and paragraph separators), bidirectional controls (which can make a
// name read as another, or reorder the text around it: U+061C, U+200E,
// U+200F, U+202A-U+202E, U+2066-U+2069), U+FEFF or U+FFFD. Other format
// characters stay allowed: the zero-width joiner builds emoji and some
// scripts' letters.
func CleanDisplayName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrDisplayName)
	}
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n > MaxDisplayName {
		return "", fmt.Errorf("%w: %d characters, at most %d", ErrDisplayName, n, MaxDisplayName)
	}
	for _, r := range name {
		switch {
		case unicode.IsControl(r), r == '\u2028', r == '\u2029':
			return "", fmt.Errorf("%w: control character U+%04X", ErrDisplayName, r)
		case isBidiControl(r):
			return "", fmt.Errorf("%w: bidirectional control character U+%04X", ErrDisplayName, r)
		case r == '\uFEFF', r == utf8.RuneError:
			return "", fmt.Errorf("%w: character U+%04X", ErrDisplayName, r)
		}
	}
	return name, nil
}

func isBidiControl(r rune) bool {
	return r == '\u061C' || r == '\u200E' || r == '\u200F' ||
		(r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069')
}
