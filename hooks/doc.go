// Package hooks holds the mochi broker hooks that turn a plain MQTT broker into
// the IM platform. The data path reads top to bottom:
//
//	listener -> Auth (CONNECT: credentials, session key {user}:{device}) -> ACL (subscribe filters)
//	-> IM.OnPublish (im/: ACL decision, validate, stamp, store, fan-out) -> inboxes
//	-> Namespaces.OnPublish (outside im/: ACL decision, rate, retained quota)
//
// Every im/ delivery is a server-side (inline) publish of the stamped copy;
// the client's original packet is acknowledged but never delivered itself.
// That gives one uniform path for 1:1 carbons, group fan-out, QoS upgrades
// (a QoS 0 chat message still reaches offline devices) and QoS 0 downgrades
// (signals and typing never sit in an offline queue).
package hooks

import (
	"log/slog"
	"time"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/groups"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/metrics"
	"github.com/mqim/mqim/presence"
	"github.com/mqim/mqim/quota"
	"github.com/mqim/mqim/ratelimit"
)

// Publisher is the broker's inline publish (mochi's *Server satisfies it).
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Deps are what the hooks need; one value is shared by all of them.
type Deps struct {
	Log      *slog.Logger
	Accounts *accounts.Store
	Groups   *groups.Store
	History  history.Store
	Presence *presence.Tracker
	Policy   *acl.Policy
	Metrics  *metrics.Metrics
	Keys     *KeyBindings
	Limits   envelope.Limits
	Now      func() time.Time
	// PublishRate limits each user's publishes (im/ over MQTT and HTTP,
	// and operator namespaces); nil or a zero rate: unlimited.
	PublishRate *ratelimit.Buckets
	// Retained is the retained-message quota of operator namespaces; nil:
	// unlimited.
	Retained *quota.Retained
	// Broker is set once the mochi server exists (hooks are created first).
	Broker Publisher
	// Space, if set, refuses retained publishes outside im/ while the disk
	// is below its reserve (im/ writes are refused by the history store).
	Space *kvstore.Space
}

// publishRate takes one of user's publishes from PublishRate: the one check
// of the publish rate, for im/ and the operator namespaces alike.
func (d *Deps) publishRate(user string) *imerr.Error {
	if !d.PublishRate.Allow(user) {
		return imerr.New(imerr.RateLimited, "publishing too fast; slow down")
	}
	return nil
}
