package gateway

import (
	"errors"
	"net/http"

	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
	"github.com/mqim/mqim/userlists"
)

// Per-user lists of users (docs/protocol.md, "Blocking", "Contacts"): the
// block list, which acl.Policy enforces on every publish, presence delivery
// and group add, and the contact list. Both are edited the same way:
// POST /{name} {"user"}, DELETE /{name}/{user}, GET /{name} (routes.go).
// userList is one of the lists as the API names it.
type userList struct {
	name, flag string // the path segment, the flag of an answer ("blocked")
	list       *userlists.List
	blocks     bool // adding someone refuses its message requests (else accepts its DM request)
}

func (g *Gateway) blocks() *userList {
	l := g.userList("blocks", "blocked", g.o.Blocks)
	if l != nil {
		l.blocks = true
	}
	return l
}
func (g *Gateway) contacts() *userList { return g.userList("contacts", "contact", g.o.Contacts) }

// userList is nil for a list the server was built without: its routes are
// off.
func (g *Gateway) userList(name, flag string, l *userlists.List) *userList {
	if l == nil {
		return nil
	}
	return &userList{name: name, flag: flag, list: l}
}

// listAdd serves POST /{name} {"user"}.
func (g *Gateway) listAdd(l *userList) handler {
	if l == nil {
		return nil
	}
	return func(w http.ResponseWriter, r *http.Request, user string) error {
		return g.addToList(w, r, user, l)
	}
}

// listRemove serves DELETE /{name}/{user}.
func (g *Gateway) listRemove(l *userList) handler {
	if l == nil {
		return nil
	}
	return func(w http.ResponseWriter, r *http.Request, user string) error {
		return g.removeFromList(w, r, user, l.list, l.flag)
	}
}

// listGet serves GET /{name}.
func (g *Gateway) listGet(l *userList) handler {
	if l == nil {
		return nil
	}
	return func(w http.ResponseWriter, _ *http.Request, user string) error {
		writeJSON(w, http.StatusOK, map[string]any{l.name: g.listEntries(l.list, user)})
		return nil
	}
}

func (g *Gateway) addToList(w http.ResponseWriter, r *http.Request, user string, l *userList) error {
	other, err := g.decodeUser(r)
	if err != nil {
		return err
	}
	list, flag := l.list, l.flag
	switch err := list.Add(user, other, g.o.Now().UnixMilli()); {
	case errors.Is(err, userlists.ErrSelf):
		return fail(http.StatusBadRequest, imerr.Invalid, "you cannot list yourself")
	case errors.Is(err, userlists.ErrQuota):
		return fail(http.StatusTooManyRequests, imerr.QuotaExceeded, "your list holds %d users already: remove one first", list.Max())
	case err != nil:
		return err
	}
	if other != user {
		g.dropRequestsFrom(r.Context(), user, other, l.blocks)
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": other, flag: true})
	return nil
}

func (g *Gateway) removeFromList(w http.ResponseWriter, r *http.Request, user string, list *userlists.List, flag string) error {
	other := r.PathValue("user")
	if !topic.ValidUser(other) {
		return fail(http.StatusBadRequest, imerr.Invalid, "invalid user id %q", other)
	}
	if _, err := list.Remove(user, other); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": other, flag: false})
	return nil
}

type listEntry struct {
	userlists.Entry
	DisplayName string `json:"display_name"`
}

func (g *Gateway) listEntries(list *userlists.List, user string) []listEntry {
	es := list.Entries(user)
	out := make([]listEntry, len(es))
	for i, e := range es {
		out[i] = listEntry{e, g.userView(e.User, "").DisplayName}
	}
	return out
}

// canSeePresence is the acl read rule for user's view of im/presence/{of},
// which the feeds and GET /presence apply as the broker does per delivery.
func (g *Gateway) canSeePresence(user, clientID, presenceTopic string) bool {
	return g.o.Policy.CanSubscribe(user, clientID, presenceTopic)
}
