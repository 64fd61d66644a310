// Package topic is the one place that parses the im/ topic namespace of
// docs/protocol.md. Every hook and the HTTP publish path use it, so a topic
// means the same thing everywhere.
package topic

import (
	"errors"
	"regexp"
	"strings"
)

// Kind is what an im/ topic carries.
type Kind int

// The topic kinds of the protocol table.
const (
	Unknown      Kind = iota
	DM                // im/u/{to}/dm/{from}
	Group             // im/g/{gid}
	GroupInbox        // im/u/{user}/g/{gid}
	Receipt           // im/u/{to}/receipt/{from}
	Typing            // im/u/{to}/typing/{from}
	Signal            // im/u/{to}/signal/{from}
	ErrorNotice       // im/u/{user}/error
	Presence          // im/presence/{user}
	SyncRequest       // im/sync/{user}: a device asks for what it missed
	SyncReply         // im/u/{user}/sync: the server's answer
	GroupTyping       // im/g/{gid}/typing: typing in a group, fanned out by the server
	GroupEvent        // im/u/{user}/groups: the server tells a member a group changed
	ProfileEvent      // im/u/{user}/profile: the server tells a user a peer's profile changed
	RequestEvent      // im/u/{user}/requests: the server tells a user its message requests changed
)

// Topic is a parsed concrete im/ topic. Owner is the inbox owner ({to} or
// {user}); Peer is the {from} segment of user-to-user topics; Group is {gid}.
type Topic struct {
	Kind  Kind
	Owner string
	Peer  string
	Group string
}

// Prefix is the namespace root of the IM contract.
const Prefix = "im/"

var (
	userRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)
	groupRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
)

// ErrNotIM is returned for topics outside the im/ namespace or of unknown shape.
var ErrNotIM = errors.New("topic: not an im/ topic of a known shape")

// ValidUser reports whether s is a well-formed user id.
func ValidUser(s string) bool { return userRE.MatchString(s) }

// ValidGroup reports whether s is a well-formed group id.
func ValidGroup(s string) bool { return groupRE.MatchString(s) }

// Parse parses a concrete (wildcard-free) topic name.
func Parse(name string) (Topic, error) {
	if !strings.HasPrefix(name, Prefix) {
		return Topic{}, ErrNotIM
	}
	p := strings.Split(name[len(Prefix):], "/")
	switch {
	case len(p) == 2 && p[0] == "g" && ValidGroup(p[1]):
		return Topic{Kind: Group, Group: p[1]}, nil
	case len(p) == 3 && p[0] == "g" && p[2] == "typing" && ValidGroup(p[1]):
		return Topic{Kind: GroupTyping, Group: p[1]}, nil
	case len(p) == 2 && p[0] == "presence" && ValidUser(p[1]):
		return Topic{Kind: Presence, Owner: p[1]}, nil
	case len(p) == 2 && p[0] == "sync" && ValidUser(p[1]):
		return Topic{Kind: SyncRequest, Owner: p[1]}, nil
	case len(p) == 3 && p[0] == "u" && p[2] == "error" && ValidUser(p[1]):
		return Topic{Kind: ErrorNotice, Owner: p[1]}, nil
	case len(p) == 3 && p[0] == "u" && p[2] == "sync" && ValidUser(p[1]):
		return Topic{Kind: SyncReply, Owner: p[1]}, nil
	case len(p) == 3 && p[0] == "u" && p[2] == "groups" && ValidUser(p[1]):
		return Topic{Kind: GroupEvent, Owner: p[1]}, nil
	case len(p) == 3 && p[0] == "u" && p[2] == "profile" && ValidUser(p[1]):
		return Topic{Kind: ProfileEvent, Owner: p[1]}, nil
	case len(p) == 3 && p[0] == "u" && p[2] == "requests" && ValidUser(p[1]):
		return Topic{Kind: RequestEvent, Owner: p[1]}, nil
	case len(p) == 4 && p[0] == "u" && ValidUser(p[1]):
		owner := p[1]
		if p[2] == "g" {
			if ValidGroup(p[3]) {
				return Topic{Kind: GroupInbox, Owner: owner, Group: p[3]}, nil
			}
			return Topic{}, ErrNotIM
		}
		if !ValidUser(p[3]) {
			return Topic{}, ErrNotIM
		}
		k := map[string]Kind{"dm": DM, "receipt": Receipt, "typing": Typing, "signal": Signal}[p[2]]
		if k == Unknown {
			return Topic{}, ErrNotIM
		}
		return Topic{Kind: k, Owner: owner, Peer: p[3]}, nil
	}
	return Topic{}, ErrNotIM
}

// String renders t back into its topic name.
func (t Topic) String() string {
	switch t.Kind {
	case DM:
		return "im/u/" + t.Owner + "/dm/" + t.Peer
	case Receipt:
		return "im/u/" + t.Owner + "/receipt/" + t.Peer
	case Typing:
		return "im/u/" + t.Owner + "/typing/" + t.Peer
	case Signal:
		return "im/u/" + t.Owner + "/signal/" + t.Peer
	case Group:
		return "im/g/" + t.Group
	case GroupInbox:
		return "im/u/" + t.Owner + "/g/" + t.Group
	case ErrorNotice:
		return "im/u/" + t.Owner + "/error"
	case Presence:
		return "im/presence/" + t.Owner
	case SyncRequest:
		return "im/sync/" + t.Owner
	case SyncReply:
		return "im/u/" + t.Owner + "/sync"
	case GroupTyping:
		return "im/g/" + t.Group + "/typing"
	case GroupEvent:
		return "im/u/" + t.Owner + "/groups"
	case ProfileEvent:
		return "im/u/" + t.Owner + "/profile"
	case RequestEvent:
		return "im/u/" + t.Owner + "/requests"
	}
	return ""
}

// Inbox returns the root of user's inbox, the one filter a device subscribes to.
func Inbox(user string) string { return "im/u/" + user + "/#" }

// ErrorTopic returns the error notice topic of user.
func ErrorTopic(user string) string { return "im/u/" + user + "/error" }

// PresenceTopic returns the retained presence topic of user.
func PresenceTopic(user string) string { return "im/presence/" + user }
