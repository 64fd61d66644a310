// Package requests stores message requests (docs/protocol.md, "Message
// requests"): a DM or a group invitation from someone who is not the
// recipient's contact, kept until the recipient accepts or refuses it.
// One record per recipient and request id, rq/{recipient}/{id}, where the
// id is "dm:{sender}" or "g:{group}", so a stranger's many DMs are one
// request. Records are read straight from Badger (no cache: a request is
// looked up only for a stranger's DM or invitation) and written through
// kvstore.Writer, so in a cluster every node holds the same requests.
package requests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/kvstore"
)

// Request kinds.
const (
	KindDM    = "dm"
	KindGroup = "group"
)

// MaxPreview bounds Request.Preview, in runes.
const MaxPreview = 100

// Sentinel errors.
var (
	// ErrQuota: the recipient holds as many pending requests as allowed.
	ErrQuota = errors.New("requests: too many pending requests")
	// ErrNotFound: no such pending request.
	ErrNotFound = errors.New("requests: no such request")
	// ErrBusy: the record kept changing on other nodes while this change
	// was tried.
	ErrBusy = errors.New("requests: the request is changing; try again")
)

// Request is one pending request to To.
type Request struct {
	ID   string `json:"id"` // "dm:{from}" or "g:{group}"
	To   string `json:"to"`
	From string `json:"from"`
	Kind string `json:"kind"` // KindDM or KindGroup
	// Group and GroupName name the group of an invitation.
	Group     string `json:"group,omitempty"`
	GroupName string `json:"group_name,omitempty"`
	// Held: the recipient's dm_policy (contacts) holds it back: its DMs
	// are not delivered to the recipient, or it is not yet a member.
	Held bool `json:"held"`
	// Count is the DMs (or invitations) it gathered; Preview the start of
	// the latest DM's body.
	Count   int    `json:"count"`
	Preview string `json:"preview,omitempty"`
	First   int64  `json:"first"` // unix ms
	Last    int64  `json:"last"`
}

// DMID and GroupID are the ids of a DM request from a user and of a group
// invitation.
func DMID(from string) string   { return "dm:" + from }
func GroupID(gid string) string { return "g:" + gid }

// Store holds every user's pending requests.
type Store struct {
	db    *badger.DB
	w     kvstore.Writer
	space *kvstore.Space
	max   int
}

// Open returns the store over db; w commits its changes (nil: db itself),
// max bounds each recipient's pending requests (0: no bound). space, if
// set, refuses new requests while the disk is below its reserve.
func Open(db *badger.DB, w kvstore.Writer, max int, space *kvstore.Space) *Store {
	if w == nil {
		w = kvstore.Local{DB: db}
	}
	return &Store{db: db, w: w, space: space, max: max}
}

func prefix(to string) []byte  { return []byte("rq/" + to + "/") }
func key(to, id string) []byte { return append(prefix(to), id...) }
func (s *Store) Max() int      { return s.max }
func valid(id string) bool     { return strings.HasPrefix(id, "dm:") || strings.HasPrefix(id, "g:") }
func preview(body string) string {
	if utf8.RuneCountInString(body) <= MaxPreview {
		return body
	}
	return string([]rune(body)[:MaxPreview]) + "…"
}

// get reads one record and its stored bytes (nil, nil when none).
func (s *Store) get(to, id string) (*Request, []byte, error) {
	var raw []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key(to, id))
		if err != nil {
			return err
		}
		raw, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("requests: read %s of %s: %w", id, to, err)
	}
	var r Request
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, nil, fmt.Errorf("requests: decode %s of %s: %w", id, to, err)
	}
	return &r, raw, nil
}

// Get returns to's pending request id (ErrNotFound when none).
func (s *Store) Get(to, id string) (Request, error) {
	if !valid(id) {
		return Request{}, ErrNotFound
	}
	r, _, err := s.get(to, id)
	if err == nil && r == nil {
		err = ErrNotFound
	}
	if err != nil {
		return Request{}, err
	}
	return *r, nil
}

