package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/fanout"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/quota"
	"github.com/mqim/mqim/ratelimit"
	"github.com/mqim/mqim/registry"
)

// HTTP fallback transports for clients without a working WebSocket:
// GET /api/v1/stream (Server-Sent Events), GET /api/v1/poll (long-poll) and
// POST /api/v1/publish. See docs/protocol.md, "HTTP fallback transports".

// TransportOptions configure the HTTP fallback transports (SSE, long-poll,
// HTTP publish), the per-IP connection limits of the HTTP port and the node
// registry behind GET /api/v1/connect.
type TransportOptions struct {
	// IM applies the im/ contract to HTTP publishes, and counts HTTP
	// devices for presence.
	IM *im.Service
	// Hub is the fan-out the feeds consume; Broker holds the retained
	// presence a new feed starts with.
	Hub    fanout.Hub
	Broker *mqtt.Server
	// Registry lists live nodes; NodeID is this node's id in it. Without a
	// registry, /connect answers with this node.
	Registry registry.Registry
	NodeID   string
	// Limits bound connections per client IP on the HTTP port (API, SSE and
	// MQTT over WebSocket alike).
	Limits ratelimit.ListenerLimits
	// Heartbeat is the SSE comment interval (default 15 s); PollIdle how
	// long a poll session outlives its last poll (default 45 s).
	Heartbeat time.Duration
	PollIdle  time.Duration
	// StreamsPerUser caps one user's SSE streams and poll sessions
	// together; TicketsPerUser its unused stream tickets (0: no cap).
	StreamsPerUser int
	TicketsPerUser int
}

// transportState is the gateway's state for the fallback transports.
type transportState struct {
	tickets  tickets
	polls    polls
	streams  quota.Slots  // open feeds (SSE streams and poll sessions) per user
	feeds    atomic.Int64 // open SSE streams and poll sessions
	done     chan struct{}
	doneOnce sync.Once
}

// Feeds is the number of open SSE streams and poll sessions (node load).
func (g *Gateway) Feeds() int { return int(g.tr.feeds.Load()) }

// limitListener applies the per-IP limits to the HTTP port.
func (g *Gateway) limitListener(l net.Listener) net.Listener {
	lim := g.o.Transport.Limits
	if lim.MaxConns == 0 && lim.Rate == 0 {
		return l
	}
	return ratelimit.NewListener(l, lim)
}

// stopTransports ends every stream and long poll (before the HTTP server's
// Shutdown, which would otherwise wait for them) and closes poll sessions.
func (g *Gateway) stopTransports() {
	g.tr.doneOnce.Do(func() { close(g.tr.done) })
	g.closePolls(func(*pollSession) bool { return true })
}

// connect serves GET /api/v1/connect[?exclude=NODE]: where this client
// should connect, chosen by the registry (least loaded live node, other
// than the one a client just lost); a node with no public URL of its own,
// or this node, is reached at the host the client used.
func (g *Gateway) connect(w http.ResponseWriter, r *http.Request, _ string) error {
	node := registry.Node{ID: g.o.Transport.NodeID}
	if reg := g.o.Transport.Registry; reg != nil {
		if n, err := registry.PickExcept(r.Context(), reg, r.URL.Query().Get("exclude")); err == nil {
			node = n
		}
	}
	base := node.URL
	if base == "" || node.ID == g.o.Transport.NodeID {
		scheme := "http"
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	base = strings.TrimRight(base, "/")
	ws := "ws" + strings.TrimPrefix(base, "http") + "/mqtt"
	mqttAddr := node.MQTT
	if mqttAddr == "" || node.ID == g.o.Transport.NodeID {
		mqttAddr = g.o.MQTTAddr
	}
	mqttURL := "tcp://" + mqttAddr
	if host, port, err := net.SplitHostPort(mqttAddr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		reqHost, _, _ := net.SplitHostPort(r.Host)
		if reqHost == "" {
			reqHost = r.Host
		}
		mqttURL = "tcp://" + net.JoinHostPort(reqHost, port)
	}
	ice := g.o.ICEServers
	if ice == nil {
		ice = []config.ICEServer{} // "ice_servers": [] rather than null
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"node": node.ID, "http": base, "ws": ws, "mqtt": mqttURL, "ice_servers": ice,
		"limits": map[string]int{"body_bytes": g.o.BodyBytes},
		"sse":    base + "/api/v1/stream", "poll": base + "/api/v1/poll", "publish": base + "/api/v1/publish",
	})
	return nil
}

// connectSources is the CSP connect-src of the web client: this origin (and
// its WebSocket form), plus every live node's.
func (g *Gateway) connectSources(r *http.Request) string {
	srcs := []string{"'self'", "ws://" + r.Host, "wss://" + r.Host}
	if reg := g.o.Transport.Registry; reg != nil {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		nodes, _ := reg.Live(ctx)
		for _, n := range nodes {
			if u := strings.TrimRight(n.URL, "/"); u != "" && !strings.ContainsAny(u, " ;,'\"") {
				srcs = append(srcs, u, "ws"+strings.TrimPrefix(u, "http"))
			}
		}
	}
	return strings.Join(srcs, " ")
}
