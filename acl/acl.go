// Package acl is the single authorisation policy of the im/ namespace
// (docs/protocol.md, "Topics"). It answers two questions: may this user
// subscribe to this filter, and may this user publish to this topic. The
// broker hooks enforce it; they never decide on their own.
package acl

import (
	"strings"

	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// Membership answers whether a user belongs to a group.
type Membership interface {
	IsMember(gid, user string) (bool, error)
}

// Policy is the authorisation policy. Admins may additionally read $SYS.
type Policy struct {
	Members Membership
	Admins  map[string]bool
}

// CanSubscribe reports whether user may subscribe to filter (which may hold
// wildcards and a $share prefix). Deny by default: only the user's own inbox
// and presence topics are readable.
func (p *Policy) CanSubscribe(user, filter string) bool {
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
	if len(seg) < 2 || seg[0] != "im" {
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
	case topic.GroupInbox, topic.ErrorNotice, topic.SyncReply:
		return imerr.New(imerr.Forbidden, "only the server publishes to %s", t.String())
	}
	return imerr.New(imerr.Invalid, "unknown im/ topic")
}
