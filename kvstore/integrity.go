package kvstore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// ErrDamaged reports a data directory that does not open as the database it
// was. Badger itself would open such a directory as a new, empty database and
// delete the table files its MANIFEST does not list; we refuse instead.
var ErrDamaged = errors.New("kvstore: data directory damaged")

// identityKey holds the database's identity, written once at creation; the
// same identity is kept in a small file beside the directory (dir + ".id"),
// so a directory that lost its MANIFEST or tables, or was swapped for
// another, is told apart from the one that was there.
var identityKey = []byte("meta/identity")

// IdentityFile is the path of the file beside dir that records its identity.
func IdentityFile(dir string) string { return filepath.Clean(dir) + ".id" }

// dirFiles is what a Badger directory holds on disk.
type dirFiles struct {
	manifest bool
	tables   map[uint64]string // table id -> file name
	data     []string          // .sst, .vlog and .mem files
}

func scanDir(dir string) (dirFiles, error) {
	f := dirFiles{tables: map[uint64]string{}}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == badger.ManifestFilename:
			f.manifest = true
		case strings.HasSuffix(name, ".sst"):
			if id, err := strconv.ParseUint(strings.TrimSuffix(name, ".sst"), 10, 64); err == nil {
				f.tables[id] = name
			}
			f.data = append(f.data, name)
		case strings.HasSuffix(name, ".vlog"), strings.HasSuffix(name, ".mem"):
			f.data = append(f.data, name)
		}
	}
	return f, nil
}

// preOpen checks dir before Badger sees it. A directory with data files but
// no MANIFEST is refused: Badger would start an empty database over it.
// Table files the MANIFEST does not list (crash leftovers, or a truncated
// MANIFEST) are moved aside into quarantine rather than left for Badger to
// delete; undo puts them back when the database then fails its identity
// check.
func preOpen(dir string) (quarantined []string, undo func() error, err error) {
	undo = func() error { return nil }
	f, err := scanDir(dir)
	if err != nil {
		return nil, undo, fmt.Errorf("kvstore: read %s: %w", dir, err)
	}
	if !f.manifest {
		if len(f.data) > 0 {
			return nil, undo, fmt.Errorf("%w: %s holds %d data files (%s...) but no %s: opening it would start an empty database and delete them. "+
				"Restore the directory from a backup; to start afresh instead, move %s and %s away",
				ErrDamaged, dir, len(f.data), f.data[0], badger.ManifestFilename, dir, IdentityFile(dir))
		}
		return nil, undo, nil
	}
	listed, err := manifestTables(filepath.Join(dir, badger.ManifestFilename))
	if err != nil {
		return nil, undo, fmt.Errorf("%w: %s/%s does not read: %v. Restore the directory from a backup", ErrDamaged, dir, badger.ManifestFilename, err)
	}
	for id, tm := range listed {
		name, ok := f.tables[id]
		if !ok {
			return nil, undo, fmt.Errorf("%w: %s lists table %d, which is missing. Restore the directory from a backup", ErrDamaged, dir, id)
		}
		// Badger skips a table that fails its checksum at open (it logs and
		// starts without its data) and panics on a damaged footer.
		if err := verifyTable(filepath.Join(dir, name), tm); err != nil {
			return nil, undo, fmt.Errorf("%w: table %s: %v. Restore the directory from a backup", ErrDamaged, filepath.Join(dir, name), err)
		}
	}
	var orphans []string
	for id, name := range f.tables {
		if _, ok := listed[id]; !ok {
			orphans = append(orphans, name)
		}
	}
	if len(orphans) == 0 {
		return nil, undo, nil
	}
	// One folder per open: Badger reuses the ids of tables it never listed.
	qdir := filepath.Join(filepath.Clean(dir)+".unlisted", time.Now().UTC().Format("20060102T150405.000000000"))
	if err := os.MkdirAll(qdir, 0o700); err != nil {
		return nil, undo, fmt.Errorf("kvstore: quarantine: %w", err)
	}
	var moved []string
	undo = func() error {
		var errs []error
		for _, name := range moved {
			errs = append(errs, os.Rename(filepath.Join(qdir, name), filepath.Join(dir, name)))
		}
		return errors.Join(errs...)
	}
	for _, name := range orphans {
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(qdir, name)); err != nil {
			return nil, undo, errors.Join(fmt.Errorf("kvstore: quarantine %s: %w", name, err), undo())
		}
		moved = append(moved, name)
	}
	return moved, undo, nil
}

// verifyTable checks every block checksum of the table file at path.
func verifyTable(path string, tm badger.TableManifest) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("unreadable (damaged index or footer): %v", p)
		}
	}()
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer mf.Close(-1)
	// OpenTable verifies each block with OnTableRead. The table is never
	// released through DecrRef, which would delete its file.
	_, err = table.OpenTable(mf, table.Options{ReadOnly: true, ChkMode: options.OnTableRead,
		Compression: tm.Compression, BlockSize: 4 << 10})
	return err
}

// manifestTables lists the tables the MANIFEST at path references, as
// Badger will read it (a torn last record is ignored, as Badger does).
func manifestTables(path string) (map[uint64]badger.TableManifest, error) {
	fp, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fp.Close()
	m, _, err := badger.ReplayManifestFile(fp, 0, badger.DefaultOptions(""))
	if err != nil {
		return nil, err
	}
	return m.Tables, nil
}

// checkIdentity compares the identity stored in db with the file beside dir.
// A new database (neither present) gets one; a database from before
// identities existed (key absent, no file, but data) gets one too.
func checkIdentity(db *badger.DB, dir string, readOnly bool) error {
	file := IdentityFile(dir)
	var stored string
	err := db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(identityKey)
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		stored = string(v)
		return err
	})
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("kvstore: read identity of %s: %w", dir, err)
	}
	b, ferr := os.ReadFile(file)
	if ferr != nil && !errors.Is(ferr, os.ErrNotExist) {
		return fmt.Errorf("kvstore: %w", ferr)
	}
	want := strings.TrimSpace(string(b))
	switch {
	case ferr == nil && stored == "":
		return fmt.Errorf("%w: %s does not hold the database %s names (identity %s): its MANIFEST or tables are missing or damaged. "+
			"Restore the directory from a backup; to start afresh instead (losing its data), move %s and %s away",
			ErrDamaged, dir, file, want, dir, file)
	case ferr == nil && stored != want:
		return fmt.Errorf("%w: %s holds database %s but %s names %s: the directory was replaced. "+
			"Put the right directory back, or move %s away to adopt this one",
			ErrDamaged, dir, stored, file, want, file)
	case ferr == nil:
		return nil
	case readOnly:
		return nil // recorded at the next writable open
	}
	if stored == "" {
		r := make([]byte, 8)
		if _, err := rand.Read(r); err != nil {
			return err
		}
		stored = hex.EncodeToString(r)
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(identityKey, []byte(stored)) }); err != nil {
			return fmt.Errorf("kvstore: write identity of %s: %w", dir, err)
		}
		// The file must never name an identity the database lost in a crash.
		if err := db.Sync(); err != nil {
			return fmt.Errorf("kvstore: sync %s: %w", dir, err)
		}
	}
	return writeFileSync(file, []byte(stored+"\n"))
}

// writeFileSync replaces path atomically and durably.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("kvstore: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(path)); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("kvstore: write %s: %w", path, err)
	}
	return nil
}
