package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/mqim/mqim/fanout"
	"github.com/mqim/mqim/groups"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// Group events tell members that a group changed, on their own inbox
// (im/u/{member}/groups, docs/protocol.md "Group events"), so a new group
// shows before its first message and a removed member's open view changes
// at once. They are not stored: a device that was away learns the state
// from GET /groups, as before.

// Group event names.
const (
	groupAdded   = "added"   // you are now a member (created, added)
	groupRemoved = "removed" // you are no longer a member (removed, left)
	groupChanged = "changed" // members or owner changed
)

type groupEvent struct {
	Event string       `json:"event"`
	Group groups.Group `json:"group"`
}

// announce publishes event about grp to each of users' inboxes, at QoS 0
// like typing: never queued for a device that is away, which reads the
// state from GET /groups when it connects (the web client does on every
// connect).
func (g *Gateway) announce(event string, grp groups.Group, users ...string) {
	hub := g.o.Transport.Hub
	if hub == nil {
		return
	}
	if event == groupRemoved {
		// Not a member any more: the id and name only.
		grp = groups.Group{ID: grp.ID, Name: grp.Name, Owner: grp.Owner}
	}
	payload, err := json.Marshal(groupEvent{Event: event, Group: grp})
	if err != nil {
		return
	}
	for _, u := range users {
		t := topic.Topic{Kind: topic.GroupEvent, Owner: u}.String()
		// Through the fan-out: MQTT devices, SSE streams and polls alike.
		hub.Send(u, fanout.Event{Topic: t, Payload: payload})
	}
}

// announceChange tells the members of grp (after a change) what changed:
// `added` to those who joined, `changed` to the others, and `removed` to
// those who left.
func (g *Gateway) announceChange(grp groups.Group, joined, left []string) {
	var others []string
	for _, m := range grp.Members {
		if !slices.Contains(joined, m) {
			others = append(others, m)
		}
	}
	if len(joined) > 0 {
		g.announce(groupAdded, grp, joined...)
	}
	if len(others) > 0 {
		g.announce(groupChanged, grp, others...)
	}
	if len(left) > 0 {
		g.announce(groupRemoved, grp, left...)
	}
}

func (g *Gateway) transferGroup(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		User string `json:"user"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	grp, err := g.o.Groups.Transfer(r.PathValue("gid"), user, body.User)
	if err != nil {
		return g.groupErr(err)
	}
	g.announceChange(grp, nil, nil)
	writeJSON(w, http.StatusOK, grp)
	return nil
}

// renameGroup serves PATCH /groups/{gid} {"name"}: the owner renames the
// group; every member learns it ("changed").
func (g *Gateway) renameGroup(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		Name string `json:"name"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	grp, err := g.o.Groups.Rename(r.PathValue("gid"), user, strings.TrimSpace(body.Name))
	if errors.Is(err, groups.ErrNotPermitted) {
		return fail(http.StatusForbidden, imerr.Forbidden, "only the owner may rename the group")
	}
	if errors.Is(err, groups.ErrInvalid) {
		return fail(http.StatusBadRequest, imerr.Invalid, "a group name is 1-100 bytes")
	}
	if err != nil {
		return g.groupErr(err)
	}
	g.announce(groupChanged, grp, grp.Members...)
	writeJSON(w, http.StatusOK, grp)
	return nil
}

// deleteGroup serves DELETE /groups/{gid}: the owner ends the group; every
// member is told ("removed"). Its history stays readable to no one through
// the group (membership is gone) and the id is never reused.
func (g *Gateway) deleteGroup(w http.ResponseWriter, r *http.Request, user string) error {
	grp, err := g.o.Groups.Delete(r.PathValue("gid"), user)
	if errors.Is(err, groups.ErrNotPermitted) {
		return fail(http.StatusForbidden, imerr.Forbidden, "only the owner may delete the group")
	}
	if err != nil {
		return g.groupErr(err)
	}
	g.announce(groupRemoved, grp, grp.Members...)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
