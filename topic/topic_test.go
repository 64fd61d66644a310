package topic

import "testing"

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want Topic
		err  bool
	}{
		{"im/u/bob/dm/alice", Topic{Kind: DM, Owner: "bob", Peer: "alice"}, false},
		{"im/u/bob/receipt/alice", Topic{Kind: Receipt, Owner: "bob", Peer: "alice"}, false},
		{"im/u/bob/typing/alice", Topic{Kind: Typing, Owner: "bob", Peer: "alice"}, false},
		{"im/u/bob/signal/alice", Topic{Kind: Signal, Owner: "bob", Peer: "alice"}, false},
		{"im/u/bob/g/team-1", Topic{Kind: GroupInbox, Owner: "bob", Group: "team-1"}, false},
		{"im/u/bob/error", Topic{Kind: ErrorNotice, Owner: "bob"}, false},
		{"im/g/team-1", Topic{Kind: Group, Group: "team-1"}, false},
		{"im/presence/carol", Topic{Kind: Presence, Owner: "carol"}, false},
		{"im/sync/carol", Topic{Kind: SyncRequest, Owner: "carol"}, false},
		{"im/g/team-1/typing", Topic{Kind: GroupTyping, Group: "team-1"}, false},
		{"im/g/team-1/other", Topic{}, true},
		{"im/u/carol/sync", Topic{Kind: SyncReply, Owner: "carol"}, false},
		{"im/u/carol/groups", Topic{Kind: GroupEvent, Owner: "carol"}, false},
		{"im/u/carol/profile", Topic{Kind: ProfileEvent, Owner: "carol"}, false},
		{"im/u/carol/requests", Topic{Kind: RequestEvent, Owner: "carol"}, false},
		{"im/u/Bob/dm/alice", Topic{}, true},
		{"im/u/bob/dm/", Topic{}, true},
		{"im/u/bob/dm/alice/extra", Topic{}, true},
		{"im/u/bob/chat/alice", Topic{}, true},
		{"im/g/", Topic{}, true},
		{"im/g/a/b", Topic{}, true},
		{"im/u/+/dm/alice", Topic{}, true},
		{"other/u/bob/dm/alice", Topic{}, true},
		{"im/presence/", Topic{}, true},
		{"", Topic{}, true},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, err=%v", c.in, got, err, c.want, c.err)
		}
		if err == nil && got.String() != c.in {
			t.Errorf("String() = %q, want %q", got.String(), c.in)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"im/u/bob/dm/alice", "im/g/x", "im/presence/a", "im/u/a/error", "im/u/a/g/b", "im//", "im/u/+/#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := Parse(s)
		if err != nil {
			return
		}
		// Whatever parses must render back to itself and re-parse equal.
		if tp.String() != s {
			t.Fatalf("round trip %q -> %q", s, tp.String())
		}
		if again, err := Parse(tp.String()); err != nil || again != tp {
			t.Fatalf("re-parse %q: %+v %v", s, again, err)
		}
	})
}
