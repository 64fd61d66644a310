// Package hooks holds the mochi broker hooks that turn a plain MQTT broker into
// the IM platform. The data path reads top to bottom:
//
//	listener -> Auth (CONNECT: credentials, session key {user}:{device}) -> ACL (subscribe filters)
//	-> Mounts (a mounted client's topics into mnt/{mount}/, and back on the way out)
//	-> IM.OnPublish -> im.Service (im/: authorise, validate, stamp, append)
//	-> history -> fanout -> device sessions (broker) / feeds (gateway)
//	-> Namespaces.OnPublish (outside im/: ACL decision, rate, retained quota)
//
// The client's original packet is acknowledged but never delivered itself.
// A chat message is appended to history once; the history store announces
// the commit to the fan-out (package fanout), from which every transport
// delivers it: MQTT device sessions by cursor (broker/delivery.go), SSE and
// long-poll feeds. That one path gives 1:1 carbons, group fan-out and QoS
// upgrades (a QoS 0 chat message still reaches offline devices). Ephemeral
// events (receipts, typing, signals, notices, presence) go through the same
// fan-out, and reach MQTT devices through the broker's topic tree at QoS 0
// for signals and typing, which never sit in an offline queue.
package hooks

import (
	"log/slog"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/metrics"
	"github.com/mqim/mqim/quota"
)

// Deps are what the hooks need; one value is shared by all of them.
type Deps struct {
	Log      *slog.Logger
	Accounts *accounts.Store
	Policy   *acl.Policy
	Metrics  *metrics.Metrics
	Keys     *KeyBindings
	// IM is the chat service the hooks adapt MQTT onto.
	IM *im.Service
	// Retained is the retained-message quota of operator namespaces; nil:
	// unlimited.
	Retained *quota.Retained
	// Space, if set, refuses retained publishes outside im/ while the disk
	// is below its reserve (im/ writes are refused by the history store).
	Space *kvstore.Space
	// Mounts holds connected clients' mounts (acl.Mount); nil: nobody is
	// mounted.
	Mounts *MountTable
}
