package platform

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/ratelimit"
	"github.com/mqim/mqim/registry"
)

// beatEvery is how often this node heart-beats into the registry; a node
// silent for nodeTTL drops out of it.
const (
	beatEvery = 5 * time.Second
	nodeTTL   = 3 * beatEvery
)

// nodeID is cfg's node id, or "{hostname}@{http address}".
func nodeID(cfg config.Config) string {
	if cfg.Cluster != nil {
		return cfg.Cluster.Node
	}
	if cfg.NodeID != "" {
		return cfg.NodeID
	}
	h, _ := os.Hostname()
	return fmt.Sprintf("%s@%s", h, cfg.HTTP)
}

// connLimits are cfg's per-IP connection limits.
func connLimits(cfg config.Config) ratelimit.ListenerLimits {
	return ratelimit.ListenerLimits{MaxConns: cfg.Limits.ConnsPerIP, Rate: cfg.Limits.ConnectRate, Burst: cfg.Limits.ConnectBurst}
}

// startBeat registers this node in p.Registry and keeps its load current:
// MQTT connections plus SSE streams and poll sessions.
func (p *Platform) startBeat() {
	ctx, cancel := context.WithCancel(context.Background())
	p.stopBeat, p.beatDone = cancel, make(chan struct{})
	id := nodeID(p.Config)
	self := func() registry.Node {
		url := p.Config.PublicURL
		if url == "" && p.Cluster != nil {
			// Other nodes hand this one out: it needs an address.
			url = "http://" + p.HTTPAddr.String()
		}
		return registry.Node{ID: id, URL: url, MQTT: p.MQTTAddr.String(),
			Load: int(atomic.LoadInt64(&p.Broker.Server.Info.ClientsConnected)) + p.Gateway.Feeds()}
	}
	go func() {
		registry.Beat(ctx, p.Registry, beatEvery, self, func(err error) { p.Log.Warn("registry heartbeat failed", "error", err) })
		close(p.beatDone)
	}()
}
