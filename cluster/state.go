package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/kvstore"
)

// State is the kvstore.Writer of a cluster node: what is one record per
// node today and must be the same everywhere (accounts and their token
// secret, API keys, token generations, groups) is written as batches to a
// replicated stream that every node applies to its own database in stream
// order. A batch's conditions (kvstore.Batch.Absent, Match) are checked at
// apply time, against the same state on every node, so two nodes creating
// the same account at once get one winner and one ErrConflict.
//
// Commit returns once this node applied the batch: a node reads its own
// writes. Another node applies it a moment later; Changed tells that
// node's stores to drop what their caches held for the keys.
type State struct {
	n       *Node
	db      *badger.DB
	pending requests[chan error]
	applied atomic.Uint64
	stop    context.CancelFunc
	done    chan struct{}
	// Changed, if set before Follow, is called for every key another node
	// wrote, after it was applied, in order, on a goroutine of its own:
	// it may wait for a lock a local writer holds across Commit (the
	// applier, which that writer waits for, never waits for Changed).
	Changed func(key []byte)
	changes changeQueue
	// Timeout bounds a write's wait for the stream's acknowledgement.
	Timeout time.Duration
}

type stateEntry struct {
	Node  string        `json:"n"`
	Req   uint64        `json:"q"`
	Batch kvstore.Batch `json:"b"`
}

// stateKey records the last applied entry of the state stream.
var stateKey = []byte("meta/state")

// OpenState returns the writer of node n's shared state in db. Call Follow
// to start applying the stream.
func OpenState(n *Node, db *badger.DB) (*State, error) {
	s := &State{n: n, db: db, done: make(chan struct{}), Timeout: 10 * time.Second}
	err := db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(stateKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) == 8 {
				s.applied.Store(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: state position: %w", err)
	}
	return s, nil
}

// Follow starts applying the stream and waits, at most wait, until this
// node has applied everything the stream held when it was called (so the
// stores that open next see the cluster's accounts and groups).
func (s *State) Follow(ctx context.Context, wait time.Duration) error {
	fctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	f := &follower{n: s.n, stream: s.n.state, what: stateStream, applied: &s.applied, apply: s.applyBatch}
	applied := make(chan struct{})
	go func() {
		f.run(fctx, applied)
		s.changes.close()
	}()
	go func() {
		s.changes.run(s.Changed)
		<-applied
		close(s.done)
	}()
	ictx, icancel := context.WithTimeout(ctx, wait)
	defer icancel()
	info, err := s.n.state.Info(ictx)
	if err != nil {
		return fmt.Errorf("cluster: state stream: %w", err)
	}
	for s.applied.Load() < info.State.LastSeq {
		select {
		case <-ictx.Done():
			return fmt.Errorf("cluster: catching up the shared state: applied %d of %d", s.applied.Load(), info.State.LastSeq)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Close stops the applier.
func (s *State) Close() error {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	return nil
}

// Commit implements kvstore.Writer.
func (s *State) Commit(ctx context.Context, b kvstore.Batch) error {
	ch := make(chan error, 1)
	err := s.pending.publish(s.n, stateSubject, stateStream, s.Timeout, ch, func(req uint64) any {
		return stateEntry{Node: s.n.ID(), Req: req, Batch: b}
	}, func(err error) { ch <- err })
	if err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		// The batch may still be applied; the caller reports failure and
		// its client retries (every write here is safe to repeat).
		return ctx.Err()
	}
}

// stateBatch bounds the entries applied in one transaction.
const stateBatch = 128

// applyBatch applies a run of entries in one transaction: each entry's
// conditions are checked against what the entries before it left, so the
// outcome is the same on every node. A failed condition fails only its
// entry (ErrConflict to its writer); any other error applies nothing and
// the follower starts again from the last committed entry.
func (s *State) applyBatch(_ context.Context, msgs []streamMsg) error {
	for len(msgs) > 0 {
		n := min(len(msgs), stateBatch)
		if err := s.applyTxn(msgs[:n]); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

func (s *State) applyTxn(msgs []streamMsg) error {
	type outcome struct {
		e   stateEntry
		err error
	}
	var done []outcome
	last := s.applied.Load()
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for _, m := range msgs {
		pos, next, err := inOrder(m, last)
		if err != nil {
			return err
		}
		if !next {
			continue
		}
		var e stateEntry
		if err := json.Unmarshal(m.data, &e); err != nil {
			return fmt.Errorf("state entry %d: %w", pos.Seq, err)
		}
		err = kvstore.Apply(txn, e.Batch)
		if err != nil && !errors.Is(err, kvstore.ErrConflict) {
			return fmt.Errorf("state entry %d: %w", pos.Seq, err)
		}
		done = append(done, outcome{e, err})
		last = pos.Seq
	}
	if len(done) == 0 {
		return nil
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], last)
	if err := txn.Set(stateKey, b[:]); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("state commit: %w", err)
	}
	s.applied.Store(last)
	for _, o := range done {
		if o.e.Node == s.n.ID() {
			if ch, ok := s.pending.take(o.e.Req); ok {
				ch <- o.err
			}
			continue
		}
		if s.Changed != nil && o.err == nil {
			for _, kv := range o.e.Batch.Set {
				s.changes.add(kv.Key)
			}
			for _, k := range o.e.Batch.Delete {
				s.changes.add(k)
			}
		}
	}
	return nil
}

// changeQueue hands the keys other nodes wrote from the applier to Changed
// without ever making the applier wait. It holds what was applied while
// Changed waits on a local writer: bounded by the writes the cluster makes
// during one local write.
type changeQueue struct {
	mu     sync.Mutex
	keys   [][]byte
	closed bool
	wake   chan struct{}
}

func (q *changeQueue) init() {
	if q.wake == nil {
		q.wake = make(chan struct{}, 1)
	}
}

func (q *changeQueue) add(k []byte) {
	q.mu.Lock()
	q.init()
	q.keys = append(q.keys, k)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *changeQueue) close() {
	q.mu.Lock()
	q.init()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run calls f for every key, in order, until the queue is closed.
func (q *changeQueue) run(f func([]byte)) {
	q.mu.Lock()
	q.init()
	wake := q.wake
	q.mu.Unlock()
	for {
		q.mu.Lock()
		keys, closed := q.keys, q.closed
		q.keys = nil
		q.mu.Unlock()
		for _, k := range keys {
			if f != nil {
				f(k)
			}
		}
		if closed {
			return
		}
		<-wake
	}
}
