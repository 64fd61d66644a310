// Package acl is the single authorisation policy of the im/ namespace
// (docs/protocol.md, "Topics"). It answers: may this user subscribe to
// this filter, may this user publish to this topic, and, for the HTTP API,
// may this user read this conversation or manage this device
// (resources.go). The broker hooks and the gateway enforce it; they never
// decide on their own.
package acl

import (
	"strings"
	"sync/atomic"

	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// Membership answers whether a user belongs to a group.
type Membership interface {
	IsMember(gid, user string) (bool, error)
}

// Blocks answers whether owner has blocked user (userlists.List).
type Blocks interface {
	Has(owner, user string) bool
}

// Policy is the authorisation policy: the built-in im/ contract, then the
// operator's rules for every other namespace. Admins may also read $SYS.
type Policy struct {
	Members Membership
	// Accounts, if set, answers which users exist and who manages a device
	// (CanReadConversation, CanManageDevice).
	Accounts Accounts
	Admins   map[string]bool
	// Role returns "person" or "device" for a user (for rules with a role).
	Role func(user string) string
	// Blocks, if set, is every user's block list: a blocked user cannot
	// reach the blocker one to one (DMs, receipts, typing, signals), add
	// it to groups, or see its presence. Nil: nobody is blocked.
	Blocks Blocks
	// Contacts is every user's contact list and ContactsOnly reports
	// whether a user takes one-to-one messages from its contacts only
	// (dm_policy contacts). Either nil: anyone may write to anyone.
	Contacts     Blocks
	ContactsOnly func(user string) bool
	rules        atomic.Pointer[Rules]
	mounts       atomic.Pointer[Mounts]
}

// blocked reports whether owner has blocked user.
func (p *Policy) blocked(owner, user string) bool {
	return p.Blocks != nil && owner != user && p.Blocks.Has(owner, user)
}

// reachable reports whether user may write to owner one to one under
// owner's dm_policy: always, unless owner takes contacts only and user is
// not known to it.
func (p *Policy) reachable(owner, user string) bool {
	if p.Contacts == nil || p.ContactsOnly == nil || !p.ContactsOnly(owner) {
		return true
	}
	return p.known(owner, user)
}

// known reports whether owner knows user: itself, one of its contacts, or
// a device it manages (a device of its own needs no accepting).
func (p *Policy) known(owner, user string) bool {
	if owner == user || p.Contacts == nil || p.Contacts.Has(owner, user) {
		return true
	}
	// Role is a cached lookup; Owner reads the account, so only for devices.
	if p.Accounts != nil && p.role(user) == "device" {
		if o, err := p.Accounts.Owner(user); err == nil && o == owner {
			return true
		}
	}
	return false
}

// CanSee reports whether viewer may see owner's presence and profile
// changes, and find owner in the directory: not when owner blocked viewer.
func (p *Policy) CanSee(viewer, owner string) bool { return !p.blocked(owner, viewer) }

// Request says how a DM or group invitation from user to owner is taken
// (docs/protocol.md, "Message requests"): request when user is not on
// owner's contact list (it arrives as a message request), and held when
// owner's dm_policy is contacts as well (its DMs are kept from owner's
// inbox, its invitation does not make owner a member, until owner
// accepts). A user is never a request to itself, nor a device to the user
// who manages it.
func (p *Policy) Request(owner, user string) (request, held bool) {
	if p.known(owner, user) {
		return false, false
	}
	return true, p.ContactsOnly != nil && p.ContactsOnly(owner)
}

// CanAddToGroup decides whether actor may put user into a group (creating
// it with user as a member, or adding user): not when user blocked actor.
// A stranger's invitation is a message request (Request), decided by the
// caller. Group membership itself is the groups store's business.
func (p *Policy) CanAddToGroup(actor, user string) *imerr.Error {
	if p.blocked(user, actor) {
		return imerr.New(imerr.Forbidden, "%q does not accept group invitations from you", user)
	}
	return nil
}

// SetRules swaps the operator rules (on reload); in-flight checks finish
// with the old set.
func (p *Policy) SetRules(r *Rules) { p.rules.Store(r) }

// Rules returns the operator rules in force.
func (p *Policy) Rules() *Rules { return p.rules.Load() }

func (p *Policy) role(user string) string {
	if p.Role == nil {
		return "person"
	}
	return p.Role(user)
}

// CanWrite decides a publish outside im/ (and wills): operator rules only.
// Topics under im/ are never writable this way; they go through CanPublish.
func (p *Policy) CanWrite(user, clientID, t string) bool {
	if strings.HasPrefix(t, topic.Prefix) || strings.HasPrefix(t, "$") {
		return false
	}
	return p.rules.Load().allow(user, p.role(user), clientID, t, true)
}

// CanSubscribe reports whether user (connected as clientID) may subscribe to
// filter, which may hold wildcards and a $share prefix; it also decides each
// delivery, called with the concrete topic. Deny by default: the user's own
// inbox and presence topics, plus what operator rules grant outside im/.
func (p *Policy) CanSubscribe(user, clientID, filter string) bool {
	if strings.HasPrefix(filter, "$share/") {
		// $share/{name}/{filter}: authorise the inner filter, so a shared
		// subscription can never read what a plain one could not.
		parts := strings.SplitN(filter, "/", 3)
		if len(parts) != 3 || parts[1] == "" {
			return false
		}
		filter = parts[2]
	}
	if strings.HasPrefix(filter, "$SYS/") || filter == "$SYS" {
		return p.Admins[user]
	}
	seg := strings.Split(filter, "/")
	if seg[0] != "im" {
		// A filter starting with "+" or "#" also matches im/ topics. It is
		// granted only by a rule that covers it (e.g. "#" for a test
		// account), and even then it yields nothing of im/ but the user's
		// own inbox and presence: each delivery is judged again, here,
		// with its concrete topic (mochi's read ACL per delivery; chat is
		// delivered from the user's own feed only).
		return p.rules.Load().allow(user, p.role(user), clientID, filter, false)
	}
	if len(seg) < 2 {
		return false
	}
	switch seg[1] {
	case "u":
		// The third segment must be the user's own name, literally: "+" or "#"
		// there would match every inbox.
		return len(seg) >= 3 && seg[2] == user
	case "presence":
		if len(seg) != 3 {
			return false
		}
		if seg[2] == "+" || seg[2] == "#" {
			// The wildcard subscription stands; each delivery is decided
			// with its concrete topic, below.
			return true
		}
		// A user who blocked this one hides its presence from it.
		return topic.ValidUser(seg[2]) && p.CanSee(user, seg[2])
	}
	return false
}

// CanPublish decides whether user may publish to the parsed topic t. It
// returns nil when allowed, else an error with a stable code.
func (p *Policy) CanPublish(user string, t topic.Topic) *imerr.Error {
	switch t.Kind {
	case topic.DM, topic.Receipt, topic.Typing, topic.Signal:
		if t.Peer != user {
			return imerr.New(imerr.Forbidden, "cannot publish as %q: the last topic segment must be your own user id", t.Peer)
		}
		if p.blocked(t.Owner, user) {
			// Nothing of it is stored or delivered; the sender learns only
			// that it may not (forbidden), as for any refused topic.
			return imerr.New(imerr.Forbidden, "%q does not accept messages from you", t.Owner)
		}
		if (t.Kind == topic.Typing || t.Kind == topic.Signal) && !p.reachable(t.Owner, user) {
			// A stranger's DM is a held message request (Request);
			// its typing and signals have nothing to wait in. Receipts
			// pass: they answer what the owner sent.
			return imerr.New(imerr.Forbidden, "%q takes messages from contacts only", t.Owner)
		}
		return nil
	case topic.Presence:
		if t.Owner != user {
			return imerr.New(imerr.Forbidden, "cannot set presence of %q", t.Owner)
		}
		return nil
	case topic.SyncRequest:
		if t.Owner != user {
			return imerr.New(imerr.Forbidden, "cannot sync %q's messages", t.Owner)
		}
		return nil
	case topic.Group, topic.GroupTyping:
		ok, err := p.Members.IsMember(t.Group, user)
		if err != nil {
			return imerr.New(imerr.Internal, "membership lookup failed")
		}
		if !ok {
			return imerr.New(imerr.Forbidden, "not a member of group %q", t.Group)
		}
		return nil
	case topic.GroupInbox, topic.ErrorNotice, topic.SyncReply, topic.GroupEvent, topic.ProfileEvent, topic.RequestEvent:
		return imerr.New(imerr.Forbidden, "only the server publishes to %s", t.String())
	}
	return imerr.New(imerr.Invalid, "unknown im/ topic")
}
