package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/profiles"
)

// handler serves one API route; user is the caller (authUser routes) or "".
// An *apiError it returns becomes its status and code; any other error a
// 500 (507 for a full store), logged.
type handler func(w http.ResponseWriter, r *http.Request, user string) error

// access says who may call a route.
type access int

const (
	authUser  access = iota // a valid user token (Authorization: Bearer); the handler gets the user
	authNone                // anyone (register, login), or the handler checks credentials itself
	authAdmin               // the operator's admin token (admin.go); 404 without one configured
)

// route is one line of the API's route table.
type route struct {
	pattern string // a net/http ServeMux pattern: "METHOD /path/{var}"
	h       handler
	access  access
	limit   int64 // request body limit; 0 is maxBody
}

// apiRoutes is the route table of /api/v1: every API endpoint is one line
// here, its handler in the file of its area. A nil handler is a route that
// is off (a list the server has not configured). docs/protocol.md describes
// each endpoint.
func (g *Gateway) apiRoutes() []route {
	return []route{
		// Accounts (auth.go).
		{"POST /api/v1/register", g.register, authNone, 0},
		{"POST /api/v1/login", g.login, authNone, 0},
		{"GET /api/v1/me", g.me, authUser, 0},
		{"POST /api/v1/logout", g.logout, authUser, 0},
		{"POST /api/v1/me/password", g.changePassword, authUser, 0},
		{"POST /api/v1/me/revoke", g.revokeAll, authUser, 0},
		{"POST /api/v1/admin/users", g.adminCreateUser, authAdmin, 0},

		// History and sync (api.go).
		{"GET /api/v1/history/dm/{peer}", g.historyDM, authUser, 0},
		{"GET /api/v1/history/g/{gid}", g.historyGroup, authUser, 0},
		{"GET /api/v1/sync", g.sync, authUser, 0},
		{"GET /api/v1/conversations", g.conversations, authUser, 0},
		{"GET /api/v1/presence", g.presence, authUser, 0},
		{"GET /api/v1/search", g.search, authUser, 0}, // search.go

		// Groups (api.go).
		{"POST /api/v1/groups", g.createGroup, authUser, 0},
		{"GET /api/v1/groups", g.listGroups, authUser, 0},
		{"GET /api/v1/groups/{gid}", g.getGroup, authUser, 0},
		{"POST /api/v1/groups/{gid}/members", g.addMember, authUser, 0},
		{"DELETE /api/v1/groups/{gid}/members/{user}", g.removeMember, authUser, 0},
		{"POST /api/v1/groups/{gid}/owner", g.transferGroup, authUser, 0},
		{"PATCH /api/v1/groups/{gid}", g.renameGroup, authUser, 0},
		{"DELETE /api/v1/groups/{gid}", g.deleteGroup, authUser, 0},

		// Devices and their keys (devices.go); managed: the caller's own.
		{"POST /api/v1/devices", g.createDevice, authUser, 0},
		{"GET /api/v1/devices", g.listDevices, authUser, 0},
		{"POST /api/v1/devices/{id}/keys", g.managed(g.createKey), authUser, 0},
		{"GET /api/v1/devices/{id}/keys", g.managed(g.listKeys), authUser, 0},
		{"DELETE /api/v1/devices/{id}/keys/{kid}", g.managed(g.revokeKey), authUser, 0},
		{"POST /api/v1/devices/{id}/revoke", g.managed(g.revokeDevice), authUser, 0},

		// Block and contact lists (lists.go).
		{"POST /api/v1/blocks", g.listAdd(g.blocks()), authUser, 0},
		{"DELETE /api/v1/blocks/{user}", g.listRemove(g.blocks()), authUser, 0},
		{"GET /api/v1/blocks", g.listGet(g.blocks()), authUser, 0},
		{"POST /api/v1/contacts", g.listAdd(g.contacts()), authUser, 0},
		{"DELETE /api/v1/contacts/{user}", g.listRemove(g.contacts()), authUser, 0},
		{"GET /api/v1/contacts", g.listGet(g.contacts()), authUser, 0},

		// Message requests (requests.go).
		{"GET /api/v1/requests", g.listRequests, authUser, 0},
		{"POST /api/v1/requests/{id}/accept", g.acceptRequest, authUser, 0},
		{"POST /api/v1/requests/{id}/refuse", g.refuseRequest, authUser, 0},

		// Profiles, the directory and settings (profiles.go).
		{"GET /api/v1/users/{id}", g.getUser, authUser, 0},
		{"GET /api/v1/users/{id}/avatar", g.getAvatar, authUser, 0},
		{"GET /api/v1/users", g.directory, authUser, 0},
		{"PUT /api/v1/me/profile", g.putProfile, authUser, 0},
		{"GET /api/v1/me/settings", g.getSettings, authUser, 0},
		{"PUT /api/v1/me/settings", g.putSettings, authUser, 0},
		// An avatar upload is the one body over maxBody; one byte more than
		// allowed is read so an oversize one is told apart.
		{"PUT /api/v1/me/avatar", g.putAvatar, authUser, profiles.MaxAvatarBytes + 1},
		{"DELETE /api/v1/me/avatar", g.deleteAvatar, authUser, 0},

		// Connecting, and the HTTP fallback transports (transport.go,
		// tickets.go, sse.go, poll.go, publish.go).
		{"GET /api/v1/connect", g.connect, authUser, 0},
		{"POST /api/v1/stream/ticket", g.streamTicket, authUser, 0},
		// Authenticated inside: a Bearer token or a stream ticket.
		{"GET /api/v1/stream", g.stream, authNone, 0},
		{"GET /api/v1/poll", g.poll, authUser, 0},
		{"POST /api/v1/publish", g.publish, authUser, 0},
	}
}

