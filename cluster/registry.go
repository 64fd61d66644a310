package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mqim/mqim/registry"
)

// Registry is the node registry of a cluster: a replicated JetStream
// key-value bucket whose entries expire TTL after their last heartbeat (the
// bucket's own TTL: a node that dies drops out with nobody deleting it).
// Every call is bounded by callTimeout, so no call waits long on another
// node (registry's contract).
type Registry struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	now func() time.Time
}

const (
	nodesBucket = "mqim_nodes"
	callTimeout = 2 * time.Second
)

// NewRegistry opens (or creates) the cluster's node registry. now is the
// clock of the TTL check on reads (nil: time.Now); the bucket's own expiry
// runs on the servers' clocks.
func NewRegistry(ctx context.Context, n *Node, ttl time.Duration, now func() time.Time) (*Registry, error) {
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var kv jetstream.KeyValue
	err := retry(ctx, func(ctx context.Context) (err error) {
		kv, err = n.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: nodesBucket, TTL: ttl, Replicas: n.cfg.Replicas, Storage: jetstream.MemoryStorage, History: 1})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: node registry: %w", err)
	}
	return &Registry{kv: kv, ttl: ttl, now: now}, nil
}

// Heartbeat implements registry.Registry.
func (r *Registry) Heartbeat(ctx context.Context, n registry.Node) error {
	if n.ID == "" {
		return errors.New("registry: node without id")
	}
	n.Seen = r.now()
	b, _ := json.Marshal(n)
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := r.kv.Put(ctx, n.ID, b)
	return err
}

// Leave implements registry.Registry.
func (r *Registry) Leave(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return r.kv.Delete(ctx, id)
}

// Live implements registry.Registry.
func (r *Registry) Live(ctx context.Context) ([]registry.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	keys, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer keys.Stop()
	now := r.now()
	var out []registry.Node
	for k := range keys.Keys() {
		e, err := r.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var n registry.Node
		if json.Unmarshal(e.Value(), &n) != nil || now.Sub(n.Seen) > r.ttl {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}
