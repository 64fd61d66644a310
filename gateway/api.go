package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/groups"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/presence"
	"github.com/mqim/mqim/requests"
	"github.com/mqim/mqim/topic"
)

func (g *Gateway) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if !g.originAllowed(r) {
		return false
	}
	if origin != "" {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Vary", "Origin")
	}
	return true
}

func (g *Gateway) preflight(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") == "" || !g.cors(w, r) {
		writeError(w, http.StatusForbidden, imerr.Forbidden, "origin not allowed")
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PATCH, PUT, DELETE")
	// Last-Event-ID: an EventSource resuming a cross-origin stream.
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code imerr.Code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": string(code), "message": msg}})
}

// decode reads a JSON body strictly: unknown fields, trailing data,
// invalid UTF-8 and oversize bodies are refused with a clear message.
// encoding/json would silently turn invalid UTF-8 into U+FFFD, so a password
// or a message would not be what the client sent: the raw bytes are checked
// first (JSON text is UTF-8, RFC 8259 section 8.1).
func decode(r *http.Request, v any) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fail(http.StatusRequestEntityTooLarge, imerr.TooLarge, "body over %d bytes", maxBody)
		}
		return fail(http.StatusBadRequest, imerr.Invalid, "reading body: %v", err)
	}
	if !utf8.Valid(raw) {
		return fail(http.StatusBadRequest, imerr.Invalid, "body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(http.StatusBadRequest, imerr.Invalid, "malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fail(http.StatusBadRequest, imerr.Invalid, "trailing data after JSON body")
	}
	return nil
}

func (g *Gateway) me(w http.ResponseWriter, _ *http.Request, user string) error {
	writeJSON(w, http.StatusOK, map[string]string{"user": user})
	return nil
}

func intParam(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fail(http.StatusBadRequest, imerr.Invalid, "%s must be an integer in [%d, %d]", name, lo, hi)
	}
	return n, nil
}

func (g *Gateway) page(w http.ResponseWriter, r *http.Request, conv history.ConvID) error {
	before, err := intParam(r, "before", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 50, 1, 200)
	if err != nil {
		return err
	}
	msgs, more, err := g.o.History.Page(r.Context(), conv, uint64(before), int(limit))
	if err != nil {
		return err
	}
	if msgs == nil {
		msgs = []envelope.Message{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs, "more": more})
	return nil
}

func (g *Gateway) historyDM(w http.ResponseWriter, r *http.Request, user string) error {
	peer := r.PathValue("peer")
	if e := g.o.Policy.CanReadConversation(user, acl.DMWith(peer)); e != nil {
		return imFail(e)
	}
	return g.page(w, r, history.DM(user, peer))
}

func (g *Gateway) historyGroup(w http.ResponseWriter, r *http.Request, user string) error {
	gid := r.PathValue("gid")
	if err := g.requireMember(gid, user); err != nil {
		return err
	}
	return g.page(w, r, history.Group(gid))
}

// requireMember is the acl read rule for group gid (acl.CanReadConversation).
func (g *Gateway) requireMember(gid, user string) error {
	if e := g.o.Policy.CanReadConversation(user, acl.InGroup(gid)); e != nil {
		return imFail(e)
	}
	return nil
}