// Has reports whether to has a pending request id.
func (s *Store) Has(to, id string) bool {
	_, err := s.Get(to, id)
	return err == nil
}

// List returns to's pending requests, most recent first.
func (s *Store) List(to string) ([]Request, error) {
	out := []Request{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(to), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r Request
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("requests: list of %s: %w", to, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Last > out[j].Last })
	return out, nil
}

func (s *Store) count(to string) (int, error) {
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(to)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// Outcome is what Raise did.
type Outcome int

// Outcomes of Raise.
const (
	Unchanged Outcome = iota // a request that holds nothing back was pending already: not written
	Added                    // a new request
	Updated                  // a pending held request gathered it
)

// Raise records r (its To, ID, From, Kind, Group, GroupName, Held) at now
// (unix ms), with body the DM's text ("" for an invitation). A pending held
// request (or one becoming held) of the same id gathers it: Count, Last,
// Preview and Held are updated, From and First kept. A pending request
// that holds nothing back is left as it is (Unchanged: its DMs are
// delivered anyway, so a stranger's chat costs no write per message).
// A new request past the recipient's bound is ErrQuota. (In a cluster two
// nodes adding at once may each pass the bound by one: the count is not
// part of the condition.)
func (s *Store) Raise(ctx context.Context, r Request, body string, now int64) (Request, Outcome, error) {
	for range 8 {
		old, raw, err := s.get(r.To, r.ID)
		if err != nil {
			return Request{}, Unchanged, err
		}
		if old != nil && !old.Held && !r.Held {
			return *old, Unchanged, nil
		}
		if err := s.space.Check(); err != nil {
			return Request{}, Unchanged, err
		}
		var b kvstore.Batch
		n := r
		if old == nil {
			if s.max > 0 {
				c, err := s.count(r.To)
				if err != nil {
					return Request{}, Unchanged, fmt.Errorf("requests: count of %s: %w", r.To, err)
				}
				if c >= s.max {
					return Request{}, Unchanged, ErrQuota
				}
			}
			n.First = now
			b.Absent = [][]byte{key(r.To, r.ID)}
		} else {
			n = *old
			n.Held, n.GroupName = r.Held, r.GroupName
			b.Match = []kvstore.Entry{{Key: key(r.To, r.ID), Value: raw}}
		}
		n.Count++
		n.Last = now
		if body != "" {
			n.Preview = preview(body)
		}
		val, _ := json.Marshal(n)
		b.Set = []kvstore.Entry{{Key: key(r.To, r.ID), Value: val}}
		switch err := s.w.Commit(ctx, b); {
		case errors.Is(err, kvstore.ErrConflict):
			continue // another node changed it: read again
		case err != nil:
			return Request{}, Unchanged, fmt.Errorf("requests: save %s of %s: %w", r.ID, r.To, err)
		}
		if old == nil {
			return n, Added, nil
		}
		return n, Updated, nil
	}
	return Request{}, Unchanged, ErrBusy
}

// Remove deletes to's pending request id and returns it (ErrNotFound when
// none).
func (s *Store) Remove(ctx context.Context, to, id string) (Request, error) {
	for range 8 {
		if !valid(id) {
			return Request{}, ErrNotFound
		}
		old, raw, err := s.get(to, id)
		if err != nil {
			return Request{}, err
		}
		if old == nil {
			return Request{}, ErrNotFound
		}
		b := kvstore.Batch{Match: []kvstore.Entry{{Key: key(to, id), Value: raw}}, Delete: [][]byte{key(to, id)}}
		switch err := s.w.Commit(ctx, b); {
		case errors.Is(err, kvstore.ErrConflict):
			continue
		case err != nil:
			return Request{}, fmt.Errorf("requests: remove %s of %s: %w", id, to, err)
		}
		return *old, nil
	}
	return Request{}, ErrBusy
}
