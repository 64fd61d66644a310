package requests

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func openTest(t testing.TB, max int) *Store {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return Open(db, nil, max, nil)
}

// TestRaise: a sender's DMs gather in one request (count, latest preview,
// first kept); requests are per recipient, bounded, listed newest first,
// and removed once.
func TestRaise(t *testing.T) {
	s := openTest(t, 2)
	ctx := context.Background()
	dm := func(to, from string) Request {
		return Request{ID: DMID(from), To: to, From: from, Kind: KindDM, Held: true}
	}
	grp := Request{ID: GroupID("g1"), To: "dave", From: "eve", Kind: KindGroup, Group: "g1"}
	steps := []struct {
		rq      Request
		body    string
		now     int64
		outcome Outcome
		count   int
		errIs   error
	}{
		{dm("dave", "eve"), "hi", 10, Added, 1, nil},
		{dm("dave", "eve"), strings.Repeat("é", 150), 20, Updated, 2, nil},
		{grp, "", 30, Added, 1, nil},
		{grp, "", 35, Unchanged, 1, nil}, // holds nothing back: not written again
		{dm("dave", "mallory"), "spam", 40, Unchanged, 0, ErrQuota},
		{dm("bob", "mallory"), "spam", 40, Added, 1, nil},
	}
	for i, c := range steps {
		got, outcome, err := s.Raise(ctx, c.rq, c.body, c.now)
		if !errors.Is(err, c.errIs) || (err == nil && (outcome != c.outcome || got.Count != c.count)) {
			t.Fatalf("step %d: %+v outcome=%v err=%v", i, got, outcome, err)
		}
	}
	r, err := s.Get("dave", DMID("eve"))
	if err != nil || r.First != 10 || r.Last != 20 || len([]rune(r.Preview)) != MaxPreview+1 || !strings.HasSuffix(r.Preview, "…") {
		t.Fatalf("gathered request %+v %v", r, err)
	}
	list, _ := s.List("dave")
	if len(list) != 2 || list[0].ID != "g:g1" || list[1].ID != "dm:eve" {
		t.Fatalf("list %+v", list)
	}
	if _, err := s.Remove(ctx, "dave", DMID("eve")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{DMID("eve"), "nonsense", "dm:"} {
		if _, err := s.Remove(ctx, "dave", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("remove %q: %v", id, err)
		}
	}
	if _, _, err := s.Raise(ctx, dm("dave", "mallory"), "now there is room", 50); err != nil {
		t.Fatal(err)
	}
	if s.Has("bob", DMID("eve")) || !s.Has("bob", DMID("mallory")) {
		t.Fatal("bob's requests mixed with dave's")
	}
}
