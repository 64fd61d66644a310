package kvstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrFull is returned for a write refused because the data directory's
// filesystem is below its free-space reserve.
var ErrFull = errors.New("kvstore: storage full")

// Space watches the free space of the filesystem that holds the data and
// refuses writes once it falls below a reserve.
//
// Why a reserve and not Badger's own errors: Badger writes its write-ahead
// log and value log through memory-mapped files that it extends sparsely, so
// running out of space there is not an error return but a SIGBUS that kills
// the process mid-write. Writers therefore stop while there is still room:
// the reserve must cover what Badger may still write on its own (a memtable
// flush, a compaction, the mapped tails of its logs; with BadgerOptions a
// few tens of MiB per database).
//
// Reads never consult Space: a full disk still serves history.
type Space struct {
	dir     string
	reserve uint64
	free    func(dir string) (uint64, error)
	log     *slog.Logger

	low    atomic.Bool
	avail  atomic.Uint64
	pinned atomic.Bool
}

// NewSpace watches dir with the given reserve in bytes (0: never refuse).
// free reports the bytes available to us on dir's filesystem; nil is statfs.
func NewSpace(dir string, reserve uint64, free func(dir string) (uint64, error), log *slog.Logger) *Space {
	if free == nil {
		free = StatFree
	}
	s := &Space{dir: dir, reserve: reserve, free: free, log: log}
	_ = s.Check()
	return s
}

// StatFree returns the bytes available to an unprivileged writer on the
// filesystem holding dir.
func StatFree(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// Check measures now and returns an error wrapping ErrFull when below the
// reserve. Writers call it before each batch; it costs one statfs.
func (s *Space) Check() error {
	if s == nil || s.reserve == 0 {
		return s.Err()
	}
	n, err := s.free(s.dir)
	if err != nil {
		// Unknown free space must not stop the service; the last reading stands.
		s.log.Warn("free space unknown", "path", s.dir, "error", err)
		return s.Err()
	}
	s.avail.Store(n)
	low := n < s.reserve
	if was := s.low.Swap(low); was != low {
		if low {
			s.log.Error("storage nearly full: refusing new writes until space is freed",
				"path", s.dir, "free_bytes", n, "reserve_bytes", s.reserve)
		} else {
			s.log.Info("storage has room again: accepting writes", "path", s.dir, "free_bytes", n)
		}
	}
	return s.Err()
}

// Pin makes every later Check and Err report ErrFull, whatever the free
// space: the databases were opened read-only because the disk was full at
// start, and only a restart can make them writable again.
func (s *Space) Pin() { s.pinned.Store(true) }

// Pinned reports whether Pin was called.
func (s *Space) Pinned() bool { return s != nil && s.pinned.Load() }

// Err returns the last reading's verdict without measuring: nil, or an error
// wrapping ErrFull. Cheap enough for every write of the session store.
func (s *Space) Err() error {
	if s.Pinned() {
		return fmt.Errorf("%w: the server started on a full disk at %s and opened its data read-only; free space and restart it", ErrFull, s.dir)
	}
	if s == nil || !s.low.Load() {
		return nil
	}
	return fmt.Errorf("%w: %d bytes free on %s, reserve %d", ErrFull, s.avail.Load(), s.dir, s.reserve)
}

// Run measures every interval until ctx ends, so that writers that only
// read Err (and the log) learn of a filling disk within one interval.
func (s *Space) Run(ctx context.Context, interval time.Duration) {
	if s == nil || s.reserve == 0 {
		return
	}
	every(ctx, interval, func() { _ = s.Check() })
}
