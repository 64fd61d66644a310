package acl

import (
	"errors"
	"testing"

	"github.com/mqim/mqim/imerr"
)

// groupsWithExistence is members that also knows which groups exist.
type groupsWithExistence struct{ members }

func (g groupsWithExistence) Exists(gid string) bool { _, ok := g.members[gid]; return ok }

// failingMembers fails every lookup.
type failingMembers struct{}

func (failingMembers) IsMember(string, string) (bool, error) {
	return false, errors.New("disk on fire")
}

// accountsOf is users and the person managing each ("" for a person); a
// user "broken" fails its lookups.
type accountsOf map[string]string

func (a accountsOf) Exists(u string) (bool, error) {
	if u == "broken" {
		return false, errors.New("disk on fire")
	}
	_, ok := a[u]
	return ok, nil
}

func (a accountsOf) Owner(u string) (string, error) { return a[u], nil }

var people = accountsOf{"alice": "", "bob": "", "carol": "", "alice-phone": "alice", "bob-meter": "bob"}

func TestCanReadConversation(t *testing.T) {
	p := &Policy{Members: groupsWithExistence{members{"team": {"alice", "bob"}, "empty": nil}}, Accounts: people,
		Blocks: blockList{{"bob", "alice"}: true}}
	cases := []struct {
		name, user string
		c          Conversation
		want       imerr.Code // "" = allowed
	}{
		{"member", "alice", InGroup("team"), ""},
		{"other member", "bob", InGroup("team"), ""},
		{"outsider", "carol", InGroup("team"), imerr.Forbidden},
		{"group with nobody", "carol", InGroup("empty"), imerr.Forbidden},
		{"no such group", "alice", InGroup("nope"), imerr.NotFound},
		{"dm", "alice", DMWith("carol"), ""},
		{"dm with who blocked you: the history is yours", "alice", DMWith("bob"), ""},
		{"dm with yourself", "alice", DMWith("alice"), ""},
		{"dm with a device", "carol", DMWith("bob-meter"), ""},
		{"dm with nobody", "alice", DMWith("nobody"), imerr.NotFound},
		{"dm with an invalid id", "alice", DMWith("a/b"), imerr.NotFound},
		{"dm lookup fails", "alice", DMWith("broken"), imerr.Internal},
	}
	for _, c := range cases {
		if got := codeOf(p.CanReadConversation(c.user, c.c)); got != c.want {
			t.Errorf("%s: CanReadConversation(%s, %+v) = %q, want %q", c.name, c.user, c.c, got, c.want)
		}
	}
	// Without existence, an outsider is forbidden whether or not the group is there.
	plain := &Policy{Members: members{"team": {"alice"}}}
	if got := codeOf(plain.CanReadConversation("bob", InGroup("nope"))); got != imerr.Forbidden {
		t.Errorf("no existence, missing group: %q, want forbidden", got)
	}
	// Without Accounts, any valid user id is a DM peer.
	if got := codeOf(plain.CanReadConversation("bob", DMWith("anyone"))); got != "" {
		t.Errorf("no accounts, dm: %q, want allowed", got)
	}
	failing := &Policy{Members: failingMembers{}}
	if got := codeOf(failing.CanReadConversation("alice", InGroup("team"))); got != imerr.Internal {
		t.Errorf("membership lookup fails: %q, want internal", got)
	}
}

func TestCanManageDevice(t *testing.T) {
	p := &Policy{Members: members{}, Accounts: people}
	cases := []struct {
		name, user, device string
		want               imerr.Code
	}{
		{"own device", "alice", "alice-phone", ""},
		{"another's device", "bob", "alice-phone", imerr.Forbidden},
		{"a person", "alice", "bob", imerr.Forbidden},
		{"oneself", "alice", "alice", imerr.Forbidden},
		{"a device managing a device", "alice-phone", "alice-phone", imerr.Forbidden},
		{"no such device", "alice", "nope", imerr.NotFound},
		{"lookup fails", "alice", "broken", imerr.Internal},
	}
	for _, c := range cases {
		if got := codeOf(p.CanManageDevice(c.user, c.device)); got != c.want {
			t.Errorf("%s: CanManageDevice(%s, %s) = %q, want %q", c.name, c.user, c.device, got, c.want)
		}
	}
	if got := codeOf((&Policy{}).CanManageDevice("alice", "alice-phone")); got != imerr.Forbidden {
		t.Errorf("without accounts: %q, want forbidden", got)
	}
}

func codeOf(e *imerr.Error) imerr.Code {
	if e == nil {
		return ""
	}
	return e.Code
}
