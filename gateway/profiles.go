package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mqim/mqim/fanout"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/profiles"
	"github.com/mqim/mqim/ratelimit"
	"github.com/mqim/mqim/topic"
)

// People (docs/protocol.md, "Profiles, avatars and the directory"): a
// display name and an avatar per user, the directory, and the profile
// event that tells a user's peers of a change.

// Fixed limits of profile changes and avatar work.
const (
	// profileRate, profileBurst: profile and avatar changes per user (each
	// change is fanned out to every peer).
	profileRate  = 0.1
	profileBurst = 10
	// avatarDecodes: uploads decoded at once (each may take tens of MiB).
	avatarDecodes = 2
	// maxProfileFanout bounds the peers one change is announced to; the
	// rest see it at their next GET /users/{id}.
	maxProfileFanout = 10000
	// directoryMax bounds a directory answer.
	directoryMax = 50
)

// peopleState is the gateway's state for profiles.
type peopleState struct {
	changes *ratelimit.Buckets
	decodes chan struct{}
}

// userJSON is a user as others see it.
type userJSON struct {
	ID string `json:"id"`
	// User repeats ID for clients of the earlier {"user","kind"} answer.
	User string `json:"user"`
	Kind string `json:"kind"`
	// DisplayName is the user's chosen name, or its id when none is set.
	DisplayName string `json:"display_name"`
	// Avatar is the avatar's URL path (changing with the avatar), if any.
	Avatar string `json:"avatar,omitempty"`
}

func (g *Gateway) userView(id, kind string) userJSON {
	p := g.o.Profiles.Get(id)
	u := userJSON{ID: id, User: id, Kind: kind, DisplayName: p.DisplayName}
	if u.DisplayName == "" {
		u.DisplayName = id
	}
	if p.Avatar != "" {
		u.Avatar = "/api/v1/users/" + id + "/avatar?v=" + strings.Trim(p.Avatar, `"`)
	}
	return u
}

func (g *Gateway) getUser(w http.ResponseWriter, r *http.Request, _ string) error {
	id := r.PathValue("id")
	if err := g.requireUsers(id); err != nil {
		return err
	}
	kind, err := g.o.Accounts.Kind(id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g.userView(id, kind))
	return nil
}

func (g *Gateway) takeProfileChange(user string) error {
	if wait, ok := g.people.changes.Take(user); !ok {
		return &apiError{status: http.StatusTooManyRequests, code: imerr.RateLimited,
			msg: "changing your profile too often; retry later", retryAfter: int(wait.Seconds()) + 1}
	}
	return nil
}

