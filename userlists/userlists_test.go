package userlists

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/mqim/mqim/kvstore"
)

func TestList(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := kvstore.Open(dir, kvstore.Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(db, Contacts, 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		owner, user string
		want        error
	}{
		{"alice", "bob", nil},
		{"alice", "bob", nil}, // again: no change, no error
		{"alice", "alice", ErrSelf},
		{"alice", "carol", nil},
		{"alice", "dave", ErrQuota},
		{"carol", "bob", nil},
	}
	for i, s := range steps {
		if err := l.Add(s.owner, s.user, int64(i+1)); !errors.Is(err, s.want) {
			t.Fatalf("Add(%s, %s) = %v, want %v", s.owner, s.user, err, s.want)
		}
	}
	check := func(l *List) {
		t.Helper()
		if !l.Has("alice", "bob") || l.Has("bob", "alice") || l.Has("alice", "dave") {
			t.Fatal("Has is wrong")
		}
		if es := l.Entries("alice"); len(es) != 2 || es[0] != (Entry{"bob", 1}) || es[1] != (Entry{"carol", 4}) {
			t.Fatalf("Entries: %+v", es)
		}
		h := l.Holders("bob")
		slices.Sort(h)
		if !slices.Equal(h, []string{"alice", "carol"}) {
			t.Fatalf("Holders(bob) = %v", h)
		}
	}
	check(l)
	// Another list on the same database does not see these entries.
	bl, err := Open(db, Blocks, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bl.Has("alice", "bob") {
		t.Fatal("the block list sees contacts")
	}
	db.Close()
	db, err = kvstore.Open(dir, kvstore.Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if l, err = Open(db, Contacts, 2, nil, nil); err != nil {
		t.Fatal(err)
	}
	check(l) // reloaded
	if ok, err := l.Remove("alice", "bob"); !ok || err != nil {
		t.Fatalf("Remove: %v %v", ok, err)
	}
	if ok, _ := l.Remove("alice", "bob"); ok {
		t.Fatal("removed twice")
	}
	if l.Has("alice", "bob") || slices.Contains(l.Holders("bob"), "alice") {
		t.Fatal("still listed after Remove")
	}
	if err := l.Add("alice", "dave", 9); err != nil {
		t.Fatalf("room after Remove: %v", err)
	}
}
