package history

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
)

// Garbage written into a table while the server runs (issue 12 item 4b: 4 KiB
// in one block made sync return 108 of 242 messages with more:false) must
// make reads fail, never answer a short page as if it were complete.
func TestDamagedTableFailsReadsInsteadOfShortPages(t *testing.T) {
	for _, at := range []int64{0, 8 << 10, 16 << 10, 32 << 10, 64 << 10} {
		t.Run(fmt.Sprintf("at%dKiB", at>>10), func(t *testing.T) {
			dir := t.TempDir()
			// No block cache, so every read comes from the damaged file.
			db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(1 << 20).WithValueThreshold(1 << 10).
				WithBlockCacheSize(0).WithCompression(options.None).WithChecksumVerificationMode(options.OnBlockRead))
			s := openOn(t, db, err, BadgerOptions{})
			ctx := context.Background()
			const n = 242
			body := string(bytes.Repeat([]byte("x"), 200))
			for i := 0; i < n; i++ {
				if _, err := s.Append(ctx, dm("alice", "bob", fmt.Sprint(i, body))); err != nil {
					t.Fatal(err)
				}
			}
			sst := flushedTable(t, db, []byte("i/bob/"))
			corrupt(t, sst, at)

			var got int
			var readErr error
			cur := Cursor{}
			for {
				p, err := s.Sync(ctx, "bob", cur, 50)
				if err != nil {
					readErr = err
					break
				}
				got += len(p.Messages)
				cur = p.Next
				if !p.More {
					break
				}
			}
			if readErr == nil && got != n {
				t.Errorf("sync returned %d of %d messages and no error", got, n)
			}
			if readErr != nil && !errors.Is(readErr, ErrCorrupt) {
				t.Errorf("sync failed with %v, want ErrCorrupt", readErr)
			}
			var paged int
			before := uint64(0)
			for {
				msgs, more, err := s.Page(ctx, DM("alice", "bob"), before, 50)
				if err != nil {
					if !errors.Is(err, ErrCorrupt) {
						t.Errorf("page failed with %v, want ErrCorrupt", err)
					}
					break
				}
				paged += len(msgs)
				if !more || len(msgs) == 0 {
					if paged != n {
						t.Errorf("page returned %d of %d messages and no error", paged, n)
					}
					break
				}
				before = msgs[len(msgs)-1].Seq
			}
		})
	}
}

// flushedTable writes filler until the keys under prefix are in a table on
// disk, and returns that table's file.
func flushedTable(t *testing.T, db *badger.DB, prefix []byte) string {
	t.Helper()
	filler := bytes.Repeat([]byte("f"), 512)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		for _, ti := range db.Tables() {
			if bytes.Compare(ti.Left, append(prefix, 0xff)) <= 0 && bytes.Compare(ti.Right, prefix) >= 0 {
				return table.NewFilename(ti.ID, db.Opts().Dir)
			}
		}
		wb := db.NewWriteBatch()
		for j := 0; j < 512; j++ {
			if err := wb.Set([]byte(fmt.Sprintf("z/%08d/%04d", i, j)), filler); err != nil {
				t.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the messages never reached a table file")
	return ""
}

// corrupt overwrites 4 KiB at offset at of the file with garbage.
func corrupt(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Clean(path), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	garbage := bytes.Repeat([]byte{0xa5, 0x5a, 0x00, 0xff}, 1024)
	if _, err := f.WriteAt(garbage, at); err != nil {
		t.Fatal(err)
	}
}
