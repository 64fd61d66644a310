package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/mqim/mqim/groups"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/requests"
	"github.com/mqim/mqim/userlists"
)

// Message requests (docs/protocol.md, "Message requests"): the folder of
// DMs and group invitations from strangers (GET /requests), and accepting
// or refusing one. The records and their events are the chat service's
// (im/requests.go); what accepting or refusing changes besides (a contact,
// a group's members) is done here, beside the contact list and the groups.

var errRequestNotFound = refusal{requests.ErrNotFound, http.StatusNotFound, imerr.NotFound, "no such request"}

func (g *Gateway) listRequests(w http.ResponseWriter, _ *http.Request, user string) error {
	list, err := g.o.Transport.IM.Requests(user)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": list})
	return nil
}

// acceptRequest: the sender becomes the caller's contact, a held group
// invitation makes the caller a member, and the request is gone.
func (g *Gateway) acceptRequest(w http.ResponseWriter, r *http.Request, user string) error {
	rq, err := g.o.Transport.IM.Request(user, r.PathValue("id"))
	if err != nil {
		return refuse(err, errRequestNotFound)
	}
	out := map[string]any{"request": rq, "contact": true}
	if rq.Kind == requests.KindGroup && rq.Held {
		grp, err := g.joinInvited(r.Context(), rq)
		if err != nil {
			return err
		}
		out["group"] = grp
	}
	if g.o.Contacts != nil {
		switch err := g.o.Contacts.Add(user, rq.From, g.o.Now().UnixMilli()); {
		case errors.Is(err, userlists.ErrQuota):
			return fail(http.StatusTooManyRequests, imerr.QuotaExceeded, "your contact list holds %d users already: remove one first", g.o.Contacts.Max())
		case err != nil && !errors.Is(err, userlists.ErrSelf):
			return err
		}
	}
	if _, err := g.o.Transport.IM.ResolveRequest(r.Context(), user, rq.ID, im.RequestAccepted); err != nil && !errors.Is(err, requests.ErrNotFound) {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// joinInvited adds the invited user to the group, as its inviter did (or as
// itself, coming back to a group it had left). An invitation whose group
// is gone, or whose inviter is no longer a member, is void: it is removed.
func (g *Gateway) joinInvited(ctx context.Context, rq requests.Request) (groups.Group, error) {
	grp, err := g.o.Groups.AddMember(rq.Group, rq.From, rq.To)
	if errors.Is(err, groups.ErrDeclined) {
		grp, err = g.o.Groups.AddMember(rq.Group, rq.To, rq.To)
	}
	if errors.Is(err, groups.ErrNotFound) || errors.Is(err, groups.ErrNotMember) {
		_, _ = g.o.Transport.IM.ResolveRequest(ctx, rq.To, rq.ID, im.RequestRefused)
		return groups.Group{}, fail(http.StatusNotFound, imerr.NotFound, "the invitation is no longer valid: the group is gone or its inviter left it")
	}
	if err != nil {
		return groups.Group{}, g.groupErr(err)
	}
	g.announceChange(grp, []string{rq.To}, nil)
	return grp, nil
}

// refuseRequest: the request is gone, and a group the caller was put in
// (an invitation that was not held) is left.
func (g *Gateway) refuseRequest(w http.ResponseWriter, r *http.Request, user string) error {
	rq, err := g.o.Transport.IM.ResolveRequest(r.Context(), user, r.PathValue("id"), im.RequestRefused)
	if err != nil {
		return refuse(err, errRequestNotFound)
	}
	if rq.Kind == requests.KindGroup && !rq.Held {
		if grp, err := g.o.Groups.RemoveMember(rq.Group, user, user); err == nil {
			g.announceChange(grp, nil, []string{user})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"request": rq, "refused": true})
	return nil
}

// invitations splits the users actor puts into a group into those added
// now and those whose dm_policy makes the invitation a held request.
func (g *Gateway) invitations(actor string, users []string) (now, held []string) {
	for _, u := range users {
		if _, h := g.o.Policy.Request(u, actor); h {
			held = append(held, u)
		} else {
			now = append(now, u)
		}
	}
	return now, held
}

// invite records actor's invitations of users into grp (held: they are
// not members yet) and returns the users whose invitation was refused.
func (g *Gateway) invite(ctx context.Context, actor string, grp groups.Group, users []string, held bool) (refused []string, last *imerr.Error) {
	if g.o.Transport.IM == nil {
		return nil, nil // a gateway without the chat service keeps no requests
	}
	for _, u := range users {
		if request, _ := g.o.Policy.Request(u, actor); !request {
			continue
		}
		if e := g.o.Transport.IM.Invite(ctx, u, actor, grp.ID, grp.Name, held); e != nil {
			refused, last = append(refused, u), e
		}
	}
	return refused, last
}

// dropRequestsFrom removes owner's pending requests from other (owner
// blocked it), or only its DM request (owner made it a contact: accepted).
func (g *Gateway) dropRequestsFrom(ctx context.Context, owner, other string, blocked bool) {
	IM := g.o.Transport.IM
	if IM == nil {
		return
	}
	if !blocked {
		_, _ = IM.ResolveRequest(ctx, owner, requests.DMID(other), im.RequestAccepted)
		return
	}
	list, err := IM.Requests(owner)
	if err != nil {
		return
	}
	for _, rq := range list {
		if rq.From == other {
			_, _ = IM.ResolveRequest(ctx, owner, rq.ID, im.RequestRefused)
		}
	}
}

// inviteHeld answers POST /groups/{gid}/members for a user whose dm_policy
// holds actor's invitation: 202, the user is invited, not added.
func (g *Gateway) inviteHeld(w http.ResponseWriter, r *http.Request, actor, user string) error {
	grp, err := g.o.Groups.Get(r.PathValue("gid"))
	if err != nil {
		return g.groupErr(err)
	}
	if ok, _ := g.o.Groups.IsMember(grp.ID, actor); !ok {
		return g.groupErr(groups.ErrNotMember)
	}
	if ok, _ := g.o.Groups.IsMember(grp.ID, user); ok {
		writeJSON(w, http.StatusOK, grp)
		return nil
	}
	if _, e := g.invite(r.Context(), actor, grp, []string{user}, true); e != nil {
		return imFail(e)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"user": user, "group": grp.ID, "invited": true})
	return nil
}
