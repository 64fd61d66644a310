package acl

import (
	"testing"

	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

type members map[string][]string

func (m members) IsMember(gid, user string) (bool, error) {
	for _, u := range m[gid] {
		if u == user {
			return true, nil
		}
	}
	return false, nil
}

func TestCanSubscribe(t *testing.T) {
	p := &Policy{Members: members{}, Admins: map[string]bool{"root": true}}
	checkSubscribe(t, p, []subCase{
		{"alice", "im/u/alice/#", true},
		{"alice", "im/u/alice/dm/+", true},
		{"alice", "im/u/alice/g/team", true},
		{"alice", "$share/grp/im/u/alice/#", true},
		{"alice", "im/presence/+", true},
		{"alice", "im/presence/#", true},
		{"alice", "im/presence/bob", true},
		{"alice", "im/u/bob/#", false},
		{"alice", "im/u/+/#", false},
		{"alice", "im/u/#", false},
		{"alice", "im/#", false},
		{"alice", "#", false},
		{"alice", "+/u/alice/#", false},
		{"alice", "$share/grp/im/u/bob/#", false},
		{"alice", "$share//im/u/alice/#", false},
		{"alice", "$share/grp", false},
		{"alice", "$SYS/#", false},
		{"root", "$SYS/#", true},
		{"alice", "im/g/team", false},
		{"alice", "im/presence/+/x", false},
		{"alice", "other/thing", false},
	})
}

func TestCanPublish(t *testing.T) {
	p := &Policy{Members: members{"team": {"alice", "bob"}}}
	checkPublish(t, p, []pubCase{
		{"alice", "im/u/bob/dm/alice", ""},
		{"alice", "im/u/bob/dm/carol", imerr.Forbidden},
		{"alice", "im/u/bob/receipt/alice", ""},
		{"alice", "im/u/bob/typing/carol", imerr.Forbidden},
		{"alice", "im/u/bob/signal/alice", ""},
		{"alice", "im/g/team", ""},
		{"carol", "im/g/team", imerr.Forbidden},
		{"alice", "im/g/team/typing", ""},
		{"carol", "im/g/team/typing", imerr.Forbidden},
		{"alice", "im/g/nogroup", imerr.Forbidden},
		{"alice", "im/u/bob/g/team", imerr.Forbidden},
		{"alice", "im/u/alice/error", imerr.Forbidden},
		{"alice", "im/presence/alice", ""},
		{"alice", "im/presence/bob", imerr.Forbidden},
		{"alice", "im/sync/alice", ""},
		{"alice", "im/sync/bob", imerr.Forbidden},
		{"alice", "im/u/alice/sync", imerr.Forbidden},
		{"alice", "im/u/alice/groups", imerr.Forbidden},
		{"alice", "im/u/alice/profile", imerr.Forbidden},
		{"alice", "im/u/alice/requests", imerr.Forbidden},
	})
}

// pubCase is a publish by user to topic and the code it gets ("" allowed).
type pubCase struct {
	user, topic string
	want        imerr.Code
}

func checkPublish(t *testing.T, p *Policy, cases []pubCase) {
	t.Helper()
	for _, c := range cases {
		tp, err := topic.Parse(c.topic)
		if err != nil {
			t.Fatalf("parse %s: %v", c.topic, err)
		}
		if got := codeOf(p.CanPublish(c.user, tp)); got != c.want {
			t.Errorf("CanPublish(%s, %s) = %q, want %q", c.user, c.topic, got, c.want)
		}
	}
}

// subCase is a subscription by user to filter and whether it is granted.
type subCase struct {
	user, filter string
	want         bool
}

func checkSubscribe(t *testing.T, p *Policy, cases []subCase) {
	t.Helper()
	for _, c := range cases {
		if got := p.CanSubscribe(c.user, c.user+":dev", c.filter); got != c.want {
			t.Errorf("CanSubscribe(%s, %q) = %v, want %v", c.user, c.filter, got, c.want)
		}
	}
}

// blockList is "owner blocks user" pairs.
type blockList map[[2]string]bool

func (b blockList) Has(owner, user string) bool { return b[[2]string{owner, user}] }

// TestBlocks: a block is one-way; the blocked user cannot reach the blocker
// one to one, see its presence, or add it to groups; group traffic and the
// blocker's own publishes are not affected.
func TestBlocks(t *testing.T) {
	p := &Policy{Members: members{"team": {"alice", "mallory"}}, Blocks: blockList{{"alice", "mallory"}: true}}
	checkPublish(t, p, []pubCase{
		{"mallory", "im/u/alice/dm/mallory", imerr.Forbidden},
		{"mallory", "im/u/alice/receipt/mallory", imerr.Forbidden},
		{"mallory", "im/u/alice/typing/mallory", imerr.Forbidden},
		{"mallory", "im/u/alice/signal/mallory", imerr.Forbidden},
		{"mallory", "im/u/bob/dm/mallory", ""},
		{"mallory", "im/g/team", ""},
		{"mallory", "im/g/team/typing", ""},
		{"alice", "im/u/mallory/dm/alice", ""},
		{"alice", "im/u/mallory/signal/alice", ""},
	})
	checkSubscribe(t, p, []subCase{
		{"mallory", "im/presence/alice", false},
		{"mallory", "im/presence/+", true},
		{"mallory", "im/presence/bob", true},
		{"alice", "im/presence/mallory", true},
		{"mallory", "im/presence/mallory", true},
	})
	if e := p.CanAddToGroup("mallory", "alice"); e == nil || e.Code != imerr.Forbidden {
		t.Errorf("mallory adds alice: %v, want forbidden", e)
	}
	for _, c := range [][2]string{{"alice", "mallory"}, {"mallory", "bob"}, {"alice", "alice"}} {
		if e := p.CanAddToGroup(c[0], c[1]); e != nil {
			t.Errorf("%s adds %s: %v", c[0], c[1], e)
		}
	}
}

// TestContactsOnly: a user with dm_policy contacts takes typing and
// signals from its contacts only; a stranger's DM passes as a held
// message request, and its group invitation is a held request too
// (Request); receipts pass. Under anyone, a stranger is a request that
// is not held. A device is known to the user who manages it.
func TestContactsOnly(t *testing.T) {
	p := &Policy{Members: members{}, Contacts: blockList{{"dave", "bob"}: true},
		Accounts: accountsOf{"dave-meter": "dave", "eve": ""},
		Role: func(u string) string {
			if u == "dave-meter" {
				return "device"
			}
			return "person"
		},
		ContactsOnly: func(u string) bool { return u == "dave" }}
	checkPublish(t, p, []pubCase{
		{"dave-meter", "im/u/dave/typing/dave-meter", ""},
		{"bob", "im/u/dave/dm/bob", ""},
		{"bob", "im/u/dave/signal/bob", ""},
		{"eve", "im/u/dave/dm/eve", ""},
		{"eve", "im/u/dave/typing/eve", imerr.Forbidden},
		{"eve", "im/u/dave/signal/eve", imerr.Forbidden},
		{"eve", "im/u/dave/receipt/eve", ""},
		{"eve", "im/u/bob/dm/eve", ""},
		{"dave", "im/u/eve/dm/dave", ""},
	})
	for _, c := range []struct {
		owner, user   string
		request, held bool
	}{
		{"dave", "eve", true, true},
		{"dave", "bob", false, false},
		{"dave", "dave-meter", false, false}, // a device of dave's own
		{"dave", "dave", false, false},
		{"bob", "eve", true, false},
	} {
		if r, h := p.Request(c.owner, c.user); r != c.request || h != c.held {
			t.Errorf("Request(%s, %s) = %v, %v; want %v, %v", c.owner, c.user, r, h, c.request, c.held)
		}
		if e := p.CanAddToGroup(c.user, c.owner); e != nil {
			t.Errorf("%s invites %s: %v", c.user, c.owner, e)
		}
	}
}

// TestWholeNamespaceRule: a rule "#" opens every operator topic to its
// user, filters starting with wildcards included, but never im/ (decided
// before the rules) and never $ topics for writing; a deny refuses only the
// filters it covers, and its topics stay closed to every delivery.
func TestWholeNamespaceRule(t *testing.T) {
	rules, err := CompileRules([]Rule{
		{User: "paho", Access: "deny", Topics: []string{"test/nosubscribe"}},
		{User: "paho", Access: "readwrite", Topics: []string{"#"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{Members: members{}}
	p.SetRules(rules)
	checkSubscribe(t, p, []subCase{
		{"paho", "#", true},
		{"paho", "+/+", true},
		{"paho", "TopicA/+", true},
		{"paho", "/TopicA", true},
		{"paho", "test/#", true},             // overlaps the deny: granted, filtered per delivery
		{"paho", "test/nosubscribe", false},  // covered by the deny
		{"paho", "im/u/bob/dm/alice", false}, // a delivery of someone else's inbox
		{"paho", "im/u/paho/dm/alice", true}, // its own
		{"paho", "im/u/+/#", false},          // im/ filters follow the contract
		{"alice", "#", false},                // no rule for alice
	})
	for _, c := range []struct {
		topic string
		want  bool
	}{{"TopicA", true}, {"test/nosubscribe", false}, {"im/u/bob/dm/paho", false}, {"$SYS/x", false}} {
		if got := p.CanWrite("paho", "paho:dev", c.topic); got != c.want {
			t.Errorf("CanWrite(paho, %q) = %v, want %v", c.topic, got, c.want)
		}
	}
	if _, err := CompileRules([]Rule{{Access: "read", Topics: []string{"im/#"}}}); err == nil {
		t.Error("a rule naming im/ was accepted")
	}
}
