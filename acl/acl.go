// Package acl is the single authorisation policy of the im/ namespace
// (docs/protocol.md, "Topics"). It answers two questions: may this user
// subscribe to this filter, and may this user publish to this topic. The
// broker hooks enforce it; they never decide on their own.
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

// Policy is the authorisation policy: the built-in im/ contract, then the
// operator's rules for every other namespace. Admins may also read $SYS.
type Policy struct {
	Members Membership
	Admins  map[string]bool
	// Role returns "person" or "device" for a user (for rules with a role).
	Role  func(user string) string
	rules atomic.Pointer[Rules]
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
		return seg[2] == "+" || seg[2] == "#" || topic.ValidUser(seg[2])
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
	case topic.GroupInbox, topic.ErrorNotice, topic.SyncReply, topic.GroupEvent:
		return imerr.New(imerr.Forbidden, "only the server publishes to %s", t.String())
	}
	return imerr.New(imerr.Invalid, "unknown im/ topic")
}
