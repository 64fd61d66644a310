package kvstore

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// RunGC reclaims value-log space every interval until ctx ends. Badger never
// does this by itself; without it, overwritten and deleted values (read
// markers, expired idempotency keys) keep their disk space forever.
func RunGC(ctx context.Context, db *badger.DB, interval time.Duration, log *slog.Logger) {
	every(ctx, interval, func() {
		for i := 0; i < 16; i++ { // each call rewrites at most one file
			err := db.RunValueLogGC(0.5)
			if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) || errors.Is(err, badger.ErrGCInReadOnlyMode) {
				break
			}
			if err != nil {
				log.Warn("value log GC failed", "error", err)
				break
			}
		}
	})
}

// every runs fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
