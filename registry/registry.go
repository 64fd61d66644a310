// Package registry is the central server's list of live nodes: each node
// registers itself and heart-beats its load, and GET /api/v1/connect hands a
// client the least loaded live node's WebSocket and SSE URLs.
//
// Registry is the interface a clustered backend (a distributed store) must
// also satisfy. Its contract:
//
//   - Heartbeat registers a node or refreshes it (URLs and load replace the
//     previous values). A node is live from its last heartbeat for the
//     registry's TTL; a node that stops heart-beating drops out of Live by
//     itself, with no call from anyone.
//   - Leave removes a node at once (clean shutdown).
//   - Live returns the live nodes in no particular order; it may lag a
//     heartbeat by the backend's replication delay, never by more than TTL.
//   - Every method is safe for concurrent use, and no method blocks on
//     another node.
//
// Memory is the single-node, in-memory implementation.
package registry

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"
)

// Node is one server as the registry sees it.
type Node struct {
	// ID names the node; unique within the cluster.
	ID string `json:"id"`
	// URL is the node's public base URL (scheme://host[:port]) that browsers
	// reach; empty means "whatever host the client used" (single node).
	URL string `json:"url,omitempty"`
	// MQTT is the node's MQTT over TCP address, host:port.
	MQTT string `json:"mqtt,omitempty"`
	// Load is the node's current connection count (MQTT clients and HTTP
	// streams); lower is better.
	Load int `json:"load"`
	// Seen is the time of the last heartbeat, set by the registry.
	Seen time.Time `json:"seen"`
}

// Registry is the node registry. See the package doc for the contract.
type Registry interface {
	Heartbeat(ctx context.Context, n Node) error
	Leave(ctx context.Context, id string) error
	Live(ctx context.Context) ([]Node, error)
}

// ErrNoNode is returned by Pick when no node is live.
var ErrNoNode = errors.New("registry: no live node")

// Pick returns the least loaded live node; ties go to the lowest id, so every
// caller picks the same node from the same view.
func Pick(ctx context.Context, r Registry) (Node, error) { return PickExcept(ctx, r, "") }

// PickExcept is Pick without the node named except, unless it is the only
// live one (a client that just lost its node asks for another: the
// registry only forgets a dead node after its TTL).
func PickExcept(ctx context.Context, r Registry, except string) (Node, error) {
	nodes, err := r.Live(ctx)
	if err != nil {
		return Node{}, err
	}
	if others := slices.DeleteFunc(slices.Clone(nodes), func(n Node) bool { return n.ID == except }); len(others) > 0 {
		nodes = others
	}
	if len(nodes) == 0 {
		return Node{}, ErrNoNode
	}
	sort.Slice(nodes, func(i, j int) bool {
		if nodes[i].Load != nodes[j].Load {
			return nodes[i].Load < nodes[j].Load
		}
		return nodes[i].ID < nodes[j].ID
	})
	return nodes[0], nil
}

// Memory is a Registry held in one process's memory.
type Memory struct {
	ttl   time.Duration
	now   func() time.Time
	mu    sync.Mutex
	nodes map[string]Node
}

// NewMemory returns an empty registry whose nodes live ttl after their last
// heartbeat. now is the clock; nil means time.Now.
func NewMemory(ttl time.Duration, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{ttl: ttl, now: now, nodes: map[string]Node{}}
}

// Heartbeat implements Registry.
func (m *Memory) Heartbeat(_ context.Context, n Node) error {
	if n.ID == "" {
		return errors.New("registry: node without id")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n.Seen = m.now()
	m.nodes[n.ID] = n
	return nil
}

// Leave implements Registry.
func (m *Memory) Leave(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.nodes, id)
	return nil
}

// Live implements Registry; nodes past their TTL are dropped here.
func (m *Memory) Live(_ context.Context) ([]Node, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Node, 0, len(m.nodes))
	for id, n := range m.nodes {
		if now.Sub(n.Seen) > m.ttl {
			delete(m.nodes, id)
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// Beat heart-beats self into r every interval until ctx ends, then leaves.
// self is called for each beat, so the load is current. Errors are passed to
// onErr (nil: ignored) and the next beat retries.
func Beat(ctx context.Context, r Registry, interval time.Duration, self func() Node, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := r.Heartbeat(ctx, self()); err != nil && onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			_ = r.Leave(context.Background(), self().ID)
			return
		case <-t.C:
		}
	}
}