func (g *Gateway) sync(w http.ResponseWriter, r *http.Request, user string) error {
	cur, e := g.o.Transport.IM.Cursor(r.Context(), user, r.URL.Query().Get("since"))
	if e != nil {
		return imFail(e)
	}
	limit, err := intParam(r, "limit", 500, 1, 1000)
	if err != nil {
		return err
	}
	page, e := g.o.Transport.IM.Sync(r.Context(), user, cur, int(limit))
	if e != nil {
		return imFail(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": page.Messages, "cursor": page.Next.String(), "more": page.More})
	return nil
}

type convJSON struct {
	ID     string            `json:"id"`
	Kind   string            `json:"kind"`
	Peer   string            `json:"peer,omitempty"`
	Group  string            `json:"group,omitempty"`
	Name   string            `json:"name,omitempty"`
	Last   *envelope.Message `json:"last,omitempty"`
	Unread uint64            `json:"unread"`
	Read   uint64            `json:"read"`
}

func (g *Gateway) conversations(w http.ResponseWriter, r *http.Request, user string) error {
	sums, err := g.o.History.Conversations(r.Context(), user)
	if err != nil {
		return err
	}
	out := []convJSON{}
	seen := map[string]bool{}
	for _, s := range sums {
		name, isGroup := s.Conv.Peer(user)
		c := convJSON{Last: s.Last, Unread: s.Unread, Read: s.Read}
		if isGroup {
			grp, err := g.o.Groups.Get(name)
			if err != nil {
				continue
			}
			if g.o.Policy.CanReadConversation(user, acl.InGroup(name)) != nil {
				continue // left or removed: the conversation is no longer theirs
			}
			c.ID, c.Kind, c.Group, c.Name = "g:"+name, "group", name, grp.Name
		} else {
			c.ID, c.Kind, c.Peer = "dm:"+name, "dm", name
		}
		seen[c.ID] = true
		out = append(out, c)
	}
	// Groups without messages yet still belong in the list.
	for _, grp := range g.o.Groups.Of(user) {
		if !seen["g:"+grp.ID] {
			out = append(out, convJSON{ID: "g:" + grp.ID, Kind: "group", Group: grp.ID, Name: grp.Name})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": out})
	return nil
}

func (g *Gateway) groupErr(err error) error {
	if errors.Is(err, groups.ErrQuota) {
		return fail(http.StatusTooManyRequests, imerr.QuotaExceeded, "%s", strings.TrimPrefix(err.Error(), "groups: "))
	}
	return refuse(err,
		refusal{groups.ErrNotFound, http.StatusNotFound, imerr.NotFound, "no such group"},
		refusal{groups.ErrExists, http.StatusConflict, imerr.Conflict, "group id taken"},
		refusal{groups.ErrInvalid, http.StatusBadRequest, imerr.Invalid, "group id must match ^[a-z0-9][a-z0-9_.-]{0,63}$ and name be at most 100 bytes"},
		refusal{groups.ErrNotMember, http.StatusForbidden, imerr.Forbidden, "not a member"},
		refusal{groups.ErrNotPermitted, http.StatusForbidden, imerr.Forbidden, "only the owner may remove others; the owner cannot leave"},
		refusal{groups.ErrTooMany, http.StatusBadRequest, imerr.TooLarge, fmt.Sprintf("group full (%d members)", groups.MaxMembers)},
		refusal{groups.ErrDeclined, http.StatusForbidden, imerr.Forbidden, "that user left this group: only they can rejoin it"})
}

func (g *Gateway) requireUsers(users ...string) error {
	for _, u := range users {
		ok, err := g.o.Accounts.Exists(u)
		if err != nil {
			return err
		}
		if !ok {
			return fail(http.StatusNotFound, imerr.NotFound, "no such user %q", u)
		}
	}
	return nil
}

// canAdd applies the acl rule on putting users into a group (a user who
// blocked actor is not added by it).
func (g *Gateway) canAdd(actor string, users ...string) error {
	for _, u := range users {
		if e := g.o.Policy.CanAddToGroup(actor, u); e != nil {
			return imFail(e)
		}
	}
	return nil
}

// decodeUser reads a {"user"} body naming an existing user.
func (g *Gateway) decodeUser(r *http.Request) (string, error) {
	var body struct {
		User string `json:"user"`
	}
	if err := decode(r, &body); err != nil {
		return "", err
	}
	return body.User, g.requireUsers(body.User)
}

func (g *Gateway) createGroup(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		ID      string   `json:"id"`
		Name    string   `json:"name"`
		Members []string `json:"members"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if len(body.Members) > groups.MaxMembers {
		return fail(http.StatusBadRequest, imerr.TooLarge, "too many members")
	}
	if err := g.requireUsers(body.Members...); err != nil {
		return err
	}
	if err := g.canAdd(user, body.Members...); err != nil {
		return err
	}
	if body.ID == "" {
		body.ID = newGroupID()
	}
	if body.Name == "" {
		body.Name = body.ID
	}
	members, held := g.invitations(user, body.Members)
	grp, err := g.o.Groups.Create(body.ID, body.Name, user, members, g.o.Now().UnixMilli())
	if err != nil {
		return g.groupErr(err)
	}
	g.announceChange(grp, grp.Members, nil)
	// Strangers are invited (requests.go): added now and told apart, or
	// held until they accept.
	g.invite(r.Context(), user, grp, members, false)
	refused, _ := g.invite(r.Context(), user, grp, held, true)
	writeJSON(w, http.StatusCreated, struct {
		groups.Group
		Invited   []string `json:"invited,omitempty"`
		Uninvited []string `json:"uninvited,omitempty"`
	}{grp, slices.DeleteFunc(held, func(u string) bool { return slices.Contains(refused, u) }), refused})
	return nil
}

func (g *Gateway) listGroups(w http.ResponseWriter, _ *http.Request, user string) error {
	list := g.o.Groups.Of(user)
	if list == nil {
		list = []groups.Group{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": list})
	return nil
}

func (g *Gateway) getGroup(w http.ResponseWriter, r *http.Request, user string) error {
	gid := r.PathValue("gid")
	if err := g.requireMember(gid, user); err != nil {
		return err
	}
	grp, err := g.o.Groups.Get(gid)
	if err != nil {
		return g.groupErr(err)
	}
	writeJSON(w, http.StatusOK, grp)
	return nil
}

func (g *Gateway) addMember(w http.ResponseWriter, r *http.Request, user string) error {
	other, err := g.decodeUser(r)
	if err != nil {
		return err
	}
	if err := g.canAdd(user, other); err != nil {
		return err
	}
	if _, held := g.invitations(user, []string{other}); len(held) == 1 {
		return g.inviteHeld(w, r, user, other)
	}
	before, _ := g.o.Groups.Members(r.PathValue("gid"))
	grp, err := g.o.Groups.AddMember(r.PathValue("gid"), user, other)
	if err != nil {
		return g.groupErr(err)
	}
	if !slices.Contains(before, other) {
		g.announceChange(grp, []string{other}, nil)
		g.invite(r.Context(), user, grp, []string{other}, false)
	}
	writeJSON(w, http.StatusOK, grp)
	return nil
}

func (g *Gateway) removeMember(w http.ResponseWriter, r *http.Request, user string) error {
	grp, err := g.o.Groups.RemoveMember(r.PathValue("gid"), user, r.PathValue("user"))
	if err != nil {
		return g.groupErr(err)
	}
	g.announceChange(grp, nil, []string{r.PathValue("user")})
	if r.PathValue("user") == user && g.o.Transport.IM != nil {
		// Leaving refuses an invitation into the group.
		_, _ = g.o.Transport.IM.ResolveRequest(r.Context(), user, requests.GroupID(grp.ID), im.RequestRefused)
	}
	writeJSON(w, http.StatusOK, grp)
	return nil
}

func (g *Gateway) presence(w http.ResponseWriter, r *http.Request, user string) error {
	users := strings.Split(r.URL.Query().Get("users"), ",")
	if len(users) > 500 {
		return fail(http.StatusBadRequest, imerr.Invalid, "at most 500 users per request")
	}
	out := map[string]envelope.Presence{}
	for _, u := range users {
		if !topic.ValidUser(u) {
			continue
		}
		s := g.o.Presence.StatusOf(u)
		if !g.canSeePresence(user, "", topic.PresenceTopic(u)) {
			// As for a user never seen: offline, no text, no last seen.
			s = presence.Status{Status: "offline"}
		}
		p := envelope.Presence{User: u, Status: s.Status, Text: s.Text, TS: s.TS}
		if k, err := g.o.Accounts.Kind(u); err == nil && k == accounts.KindDevice {
			p.Device = true
		}
		out[u] = p
	}
	writeJSON(w, http.StatusOK, map[string]any{"presence": out})
	return nil
}