func (g *Gateway) putProfile(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		DisplayName string `json:"display_name"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if _, err := profiles.CleanDisplayName(body.DisplayName); err != nil {
		return fail(http.StatusBadRequest, imerr.Invalid, "%s", strings.TrimPrefix(err.Error(), "profiles: "))
	}
	if err := g.takeProfileChange(user); err != nil {
		return err
	}
	if _, err := g.o.Profiles.SetDisplayName(user, body.DisplayName); err != nil {
		return err
	}
	return g.profileChanged(w, r, user)
}

// settingsJSON are a user's own settings (not shown to others).
type settingsJSON struct {
	// DMPolicy: "anyone" or "contacts"; "" in a PUT: back to the default.
	DMPolicy string `json:"dm_policy"`
}

func (g *Gateway) settingsOf(user string) settingsJSON {
	pol := g.o.Profiles.Get(user).DMPolicy
	if pol == "" {
		pol = g.o.DMPolicy
	}
	return settingsJSON{DMPolicy: pol}
}

func (g *Gateway) getSettings(w http.ResponseWriter, _ *http.Request, user string) error {
	writeJSON(w, http.StatusOK, g.settingsOf(user))
	return nil
}

func (g *Gateway) putSettings(w http.ResponseWriter, r *http.Request, user string) error {
	var body settingsJSON
	if err := decode(r, &body); err != nil {
		return err
	}
	if body.DMPolicy != "" && body.DMPolicy != profiles.DMAnyone && body.DMPolicy != profiles.DMContacts {
		return fail(http.StatusBadRequest, imerr.Invalid, "dm_policy must be anyone or contacts")
	}
	if _, err := g.o.Profiles.SetDMPolicy(user, body.DMPolicy); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g.settingsOf(user))
	return nil
}

func (g *Gateway) putAvatar(w http.ResponseWriter, r *http.Request, user string) error {
	upload, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || len(upload) > profiles.MaxAvatarBytes {
		return fail(http.StatusRequestEntityTooLarge, imerr.TooLarge, "avatar over %d bytes", profiles.MaxAvatarBytes)
	}
	if err != nil {
		return fail(http.StatusBadRequest, imerr.Invalid, "reading body: %v", err)
	}
	if err := g.takeProfileChange(user); err != nil {
		return err
	}
	select {
	case g.people.decodes <- struct{}{}:
	default:
		return &apiError{status: http.StatusServiceUnavailable, code: imerr.Busy, msg: "too many avatars being processed; retry", retryAfter: 1}
	}
	thumb, err := profiles.Thumbnail(upload)
	<-g.people.decodes
	switch {
	case errors.Is(err, profiles.ErrAvatarFormat):
		return fail(http.StatusUnsupportedMediaType, imerr.Invalid, "the avatar must be a PNG, JPEG or WebP image")
	case errors.Is(err, profiles.ErrAvatarSize):
		return fail(http.StatusRequestEntityTooLarge, imerr.TooLarge, "%s", strings.TrimPrefix(err.Error(), "profiles: "))
	case err != nil:
		return err
	}
	if _, err := g.o.Profiles.SetAvatar(user, thumb); err != nil {
		return err
	}
	return g.profileChanged(w, r, user)
}

func (g *Gateway) deleteAvatar(w http.ResponseWriter, r *http.Request, user string) error {
	if err := g.takeProfileChange(user); err != nil {
		return err
	}
	if _, err := g.o.Profiles.ClearAvatar(user); err != nil {
		return err
	}
	return g.profileChanged(w, r, user)
}

// profileChanged answers a change with the user's new view and announces
// it on im/u/{peer}/profile to the user's peers (its own devices, those
// who have it as a contact, its DM peers, the members of its groups) who may see it (acl.Policy.CanSee).
// QoS 0 like group events: a device that was away reads GET /users/{id}.
func (g *Gateway) profileChanged(w http.ResponseWriter, r *http.Request, user string) error {
	kind, err := g.o.Accounts.Kind(user)
	if err != nil {
		return err
	}
	view := g.userView(user, kind)
	// Announced before the answer: once the caller has it, every peer's
	// connected devices have the event queued.
	if hub := g.o.Transport.Hub; hub != nil {
		payload, _ := json.Marshal(view)
		for _, peer := range g.peers(r, user) {
			if !g.o.Policy.CanSee(peer, user) {
				continue
			}
			t := topic.Topic{Kind: topic.ProfileEvent, Owner: peer}.String()
			hub.Send(peer, fanout.Event{Topic: t, Payload: payload})
		}
	}
	writeJSON(w, http.StatusOK, view)
	return nil
}

// peers lists user itself, those who have it as a contact, its DM peers
// and its groups' members, once each, at most maxProfileFanout.
func (g *Gateway) peers(r *http.Request, user string) []string {
	seen := map[string]bool{user: true}
	out := []string{user}
	add := func(u string) {
		if !seen[u] && len(out) < maxProfileFanout {
			seen[u] = true
			out = append(out, u)
		}
	}
	if g.o.Contacts != nil {
		for _, u := range g.o.Contacts.Holders(user) {
			add(u)
		}
	}
	if sums, err := g.o.History.Conversations(r.Context(), user); err == nil {
		for _, s := range sums {
			if name, isGroup := s.Conv.Peer(user); !isGroup {
				add(name)
			}
		}
	}
	for _, grp := range g.o.Groups.Of(user) {
		for _, m := range grp.Members {
			add(m)
		}
	}
	return out
}

func (g *Gateway) getAvatar(w http.ResponseWriter, r *http.Request, _ string) error {
	id := r.PathValue("id")
	if err := g.requireUsers(id); err != nil {
		return err
	}
	thumb, ok, err := g.o.Profiles.Avatar(id)
	if err != nil {
		return err
	}
	if !ok {
		return fail(http.StatusNotFound, imerr.NotFound, "%q has no avatar", id)
	}
	h := w.Header()
	h.Set("ETag", thumb.ETag)
	// The URL of GET /users/{id} names the version (?v=), so that one never
	// changes; without it, revalidate each time. Private: it is behind a
	// token.
	if r.URL.Query().Get("v") == strings.Trim(thumb.ETag, `"`) {
		h.Set("Cache-Control", "private, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "private, no-cache")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && slices.Contains(splitETags(match), thumb.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", thumb.Type)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(thumb.Data)
	return nil
}

func splitETags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		out = append(out, strings.TrimPrefix(strings.TrimSpace(t), "W/"))
	}
	return out
}

// directory serves GET /users?q=PREFIX: people whose id or display name
// starts with the prefix (case-folded), ids and display names only, at most
// limit (default 20, at most directoryMax), rate-limited per user. Users who
// blocked the caller are not listed.
func (g *Gateway) directory(w http.ResponseWriter, r *http.Request, user string) error {
	if !g.o.Directory {
		return fail(http.StatusForbidden, imerr.Forbidden, "the directory is turned off on this server")
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if n := utf8.RuneCountInString(q); n < 1 || n > profiles.MaxDisplayName {
		return fail(http.StatusBadRequest, imerr.Invalid, "q must be 1-%d characters", profiles.MaxDisplayName)
	}
	limit, err := intParam(r, "limit", 20, 1, directoryMax)
	if err != nil {
		return err
	}
	if wait, ok := g.o.DirectoryRate.Take(user); !ok {
		return &apiError{status: http.StatusTooManyRequests, code: imerr.RateLimited, msg: "searching too fast; slow down", retryAfter: int(wait.Seconds()) + 1}
	}
	type hit struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
	}
	out := []hit{}
	seen := map[string]bool{}
	add := func(id string) {
		if len(out) < int(limit) && !seen[id] && g.o.Policy.CanSee(user, id) {
			seen[id] = true
			out = append(out, hit{id, g.userView(id, "").DisplayName})
		}
	}
	if lower := strings.ToLower(q); topic.ValidUser(lower) {
		ids, err := g.o.Accounts.PeopleWithPrefix(lower, int(limit)+1)
		if err != nil {
			return err
		}
		for _, id := range ids {
			add(id)
		}
	}
	for _, m := range g.o.Profiles.MatchNames(q, int(limit)+1) {
		if k, err := g.o.Accounts.Kind(m.User); err == nil && k != "device" {
			add(m.User)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}
