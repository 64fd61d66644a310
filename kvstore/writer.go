package kvstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Batch is a group of writes to the shared state (accounts, groups...)
// committed atomically, or not at all when one of its conditions fails.
// Conditions make a write a compare-and-set, so that two nodes of a cluster
// changing the same record at once cannot both win.
type Batch struct {
	// Absent keys must not exist (creating an account or a group).
	Absent [][]byte
	// Match keys must hold exactly these values (the record as read
	// before changing it).
	Match []Entry
	Set   []Entry
	// Delete removes keys.
	Delete [][]byte
}

// Entry is one key and value; TTL > 0 makes it expire.
type Entry struct {
	Key, Value []byte
	TTL        time.Duration
}

// ErrConflict is a Batch whose condition failed: nothing was written.
var ErrConflict = errors.New("kvstore: the record changed or exists already")

// Writer commits batches of the shared state. Local writes this node's
// database; a cluster's writer puts each batch in a replicated log that
// every node applies in the same order (package cluster), so conditions
// are decided alike everywhere.
type Writer interface {
	Commit(ctx context.Context, b Batch) error
}

// Local is the Writer of a single node.
type Local struct{ DB *badger.DB }

// Commit implements Writer.
func (l Local) Commit(_ context.Context, b Batch) error {
	return l.DB.Update(func(txn *badger.Txn) error { return Apply(txn, b) })
}

// Apply checks b's conditions in txn and, if they hold, stages its writes
// (ErrConflict if not).
func Apply(txn *badger.Txn, b Batch) error {
	for _, k := range b.Absent {
		if _, err := txn.Get(k); err == nil {
			return ErrConflict
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
	}
	for _, e := range b.Match {
		it, err := txn.Get(e.Key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrConflict
		}
		if err != nil {
			return err
		}
		same := false
		if err := it.Value(func(v []byte) error { same = bytes.Equal(v, e.Value); return nil }); err != nil {
			return err
		}
		if !same {
			return ErrConflict
		}
	}
	for _, e := range b.Set {
		en := badger.NewEntry(e.Key, e.Value)
		if e.TTL > 0 {
			en = en.WithTTL(e.TTL)
		}
		if err := txn.SetEntry(en); err != nil {
			return fmt.Errorf("kvstore: set: %w", err)
		}
	}
	for _, k := range b.Delete {
		if err := txn.Delete(k); err != nil {
			return fmt.Errorf("kvstore: delete: %w", err)
		}
	}
	return nil
}

// Set is a Batch of one unconditional write.
func Set(key, value []byte) Batch { return Batch{Set: []Entry{{Key: key, Value: value}}} }
