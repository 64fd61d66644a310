// Package gateway is the platform's HTTP face: the JSON API under /api/v1,
// MQTT over WebSocket at /mqtt, the embedded web client at /, /healthz and
// /metrics, all on one port.
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/broker"
	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/groups"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/metrics"
	"github.com/mqim/mqim/presence"
	"github.com/mqim/mqim/profiles"
	"github.com/mqim/mqim/ratelimit"
	"github.com/mqim/mqim/search"
	"github.com/mqim/mqim/userlists"
)

// Options are the gateway's collaborators and settings.
type Options struct {
	Log *slog.Logger
	// Health adds fields to GET /healthz (a cluster node's id and whether
	// it leads the log), or nil.
	Health   func() map[string]any
	Accounts *accounts.Store
	Groups   *groups.Store
	History  history.Store
	Presence presence.View
	// Policy decides what a user may see and do (acl; nil: the built-in
	// rules over Groups and Accounts, without blocks); Blocks holds the
	// block lists it consults, edited through /blocks; Contacts the
	// contact lists (/contacts).
	Policy   *acl.Policy
	Blocks   *userlists.List
	Contacts *userlists.List
	// Profiles holds display names and avatars; Directory turns
	// GET /users?q= on, limited per user by DirectoryRate.
	Profiles  *profiles.Store
	Directory bool
	// DMPolicy is the server's default dm_policy (config dm_policy).
	DMPolicy      string
	DirectoryRate *ratelimit.Buckets
	// Search is the message index of GET /search (search.go), limited
	// per user by SearchRate.
	Search           *search.Index
	SearchRate       *ratelimit.Buckets
	Metrics          *metrics.Metrics
	WS               *broker.ChanListener
	AllowedOrigins   []string
	OpenRegistration bool
	AdminToken       string // opens the admin endpoints (admin.go); "" keeps them closed
	MQTTAddr         string // advertised by GET /api/v1/connect
	// Transport: HTTP fallback transports, per-IP limits, node registry.
	Transport TransportOptions
	// KeyRevoked disconnects the sessions that authenticated with a key,
	// TokenRevoked those that did with a token (by its id), UserRevoked a
	// user's sessions on tokens and passwords.
	KeyRevoked   func(keyID string)
	TokenRevoked func(tokenID string)
	UserRevoked  func(user string)
	Now          func() time.Time

	// ICEServers (STUN/TURN) are advertised by GET /api/v1/connect.
	ICEServers []config.ICEServer
	// BodyBytes, the largest message body the server takes, is advertised by
	// GET /api/v1/connect so a composer can count against it before sending.
	BodyBytes int
}

// Gateway serves HTTP.
type Gateway struct {
	o       Options
	origins map[string]bool
	srv     *http.Server
	ln      net.Listener
	tr      transportState
	people  peopleState
}

// maxBody caps every request body.
const maxBody = 64 << 10

// New builds the gateway; Handler has its routes (routes.go).
func New(o Options) *Gateway {
	if o.Policy == nil {
		// The built-in im/ rules over the gateway's own stores, no blocks.
		o.Policy = &acl.Policy{Members: o.Groups, Accounts: o.Accounts}
	}
	g := &Gateway{o: o, origins: map[string]bool{}}
	g.tr.done = make(chan struct{})
	g.tr.streams.Max = o.Transport.StreamsPerUser
	g.tr.tickets.held.Max = o.Transport.TicketsPerUser
	g.people = peopleState{changes: ratelimit.NewBuckets(profileRate, profileBurst, o.Now), decodes: make(chan struct{}, avatarDecodes)}
	for _, s := range o.AllowedOrigins {
		g.origins[strings.TrimRight(s, "/")] = true
	}
	return g
}

// Listen binds addr (port 0 picks a free one).
func (g *Gateway) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ln = g.limitListener(ln)
	g.ln = ln
	g.srv = &http.Server{
		Handler: g.Handler(),
		// Slowloris-safe: bound header reads and idle keep-alives.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(g.o.Log.Handler(), slog.LevelWarn),
	}
	return ln.Addr(), nil
}

// Serve serves until Shutdown.
func (g *Gateway) Serve() error {
	err := g.srv.Serve(g.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for in-flight requests. Hijacked
// WebSocket connections belong to the broker, which closes them itself.
func (g *Gateway) Shutdown(ctx context.Context) error {
	if g.srv == nil {
		return nil
	}
	g.stopTransports()
	return g.srv.Shutdown(ctx)
}

// originAllowed accepts requests without Origin (non-browser clients), from
// the server's own origin, or from the configured allowlist.
func (g *Gateway) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return g.origins[strings.TrimRight(origin, "/")]
}
