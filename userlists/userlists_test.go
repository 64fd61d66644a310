package userlists

import (
	"context"
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
	// Another node's write reaches the database; Changed takes it in, and
	// ignores keys of other lists.
	other := kvstore.Local{DB: db}
	if err := other.Commit(context.Background(), kvstore.Set([]byte("ct/erin/frank"), []byte{0, 0, 0, 0, 0, 0, 0, 7})); err != nil {
		t.Fatal(err)
	}
	l.Changed([]byte("ct/erin/frank"))
	l.Changed([]byte("bl/erin/frank"))
	if !l.Has("erin", "frank") || l.Entries("erin")[0].Since != 7 {
		t.Fatal("another node's contact not taken in")
	}
	if err := other.Commit(context.Background(), kvstore.Batch{Delete: [][]byte{[]byte("ct/erin/frank")}}); err != nil {
		t.Fatal(err)
	}
	l.Changed([]byte("ct/erin/frank"))
	if l.Has("erin", "frank") || len(l.Holders("frank")) != 0 {
		t.Fatal("another node's removal not taken in")
	}
}
