// Package kvstore opens the Badger database that holds the platform's own
// data (accounts, groups, history). mochi's session store lives in a separate
// Badger directory so each can be tuned and cleaned on its own.
//
// Key prefixes (each owned by one package):
//
//	a/  accounts       (accounts)
//	k/  token secret   (accounts)
//	g/  groups, gm/ group membership by user (groups)
//	m/ i/ uc/ rd/ cs/ id/ meta/  history (history)
package kvstore

import (
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
)

// Options tune the database.
type Options struct {
	// SyncWrites makes every commit fsync before it returns. The history
	// writer commits in batches, so this costs one fsync per batch.
	SyncWrites bool
	// InMemory keeps everything in RAM (tests that need no restart).
	InMemory bool
}

// Open opens (creating if needed) the database in dir.
func Open(dir string, o Options, log *slog.Logger) (*badger.DB, error) {
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(o.SyncWrites).
		WithLogger(badgerLogger{log}).
		WithNumVersionsToKeep(1).
		// Small memtables and caches: this is one of several stores in one
		// process on a small machine.
		WithMemTableSize(16 << 20).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueThreshold(1 << 10)
	if o.InMemory {
		opts = opts.WithInMemory(true).WithDir("").WithValueDir("")
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("kvstore: open %s: %w", dir, err)
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
