package search

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/kvstore"
)

func openHistory(t *testing.T, dir, epoch string) *history.Badger {
	t.Helper()
	db, err := kvstore.Open(dir, kvstore.Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s, err := history.OpenBadger(db, history.BadgerOptions{Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); db.Close() })
	return s
}

func openIndex(t *testing.T, dir string, src Source) *Index {
	t.Helper()
	x, err := Open(dir, src, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	if err := x.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	return x
}

func appendMsg(t *testing.T, s history.Store, conv history.ConvID, from, typ, body, ref string) envelope.Message {
	t.Helper()
	m := envelope.Message{From: from, Type: typ, Body: body, Ref: ref}
	if gid, ok := conv.Peer(""); ok {
		m.Group = gid
	}
	res, err := s.Append(context.Background(), history.AppendRequest{Conv: conv, Msg: m, Recipients: []string{from}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg
}

func bodies(ms []envelope.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Body)
	}
	return out
}

// TestSearch: words, case, CJK pairs, scope by reader and conversation,
// newest first, paging by id, and edits and retractions followed.
func TestSearch(t *testing.T) {
	dir := t.TempDir()
	h := openHistory(t, filepath.Join(dir, "im"), "")
	ab, ac, team := history.DM("alice", "bob"), history.DM("alice", "carol"), history.Group("team")
	msgs := map[string]envelope.Message{}
	for _, c := range []struct {
		name string
		conv history.ConvID
		body string
	}{
		{"lunch", ab, "Lunch at noon tomorrow?"},
		{"meeting", ab, "明天的会议改到三点"},
		{"jp", ac, "東京でミーティングしましょう"},
		{"lunch2", ac, "lunch is on me"},
		{"team", team, "LUNCH for the team, 会议 after"},
		{"typo", ab, "to be edited: mistkae"},
		{"gone", ab, "secret lunch plans"},
	} {
		msgs[c.name] = appendMsg(t, h, c.conv, "alice", "text", c.body, "")
	}
	appendMsg(t, h, ab, "alice", envelope.TypeEdit, "edited: mistake fixed", msgs["typo"].ID)
	appendMsg(t, h, ab, "alice", envelope.TypeRetract, "", msgs["gone"].ID)
	appendMsg(t, h, ab, "bob", envelope.TypeReaction, "👍", msgs["lunch"].ID)
	x := openIndex(t, filepath.Join(dir, "search"), h)

	cases := []struct {
		name string
		q    Query
		want []string
	}{
		{"one word, any case, newest first, all readable", Query{Words: "lunch", User: "alice", Groups: []string{"team"}},
			[]string{"LUNCH for the team, 会议 after", "lunch is on me", "Lunch at noon tomorrow?"}},
		{"two words", Query{Words: "LUNCH noon", User: "alice"}, []string{"Lunch at noon tomorrow?"}},
		{"a word not there", Query{Words: "lunch dinner", User: "alice"}, nil},
		{"bob reads his DMs only", Query{Words: "lunch", User: "bob"}, []string{"Lunch at noon tomorrow?"}},
		{"a group one is not in now", Query{Words: "lunch", User: "carol"}, []string{"lunch is on me"}},
		{"one conversation", Query{Words: "lunch", User: "alice", Conv: ac}, []string{"lunch is on me"}},
		{"two CJK characters inside a run", Query{Words: "会议", User: "alice", Groups: []string{"team"}},
			[]string{"LUNCH for the team, 会议 after", "明天的会议改到三点"}},
		{"three CJK characters", Query{Words: "会议改", User: "alice"}, []string{"明天的会议改到三点"}},
		{"CJK characters not adjacent", Query{Words: "会改", User: "alice"}, nil},
		{"the first two of a run", Query{Words: "明天", User: "bob"}, []string{"明天的会议改到三点"}},
		{"katakana inside a run", Query{Words: "ティング", User: "carol"}, []string{"東京でミーティングしましょう"}},
		{"edited: the latest body", Query{Words: "mistake", User: "alice"}, []string{"edited: mistake fixed"}},
		{"edited: the old body no more", Query{Words: "mistkae", User: "alice"}, nil},
		{"retracted never", Query{Words: "secret", User: "alice"}, nil},
		{"before an id", Query{Words: "lunch", User: "alice", Groups: []string{"team"}, Before: msgs["lunch2"].ID},
			[]string{"Lunch at noon tomorrow?"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.q.Limit = 10
			got, more, err := x.Search(context.Background(), c.q)
			if err != nil {
				t.Fatal(err)
			}
			if want := append([]string{}, c.want...); !slices.Equal(bodies(got), want) || more {
				t.Fatalf("got %q (more %v), want %q", bodies(got), more, want)
			}
		})
	}

	// Paging: limit 1 says there is more; the next page starts before it.
	q := Query{Words: "lunch", User: "alice", Groups: []string{"team"}, Limit: 1}
	var all []string
	for i := 0; ; i++ {
		page, more, err := x.Search(context.Background(), q)
		if err != nil || len(page) != 1 {
			t.Fatalf("page %d: %v %v", i, page, err)
		}
		all = append(all, page[0].Body)
		if !more {
			break
		}
		q.Before = page[0].ID
	}
	if len(all) != 3 {
		t.Fatalf("paged through %q", all)
	}
	if _, _, err := x.Search(context.Background(), Query{Words: ", ;", User: "alice", Limit: 1}); err != ErrNoWords {
		t.Fatalf("punctuation only: %v", err)
	}
}

// TestIndexFollowsHistory: the index catches up after a restart that
// left it behind, and is rebuilt when it is ahead of history or of
// another history epoch.
func TestIndexFollowsHistory(t *testing.T) {
	dir := t.TempDir()
	idxDir := filepath.Join(dir, "search")
	find := func(x *Index, word string) int {
		t.Helper()
		got, _, err := x.Search(context.Background(), Query{Words: word, User: "a", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	h := openHistory(t, filepath.Join(dir, "im"), "e1")
	var first envelope.Message
	for i := range 5 {
		m := appendMsg(t, h, history.DM("a", "b"), "a", "text", fmt.Sprint("apple ", i), "")
		if i == 0 {
			first = m
		}
	}
	x := openIndex(t, idxDir, h)
	if n := find(x, "apple"); n != 5 {
		t.Fatalf("found %d", n)
	}
	// An edit of a message indexed in an earlier batch: reindexed at its
	// own place (the oldest), not the edit's.
	appendMsg(t, h, history.DM("a", "b"), "a", envelope.TypeEdit, "apple banana", first.ID)
	if err := x.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _, err := x.Search(context.Background(), Query{Words: "apple", User: "a", Limit: 10})
	if err != nil || len(got) != 5 || got[4].ID != first.ID || got[4].Body != "apple banana" {
		t.Fatalf("after the edit: %q %v", bodies(got), err)
	}
	x.Close()
	// Behind: more history while the index was closed.
	for i := range 3 {
		appendMsg(t, h, history.DM("a", "b"), "a", "text", fmt.Sprint("apple pear ", i), "")
	}
	x = openIndex(t, idxDir, h)
	if n, pos := find(x, "apple"), x.Position(); n != 8 || pos != h.JournalHead() {
		t.Fatalf("after catching up: found %d, position %d of %d", n, pos, h.JournalHead())
	}
	x.Close()

	// Ahead: a history of the same epoch that holds less.
	short := openHistory(t, filepath.Join(dir, "im2"), "e1")
	appendMsg(t, short, history.DM("a", "b"), "a", "text", "apple only", "")
	x = openIndex(t, idxDir, short)
	if n := find(x, "apple"); n != 1 {
		t.Fatalf("rebuilt over a shorter history: found %d", n)
	}
	x.Close()

	// Another epoch.
	other := openHistory(t, filepath.Join(dir, "im3"), "e2")
	appendMsg(t, other, history.DM("a", "b"), "a", "text", "pear", "")
	x = openIndex(t, idxDir, other)
	if n, m := find(x, "apple"), find(x, "pear"); n != 0 || m != 1 {
		t.Fatalf("rebuilt for another epoch: apple %d, pear %d", n, m)
	}
}
