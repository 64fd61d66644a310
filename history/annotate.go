package history

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/envelope"
)

// ErrNotFound: no message of that id in the conversation.
var ErrNotFound = errors.New("history: no such message")

func idKey(conv ConvID, id string) []byte { return []byte("ml/" + string(conv) + "/" + id) }

func journalKey(n uint64) []byte { return append([]byte("j/"), be8(n)...) }

// index records, in the append's transaction, what is derived from it: the
// message's id (Lookup), its journal entry (Changes), and, for an edit,
// retract or reaction, its effect on the message it is about.
func (s *Badger) index(txn *badger.Txn, conv ConvID, m *envelope.Message, p []byte) error {
	if err := txn.Set(idKey(conv, m.ID), be8(m.Seq)); err != nil {
		return err
	}
	if s.journal == 0 {
		n, err := lastUnder(txn, []byte("j/"))
		if err != nil {
			return err
		}
		if c := s.lastJournal.Load(); n < c {
			return fmt.Errorf("%w: journal reads as ending at %d, %d committed", ErrCorrupt, n, c)
		}
		s.journal = n
	}
	s.journal++
	if err := txn.Set(journalKey(s.journal), p); err != nil {
		return err
	}
	if envelope.IsAnnotation(m.Type) && m.Ref != "" {
		return annotate(txn, conv, m)
	}
	return nil
}

// annotate applies edit, retract or reaction a to the message it refers to,
// rewriting that message's record: pages, sync and search then return the
// message as it now is. The service checked the rules before appending; at
// apply time only what stays true in log order is applied (nothing changes
// a retracted message, and a ref to nothing changes nothing), so every
// node's view of a replicated log ends alike.
func annotate(txn *badger.Txn, conv ConvID, a *envelope.Message) error {
	seq, err := lookupSeq(txn, conv, a.Ref)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	m, err := getMsg(txn, conv, seq)
	if err != nil {
		return err
	}
	if m.Retracted || envelope.IsAnnotation(m.Type) {
		return nil
	}
	switch a.Type {
	case envelope.TypeEdit:
		m.Body, m.Edited = a.Body, a.TS
	case envelope.TypeRetract:
		m.Retracted, m.Body, m.Meta, m.Reactions = true, "", nil, nil
	case envelope.TypeReaction:
		m.Reactions = react(m.Reactions, a.From, a.Body)
	}
	val, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return txn.Set(msgKey(conv, seq), val)
}

// react moves user's reaction to emoji ("": removes it); one reaction per
// user and message.
func react(rs map[string][]string, user, emoji string) map[string][]string {
	for e, users := range rs {
		if i := slices.Index(users, user); i >= 0 {
			users = slices.Delete(users, i, i+1)
			if len(users) == 0 {
				delete(rs, e)
			} else {
				rs[e] = users
			}
		}
	}
	if emoji != "" {
		if rs == nil {
			rs = map[string][]string{}
		}
		rs[emoji] = append(rs[emoji], user)
	}
	if len(rs) == 0 {
		return nil
	}
	return rs
}

func lookupSeq(txn *badger.Txn, conv ConvID, id string) (uint64, error) {
	it, err := txn.Get(idKey(conv, id))
	if err != nil {
		return 0, err
	}
	var seq uint64
	err = it.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: id entry %s of %s", ErrCorrupt, id, conv)
		}
		seq = binary.BigEndian.Uint64(v)
		return nil
	})
	return seq, err
}

// Lookup implements Store.
func (s *Badger) Lookup(_ context.Context, conv ConvID, id string) (envelope.Message, error) {
	var m envelope.Message
	err := s.db.View(func(txn *badger.Txn) error {
		seq, err := lookupSeq(txn, conv, id)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		m, err = getMsg(txn, conv, seq)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: id %s names seq %d, which is missing", ErrCorrupt, id, seq)
		}
		return err
	})
	if err != nil {
		return envelope.Message{}, errorf("lookup", conv, err)
	}
	return m, nil
}

// Change is one journal entry: the append numbered N, and the message as
// it is now (an edited message with its latest body, a retracted one
// without).
type Change struct {
	N    uint64
	Conv ConvID
	Msg  envelope.Message
}

// JournalHead is the number of the last committed append (0: none): what a
// derived index compares its own position with.
func (s *Badger) JournalHead() uint64 { return s.lastJournal.Load() }

// Changes returns up to limit journal entries after n, in commit order. The
// journal has no gaps: a missing entry below the committed head is
// ErrCorrupt.
func (s *Badger) Changes(_ context.Context, after uint64, limit int) ([]Change, error) {
	var out []Change
	head := s.lastJournal.Load()
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("j/"), PrefetchValues: true, PrefetchSize: min(limit, 1000)})
		defer it.Close()
		want := after + 1
		for it.Seek(journalKey(want)); it.Valid() && len(out) < limit; it.Next() {
			k := it.Item().Key()
			if len(k) != 10 {
				return fmt.Errorf("%w: unexpected key %q", ErrCorrupt, k)
			}
			n := binary.BigEndian.Uint64(k[2:])
			if n != want {
				return fmt.Errorf("%w: journal entry %d missing (next found: %d)", ErrCorrupt, want, n)
			}
			p, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			conv, seq, ok := parsePtr(p)
			if !ok {
				return fmt.Errorf("%w: journal entry %d", ErrCorrupt, n)
			}
			m, err := getMsg(txn, conv, seq)
			if err != nil {
				return fmt.Errorf("journal entry %d: %w", n, err)
			}
			out = append(out, Change{N: n, Conv: conv, Msg: m})
			want++
		}
		if len(out) < limit && want <= head {
			return fmt.Errorf("%w: journal entry %d missing (journal ends at %d)", ErrCorrupt, want, head)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history: changes after %d: %w", after, err)
	}
	return out, nil
}