// Handler returns every route of the port: the API table, MQTT over
// WebSocket, health, metrics and the web client.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range g.apiRoutes() {
		if rt.h != nil {
			mux.Handle(rt.pattern, g.wrap(rt))
		}
	}
	mux.HandleFunc("OPTIONS /api/v1/", g.preflight)
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, imerr.NotFound, "no such endpoint")
	})
	mux.HandleFunc("GET /mqtt", g.serveMQTT)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]any{}
		if g.o.Health != nil {
			out = g.o.Health()
		}
		out["status"] = "ok"
		writeJSON(w, http.StatusOK, out)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.o.Metrics.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/", g.static())
	return mux
}

// wrap is what every API route shares: no-store, CORS, the body limit,
// authentication by rt.access, panic recovery, the error to status mapping
// and the request counter by route pattern.
func (g *Gateway) wrap(rt route) http.Handler {
	limit := rt.limit
	if limit == 0 {
		limit = maxBody
	}
	h := rt.h
	if rt.access == authAdmin {
		h = g.admin(h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		defer func() {
			if p := recover(); p != nil {
				g.o.Log.Error("api handler panic", "route", rt.pattern, "panic", p)
				writeError(rec, http.StatusInternalServerError, imerr.Internal, "internal error")
			}
			g.o.Metrics.HTTPRequests.WithLabelValues(rt.pattern, strconv.Itoa(rec.status)).Inc()
		}()
		w.Header().Set("Cache-Control", "no-store")
		if !g.cors(w, r) {
			writeError(rec, http.StatusForbidden, imerr.Forbidden, "origin not allowed")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		user := ""
		if rt.access == authUser {
			tok, ok := bearerValue(r)
			if !ok {
				writeError(rec, http.StatusUnauthorized, imerr.Unauthorized, "missing Authorization: Bearer token")
				return
			}
			u, err := g.o.Accounts.VerifyToken(tok)
			if err != nil {
				writeError(rec, http.StatusUnauthorized, imerr.Unauthorized, "invalid or expired token")
				return
			}
			user = u
		}
		if err := h(rec, r, user); err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				if ae.retryAfter > 0 {
					rec.Header().Set("Retry-After", strconv.Itoa(ae.retryAfter))
				}
				writeError(rec, ae.status, ae.code, ae.msg)
				return
			}
			g.o.Log.Error("api error", "route", rt.pattern, "user", user, "error", err)
			if errors.Is(err, kvstore.ErrFull) {
				writeError(rec, http.StatusInsufficientStorage, imerr.StorageFull, "server storage is full; retry later")
				return
			}
			writeError(rec, http.StatusInternalServerError, imerr.Internal, "internal error")
		}
	})
}

// bearerValue is the credential of an "Authorization: Bearer x" header, the
// one place the header is parsed (user tokens, admin token, streams).
func bearerValue(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(tok), ok
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush and deadlines (SSE).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
