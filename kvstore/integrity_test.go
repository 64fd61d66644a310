package kvstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fill creates a database in dir holding n keys spread over several tables
// (each close flushes the memtable into a table file).
func fill(t *testing.T, dir string, rounds int) {
	t.Helper()
	for r := 0; r < rounds; r++ {
		db, err := Open(dir, Options{Identity: true}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(txn *badger.Txn) error {
			for i := 0; i < 100; i++ {
				if err := txn.Set([]byte(fmt.Sprintf("k/%d/%03d", r, i)), bytes.Repeat([]byte("v"), 100)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func tables(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// A data directory that does not open as the database it was is refused,
// and no table file is deleted (issue 12 item 4a: a deleted or truncated
// MANIFEST started an empty database and Badger deleted the tables).
func TestOpenRefusesADamagedDirectoryAndKeepsItsTables(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"manifest deleted", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, badger.ManifestFilename)))
		}},
		{"manifest truncated", func(t *testing.T, dir string) {
			must(t, os.Truncate(filepath.Join(dir, badger.ManifestFilename), 8)) // magic only: lists no table
		}},
		{"manifest truncated mid-record", func(t *testing.T, dir string) {
			p := filepath.Join(dir, badger.ManifestFilename)
			st, err := os.Stat(p)
			must(t, err)
			must(t, os.Truncate(p, st.Size()/3))
		}},
		{"table damaged", func(t *testing.T, dir string) {
			f, err := os.OpenFile(tables(t, dir)[0], os.O_RDWR, 0)
			must(t, err)
			defer f.Close()
			_, err = f.WriteAt(bytes.Repeat([]byte{0xa5}, 4096), 0)
			must(t, err)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "im")
			fill(t, dir, 4)
			before := tables(t, dir)
			if len(before) < 2 {
				t.Fatalf("want several tables, have %v", before)
			}
			c.damage(t, dir)
			db, err := Open(dir, Options{Identity: true}, quiet)
			if err == nil {
				db.Close()
				t.Fatal("damaged directory opened")
			}
			t.Logf("refused: %v", err)
			if after := tables(t, dir); !equal(before, after) {
				t.Errorf("tables before %v, after %v", before, after)
			}
			// And again: a refusal changes nothing that a second start would see differently.
			if db, err := Open(dir, Options{Identity: true}, quiet); err == nil {
				db.Close()
				t.Fatal("damaged directory opened on the second try")
			}
		})
	}
}

// A directory emptied or replaced while its identity file stayed is refused.
func TestOpenRefusesADirectoryThatIsNotTheDatabaseItWas(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "im")
	fill(t, dir, 1)
	must(t, os.RemoveAll(dir))
	_, err := Open(dir, Options{Identity: true}, quiet)
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("emptied directory: got %v, want ErrDamaged", err)
	}

	other := filepath.Join(root, "other")
	fill(t, other, 1)
	must(t, os.RemoveAll(dir))
	must(t, os.Rename(other, dir))
	if _, err := Open(dir, Options{Identity: true}, quiet); !errors.Is(err, ErrDamaged) {
		t.Fatalf("replaced directory: got %v, want ErrDamaged", err)
	}
}

// A table file the MANIFEST does not list (a crash between writing a table
// and recording it) is moved aside, not deleted, and the database opens.
func TestOpenMovesUnlistedTablesAside(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "im")
	fill(t, dir, 2)
	b, err := os.ReadFile(tables(t, dir)[0])
	must(t, err)
	stray := filepath.Join(dir, "999999.sst")
	must(t, os.WriteFile(stray, b, 0o600))
	db, err := Open(dir, Options{Identity: true}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	kept, err := filepath.Glob(filepath.Join(dir+".unlisted", "*", "999999.sst"))
	must(t, err)
	if len(kept) != 1 {
		t.Fatalf("unlisted table not kept aside: %v", kept)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
