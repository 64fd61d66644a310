// Package kvstore opens the Badger database that holds the platform's own
// data (accounts, groups, history). mochi's session store lives in a separate
// Badger directory so each can be tuned and cleaned on its own.
//
// Key prefixes (each owned by one package; a new one is added here):
//
//	a/ user records, dv/ devices by owner, k/ token signing secret,
//	ak/ akd/ API keys (by id, by device), tg/ tr/ token generations and
//	revoked token ids                                         (accounts)
//	g/  groups                                                (groups)
//	bl/ ct/  block lists (bl/{blocker}/{blocked}), contact
//	lists (ct/{owner}/{contact})                              (userlists)
//	pf/ av/  profiles (display name), avatar thumbnails       (profiles)
//	rq/  message requests (rq/{recipient}/{request id})       (requests)
//	m/ i/ uc/ rd/ id/ meta/  messages, feeds, conversations, read
//	markers, idempotency keys, store metadata,
//	ml/ j/  message ids, the journal of appends               (history)
//	meta/identity  the database's identity          (kvstore, IdentityFile)
//	rt/  clients' retained messages outside im/               (broker)
//	dc/  device session cursors: acknowledged feed positions  (broker)
//
// In mochi's session store (data/sessions), beside mochi's own keys:
//
//	mqim/epoch  the history epoch the sessions belong to     (broker)
package kvstore

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Options tune the database.
type Options struct {
	// SyncWrites makes every commit fsync before it returns. The history
	// writer commits in batches, so this costs one fsync per batch.
	SyncWrites bool
	// InMemory keeps everything in RAM (tests that need no restart).
	InMemory bool
	// ReadOnly opens without writing anything: Badger cannot even create
	// its lock file or a new memtable on a full disk (see Space.Pin).
	ReadOnly bool
	// Identity checks at every open that the directory still holds the
	// database it was created as (see IdentityFile), and refuses it with
	// ErrDamaged otherwise.
	Identity bool
}

// BadgerOptions are the Badger settings every database of the platform uses
// (mochi's session store too).
func BadgerOptions(dir string, o Options, log *slog.Logger) badger.Options {
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(o.SyncWrites).
		WithLogger(badgerLogger{log}).
		WithNumVersionsToKeep(1).
		// Small memtables, value-log files and caches: this is one of several
		// stores in one process on a small machine, and every byte Badger has
		// mapped but not yet written is space the disk reserve must cover
		// (see Space).
		WithMemTableSize(16 << 20).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueThreshold(1 << 10).
		// Verify every block read from disk (Open verifies whole tables
		// first, see preOpen): a damaged block then ends an iteration, which
		// the history store detects, instead of decoding as garbage.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithReadOnly(o.ReadOnly)
	if o.InMemory {
		opts = opts.WithInMemory(true).WithDir("").WithValueDir("")
	}
	return opts
}

// Open opens (creating if needed) the database in dir. It never lets Badger
// delete data: a directory whose MANIFEST is missing is refused, and table
// files the MANIFEST does not list are moved to dir.unlisted/ first.
func Open(dir string, o Options, log *slog.Logger) (*badger.DB, error) {
	if o.InMemory {
		db, err := badger.Open(BadgerOptions(dir, o, log))
		if err != nil {
			return nil, fmt.Errorf("kvstore: open in memory: %w", err)
		}
		return db, nil
	}
	moved, undo, err := preOpen(dir)
	if err != nil {
		return nil, err
	}
	db, err := badger.Open(BadgerOptions(dir, o, log))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("kvstore: open %s: %w", dir, err), undo())
	}
	if o.Identity {
		if err := checkIdentity(db, dir, o.ReadOnly); err != nil {
			return nil, errors.Join(err, db.Close(), undo())
		}
	}
	if len(moved) > 0 {
		log.Warn("table files not listed in the MANIFEST were moved aside, not deleted (leftovers of a crash, or a damaged MANIFEST: if data is missing, restore from a backup)",
			"path", dir, "moved_to", filepath.Clean(dir)+".unlisted", "files", moved)
	}
	return db, nil
}

// badgerLogger routes Badger's chatter to slog; info and debug are dropped
// because Badger logs every compaction at info.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
