package broker

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/kvstore"
)

// cursorStore keeps each durable device session's acknowledged feed
// position (dc/{client id} -> history cursor). A PUBACK only updates memory;
// a flusher writes what changed once per interval in one transaction, so
// the publish path has no per-message write. After a crash a session
// resumes from the last flushed position: at least once, never a gap.
type cursorStore struct {
	db    *badger.DB
	space *kvstore.Space
	log   *slog.Logger

	flushMu sync.Mutex // one flush at a time
	mu      sync.Mutex
	dirty   map[string]*history.Cursor // changed since the last flush; nil: delete
	writing map[string]*history.Cursor // being written by the flush under way
	quit    chan struct{}
	once    sync.Once
	done    chan struct{}
}

// cursorFlush is how often changed cursors are written.
const cursorFlush = time.Second

func cursorKey(id string) []byte { return []byte("dc/" + id) }

func newCursorStore(db *badger.DB, space *kvstore.Space, log *slog.Logger) *cursorStore {
	c := &cursorStore{db: db, space: space, log: log, dirty: map[string]*history.Cursor{},
		quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// get returns the cursor of session id.
func (c *cursorStore) get(id string) (history.Cursor, bool) {
	c.mu.Lock()
	cur, pending := c.dirty[id]
	if !pending {
		cur, pending = c.writing[id]
	}
	c.mu.Unlock()
	if pending {
		if cur == nil {
			return history.Cursor{}, false
		}
		return *cur, true
	}
	var out history.Cursor
	err := c.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(cursorKey(id))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			var perr error
			out, perr = history.ParseCursor(string(v))
			return perr
		})
	})
	if err != nil {
		if !errors.Is(err, badger.ErrKeyNotFound) {
			c.log.Error("delivery: read cursor", "client", id, "error", err)
		}
		return history.Cursor{}, false
	}
	return out, true
}

// set records session id's cursor; now: write it at once (a new session,
// whose start must survive a crash right after its CONNACK).
func (c *cursorStore) set(id string, cur history.Cursor, now bool) {
	c.mu.Lock()
	c.dirty[id] = &cur
	c.mu.Unlock()
	if now {
		c.flush()
	}
}

// remove forgets session id's cursor.
func (c *cursorStore) remove(id string) {
	c.mu.Lock()
	c.dirty[id] = nil
	c.mu.Unlock()
}

func (c *cursorStore) run() {
	defer close(c.done)
	t := time.NewTicker(cursorFlush)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			c.flush()
			return
		case <-t.C:
			c.flush()
		}
	}
}

// flush writes every changed cursor in one transaction. Skipped while the
// disk is below its reserve (the positions stay in memory and are written
// once there is room; until then a crash means at-least-once from older
// positions, never a loss).
func (c *cursorStore) flush() {
	if c.space != nil && c.space.Err() != nil {
		return
	}
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	batch := c.dirty
	c.dirty, c.writing = map[string]*history.Cursor{}, batch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.writing = nil
		c.mu.Unlock()
	}()
	if len(batch) == 0 {
		return
	}
	wb := c.db.NewWriteBatch()
	defer wb.Cancel()
	var err error
	for id, cur := range batch {
		if cur == nil {
			err = wb.Delete(cursorKey(id))
		} else {
			err = wb.Set(cursorKey(id), []byte(cur.String()))
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		c.log.Error("delivery: write cursors", "count", len(batch), "error", err)
		c.mu.Lock()
		for id, cur := range batch {
			if _, newer := c.dirty[id]; !newer {
				c.dirty[id] = cur
			}
		}
		c.mu.Unlock()
	}
}

// close writes what changed and stops the flusher.
func (c *cursorStore) close() {
	c.once.Do(func() { close(c.quit) })
	<-c.done
}
