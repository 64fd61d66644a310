package hooks

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/acl"
)

// MountTable holds the mount prefix ("mnt/{name}/", acl.Mount) of each
// connected client that has one; Auth sets it when a CONNECT is accepted.
type MountTable struct {
	m sync.Map // *mqtt.Client -> string
	n atomic.Int64
}

// NewMountTable returns an empty table.
func NewMountTable() *MountTable { return &MountTable{} }

func (t *MountTable) set(cl *mqtt.Client, prefix string) {
	if t == nil || prefix == "" {
		return
	}
	if _, loaded := t.m.Swap(cl, prefix); !loaded {
		t.n.Add(1)
	}
}

func (t *MountTable) forget(cl *mqtt.Client) {
	if t == nil {
		return
	}
	if _, ok := t.m.LoadAndDelete(cl); ok {
		t.n.Add(-1)
	}
}

// Of is cl's mount prefix, "" for an unmounted client.
func (t *MountTable) Of(cl *mqtt.Client) string {
	if t == nil || t.n.Load() == 0 {
		return "" // no mounted client: one atomic load per packet
	}
	if v, ok := t.m.Load(cl); ok {
		return v.(string)
	}
	return ""
}

// MountIn maps client topic or filter t into the mount prefix (see
// acl.Mounted for what is left as it is); a shared subscription's filter
// is mapped inside its $share/{group}/.
func MountIn(prefix, t string) string {
	if prefix == "" {
		return t
	}
	if rest, ok := strings.CutPrefix(t, "$share/"); ok {
		group, f, ok := strings.Cut(rest, "/")
		if !ok || !acl.Mounted(f) {
			return t
		}
		return "$share/" + group + "/" + prefix + f
	}
	if !acl.Mounted(t) {
		return t
	}
	return prefix + t
}

// MountOut is MountIn's inverse for a topic the broker sends: the client's
// own name for a topic of its mount; any other topic (im/, $SYS) as it is.
func MountOut(prefix, t string) string {
	if prefix == "" {
		return t
	}
	if rest, ok := strings.CutPrefix(t, prefix); ok {
		return rest
	}
	return t
}

// Mounts maps a mounted client's topics (acl.Mount): PUBLISH topics and
// SUBSCRIBE / UNSUBSCRIBE filters into the mount as they are read, and the
// topics of the PUBLISHes written to it back out, whatever sent them
// (live deliveries, retained messages, shared subscriptions, the offline
// queue's resends). Its will was mapped at CONNECT (Auth). It must come
// right after Auth, whose OnPacketRead resolves topic aliases first: the
// alias table keeps the client's own names.
type Mounts struct {
	mqtt.HookBase
	t *MountTable
}

// NewMounts returns the hook over t.
func NewMounts(t *MountTable) *Mounts { return &Mounts{t: t} }

// ID implements mqtt.Hook.
func (h *Mounts) ID() string { return "mqim-mounts" }

// Provides implements mqtt.Hook.
func (h *Mounts) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnDisconnect, mqtt.OnClientExpired}, []byte{b})
}

// OnPacketRead maps what a mounted client sends into its mount.
func (h *Mounts) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	prefix := h.t.Of(cl)
	if prefix == "" {
		return pk, nil
	}
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.TopicName == "" {
			return pk, nil // an alias Auth could not resolve: mochi refuses it
		}
		pk.TopicName = MountIn(prefix, pk.TopicName)
		if pk.Properties.TopicAlias > 0 {
			// Auth stored the alias with the client's own name; mochi would
			// store it again, with the mapped one, and the next publish by
			// that alias would be mapped twice. The alias number stays, so
			// mochi still checks it against Topic Alias Maximum (and an
			// alias 0, flag kept, is refused as invalid [MQTT-3.3.2-8]).
			pk.Properties.TopicAliasFlag = false
		}
	case packets.Subscribe, packets.Unsubscribe:
		filters := make(packets.Subscriptions, len(pk.Filters))
		copy(filters, pk.Filters)
		for i := range filters {
			filters[i].Filter = MountIn(prefix, filters[i].Filter)
		}
		pk.Filters = filters
	}
	return pk, nil
}

// OnPacketEncode gives a mounted client its own topic names back.
func (h *Mounts) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Publish || pk.TopicName == "" {
		return pk // "": an outbound alias, set up with the unmapped name
	}
	if prefix := h.t.Of(cl); prefix != "" {
		pk.TopicName = MountOut(prefix, pk.TopicName)
	}
	return pk
}

// OnDisconnect forgets the client.
func (h *Mounts) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.t.forget(cl) }

// OnClientExpired forgets a client whose connection failed between its
// CONNECT's acceptance and its read loop (a CONNACK that could not be
// written): mochi calls no OnDisconnect for it, but expires its session.
func (h *Mounts) OnClientExpired(cl *mqtt.Client) { h.t.forget(cl) }
