package im

import (
	"context"
	"errors"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/requests"
	"github.com/mqim/mqim/topic"
)

// Message requests (docs/protocol.md, "Message requests"): a DM or group
// invitation from someone who is not the recipient's contact is recorded as
// a request (package requests) that the recipient accepts or refuses. Under
// dm_policy contacts it is also held: the stranger's DMs are stored in the
// conversation, and the sender gets its stamped copy as usual, but they go
// to no feed of the recipient's (no live delivery, no sync); the recipient
// reads them from the conversation's history. acl.Policy.Request decides
// which publishes are requests; this file keeps the records and their
// events. Writing to someone makes them your contact (as Signal shares your
// profile with whoever you write to), so their answers are never requests,
// and accepts a request of theirs you had.

// Request events, on im/u/{user}/requests.
const (
	RequestNew      = "new"      // a request arrived
	RequestUpdated  = "updated"  // a pending request gathered another DM or invitation
	RequestAccepted = "accepted" // the user accepted it (or wrote to its sender)
	RequestRefused  = "refused"  // the user refused it (or blocked its sender)
)

// RequestEvent is the payload of im/u/{user}/requests.
type RequestEvent struct {
	Event   string           `json:"event"`
	Request requests.Request `json:"request"`
}

// announceRequest tells user's devices a request changed. QoS 0 like the
// group and profile events: a device that was away reads GET /requests.
func (h *Service) announceRequest(event string, rq requests.Request) {
	t := topic.Topic{Kind: topic.RequestEvent, Owner: rq.To}.String()
	h.publish("request", rq.To, t, envelope.Marshal(RequestEvent{Event: event, Request: rq}), false, 0)
}

// raise records a request and announces it (new, or gathering another
// held DM or invitation). A held request that cannot be recorded is
// refused (quota_exceeded past the recipient's bound: nothing is stored);
// one that holds nothing back is delivered without a record.
func (h *Service) raise(ctx context.Context, rq requests.Request, body string) *imerr.Error {
	got, outcome, err := h.d.Requests.Raise(ctx, rq, body, h.d.Now().UnixMilli())
	switch {
	case err != nil && !rq.Held:
		if !errors.Is(err, requests.ErrQuota) {
			h.d.Log.Error("message request not stored; delivered without one", "to", rq.To, "id", rq.ID, "error", err)
		}
		return nil
	case errors.Is(err, requests.ErrQuota):
		return imerr.New(imerr.QuotaExceeded, "%q has too many pending message requests", rq.To)
	case err != nil:
		h.d.Log.Error("message request not stored", "to", rq.To, "id", rq.ID, "error", err)
		return storeError(err, "message request not stored; retry")
	}
	switch outcome {
	case requests.Added:
		h.announceRequest(RequestNew, got)
	case requests.Updated:
		h.announceRequest(RequestUpdated, got)
	}
	return nil
}

// dmRequest applies the request rules to a DM from to to: it reports
// whether the DM is held back from to's feed, after recording the request.
func (h *Service) dmRequest(from, to, body string) (held bool, e *imerr.Error) {
	if h.d.Requests == nil || from == to {
		return false, nil
	}
	request, held := h.d.Policy.Request(to, from)
	if request {
		if k, _ := h.d.Accounts.Kind(to); k == accounts.KindDevice {
			// A device takes no requests: it has no one to accept them.
			return false, nil
		}
		ctx, cancel := storeContext()
		defer cancel()
		rq := requests.Request{ID: requests.DMID(from), To: to, From: from, Kind: requests.KindDM, Held: held}
		if e := h.raise(ctx, rq, body); e != nil {
			return false, e
		}
	}
	return held, nil
}

// wrote makes to from's contact when from writes to it, and accepts a
// pending DM request of to's that from had. A full contact list is left as
// it is (the answers are then requests).
func (h *Service) wrote(from, to string) {
	if h.d.Contacts == nil || from == to || h.d.Contacts.Has(from, to) {
		return
	}
	if err := h.d.Contacts.Add(from, to, h.d.Now().UnixMilli()); err != nil {
		return
	}
	if h.d.Requests == nil {
		return
	}
	ctx, cancel := storeContext()
	defer cancel()
	h.ResolveRequest(ctx, from, requests.DMID(to), RequestAccepted)
}

// Invite records a group invitation from from to to (held: to is not made
// a member until it accepts); errors as for a DM request.
func (h *Service) Invite(ctx context.Context, to, from, gid, name string, held bool) *imerr.Error {
	if h.d.Requests == nil {
		return nil
	}
	return h.raise(ctx, requests.Request{ID: requests.GroupID(gid), To: to, From: from, Kind: requests.KindGroup,
		Group: gid, GroupName: name, Held: held}, "")
}

// Requests lists user's pending requests, most recent first.
func (h *Service) Requests(user string) ([]requests.Request, error) {
	if h.d.Requests == nil {
		return []requests.Request{}, nil
	}
	return h.d.Requests.List(user)
}

// Request returns user's pending request id (requests.ErrNotFound).
func (h *Service) Request(user, id string) (requests.Request, error) {
	if h.d.Requests == nil {
		return requests.Request{}, requests.ErrNotFound
	}
	return h.d.Requests.Get(user, id)
}

// ResolveRequest removes user's pending request id and announces event
// (RequestAccepted or RequestRefused) to user's devices. What accepting or
// refusing does besides (a contact added, a group joined or left) is the
// caller's. A request that is not there is requests.ErrNotFound.
func (h *Service) ResolveRequest(ctx context.Context, user, id, event string) (requests.Request, error) {
	if h.d.Requests == nil {
		return requests.Request{}, requests.ErrNotFound
	}
	rq, err := h.d.Requests.Remove(ctx, user, id)
	if err != nil {
		if !errors.Is(err, requests.ErrNotFound) {
			h.d.Log.Error("message request not removed", "user", user, "id", id, "error", err)
		}
		return rq, err
	}
	h.announceRequest(event, rq)
	return rq, nil
}
