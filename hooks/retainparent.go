package hooks

import (
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A filter "a/#" also matches "a" itself [MQTT-4.7.1-2], and so must a
// new subscription's retained messages [MQTT-3.3.1-9]; mochi v2.7.9 sends
// the retained messages below "a" but not the one on "a". OnSubscribed sends
// that one (read ACL checked like any delivery), for operator namespaces.
// docs/upstream/mochi-retained-parent.md has the reproduction.

// OnSubscribed implements mqtt.Hook.
func (h *Namespaces) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline {
		return
	}
	for i, sub := range pk.Filters {
		if i >= len(codes) || codes[i] >= 0x80 || sub.RetainHandling != 0 {
			continue // refused, or no retained messages wanted at subscribe
		}
		parent, ok := strings.CutSuffix(sub.Filter, "/#")
		if !ok || parent == "" || strings.HasPrefix(sub.Filter, "$share/") || !operatorTopic(parent) {
			continue
		}
		for _, rm := range h.srv.Topics.Messages(parent) {
			if strings.Count(rm.TopicName, "/") != strings.Count(parent, "/") {
				continue // below the parent: mochi sent it already
			}
			if !h.d.Policy.CanSubscribe(string(cl.Properties.Username), cl.ID, rm.TopicName) {
				continue
			}
			h.sendRetained(cl, rm, min(sub.Qos, rm.FixedHeader.Qos, 1))
		}
	}
}

// sendRetained writes retained message rm to cl at qos.
func (h *Namespaces) sendRetained(cl *mqtt.Client, rm packets.Packet, qos byte) {
	out := rm.Copy(false)
	out.FixedHeader.Retain, out.FixedHeader.Qos, out.FixedHeader.Dup = true, qos, false
	if qos > 0 {
		id, err := cl.NextPacketID()
		if err != nil {
			return
		}
		out.PacketID = uint16(id)
		if cl.State.Inflight.Set(out) { // so its PUBACK is recognised
			atomic.AddInt64(&h.srv.Info.Inflight, 1)
			cl.State.Inflight.DecreaseSendQuota()
		}
	}
	_ = cl.WritePacket(out)
}
