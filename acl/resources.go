package acl

import (
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// The HTTP API's resources: conversations (their history and their place in
// a user's list) and device accounts. These rules were written inline in
// the gateway's handlers; they live here so the API, the broker and any
// new transport ask the same question and get the same answer.

// Accounts answers whether a user exists and which person manages a device
// account ("" for a person) (accounts.Store).
type Accounts interface {
	Exists(user string) (bool, error)
	Owner(user string) (string, error)
}

// groupExistence is the optional side of Membership that tells a group
// that is not there from one the user is not in (groups.Store has it).
type groupExistence interface {
	Exists(gid string) bool
}

// Conversation names a conversation the way the API does: a DM with Peer,
// or the group Group (exactly one is set).
type Conversation struct {
	Peer, Group string
}

// DMWith is the DM conversation with peer.
func DMWith(peer string) Conversation { return Conversation{Peer: peer} }

// InGroup is group gid's conversation.
func InGroup(gid string) Conversation { return Conversation{Group: gid} }

// CanReadConversation decides whether user may read c (its history, its
// entry in the conversation list, the group itself): a group's members
// may, and nobody else (not_found for a group that does not exist, so an
// outsider learns no more than a member would of a deleted one); a DM with
// any existing user (not_found otherwise) -- a DM's history is the user's
// own mailbox, so blocks do not hide what was already exchanged.
func (p *Policy) CanReadConversation(user string, c Conversation) *imerr.Error {
	if c.Group != "" {
		ok, err := p.Members.IsMember(c.Group, user)
		if err != nil {
			return imerr.New(imerr.Internal, "membership lookup failed")
		}
		if ok {
			return nil
		}
		if ge, has := p.Members.(groupExistence); has && !ge.Exists(c.Group) {
			return imerr.New(imerr.NotFound, "no such group %q", c.Group)
		}
		return imerr.New(imerr.Forbidden, "not a member of group %q", c.Group)
	}
	return p.userExists(c.Peer)
}

// CanManageDevice decides whether user may manage the device account
// device (its keys, its revocation): only the person who created it.
// Without Accounts nobody may.
func (p *Policy) CanManageDevice(user, device string) *imerr.Error {
	if p.Accounts == nil {
		return imerr.New(imerr.Forbidden, "%q is not a device you manage", device)
	}
	if e := p.userExists(device); e != nil {
		if e.Code == imerr.NotFound {
			return imerr.New(imerr.NotFound, "no such device %q", device)
		}
		return e
	}
	owner, err := p.Accounts.Owner(device)
	if err != nil {
		return imerr.New(imerr.Internal, "account lookup failed")
	}
	if owner != user {
		return imerr.New(imerr.Forbidden, "%q is not a device you manage", device)
	}
	return nil
}

// userExists is nil for an existing user, else not_found (or internal on a
// failed lookup). Without Accounts every valid user id exists.
func (p *Policy) userExists(user string) *imerr.Error {
	if !topic.ValidUser(user) {
		return imerr.New(imerr.NotFound, "no such user %q", user)
	}
	if p.Accounts == nil {
		return nil
	}
	ok, err := p.Accounts.Exists(user)
	if err != nil {
		return imerr.New(imerr.Internal, "account lookup failed")
	}
	if !ok {
		return imerr.New(imerr.NotFound, "no such user %q", user)
	}
	return nil
}
