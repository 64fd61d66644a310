package hooks

import (
	"bytes"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// IM adapts MQTT onto the chat service (package im): every publish under
// im/ is handed to the service, and device connects and disconnects count
// for presence. What is MQTT's stays here: the reason code of a refusal and
// what the original packet becomes.
type IM struct {
	mqtt.HookBase
	d    *Deps
	acks acks
}

// NewIM returns the IM hook.
func NewIM(d *Deps) *IM { return &IM{d: d} }

// ID implements mqtt.Hook.
func (h *IM) ID() string { return "mqim-im" }

// Provides implements mqtt.Hook.
func (h *IM) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublish, mqtt.OnSessionEstablished, mqtt.OnDisconnect}, []byte{b})
}

// refusal maps protocol error codes to MQTT 5 PUBACK reason codes.
var refusal = map[imerr.Code]packets.Code{
	imerr.Forbidden:     packets.ErrNotAuthorized,
	imerr.Invalid:       packets.ErrPayloadFormatInvalid,
	imerr.TooLarge:      packets.ErrQuotaExceeded, // not 0x95: a CONNACK/DISCONNECT code only
	imerr.RateLimited:   packets.ErrQuotaExceeded,
	imerr.QuotaExceeded: packets.ErrQuotaExceeded,
	imerr.NotFound:      packets.ErrTopicNameInvalid,
	imerr.Internal:      packets.ErrUnspecifiedError,
	// An edit, retract or reaction of a retracted message.
	imerr.Conflict: packets.ErrImplementationSpecificError,
	// 0x97 is one of the few codes MQTT 5 allows in a PUBACK (3.4.2.1).
	imerr.StorageFull: packets.ErrQuotaExceeded,
	imerr.Unavailable: packets.ErrUnspecifiedError,
}

// unkept reports whether a refusal kept nothing of a publish the client
// must therefore send again: an MQTT 3.1.1 client gets no PUBACK for it.
func unkept(code imerr.Code) bool {
	return code == imerr.StorageFull || code == imerr.Internal || code == imerr.Unavailable
}

// OnPublish handles every publish. Inline (server) publishes and topics
// outside im/ pass through unchanged.
func (h *IM) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if !bytes.HasPrefix([]byte(pk.TopicName), []byte(topic.Prefix)) {
		return pk, h.storable(cl, pk)
	}
	req := im.Request{User: string(cl.Properties.Username), ClientID: cl.ID, Topic: pk.TopicName, Payload: pk.Payload,
		PacketID: pk.PacketID, Dup: pk.FixedHeader.Dup && pk.FixedHeader.Qos > 0}
	switch pk.FixedHeader.Qos {
	case 0:
		h.d.IM.HandleAsync(req, func(e *imerr.Error) { h.logRefusal(cl, pk, e) }) // nothing to answer
		return pk, packets.CodeSuccessIgnore
	case 2:
		// Rare for chat; mochi runs the PUBREC/PUBREL exchange once the
		// store has answered.
		if e := h.d.IM.Handle(req); e != nil {
			return pk, refuseQoS2(cl, pk, refuse(cl, pk, e.Code))
		}
		return pk, packets.CodeSuccessIgnore
	}
	// QoS 1: answered in arrival order once decided (see acks.go). The
	// stamped message is in the log and on its way; the original is only
	// acknowledged.
	q := h.acks.queue(cl)
	slot := q.add(pk.PacketID, cl.Properties.ProtocolVersion == 5)
	if slot == nil {
		// [MQTT-3.3.4-8]: DISCONNECT 0x93 (mochi would answer a PUBACK with
		// a code PUBACK does not allow).
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode: packets.ErrReceiveMaximum.Code})
		cl.Stop(packets.ErrReceiveMaximum)
		return pk, packets.ErrRejectPacket
	}
	h.d.IM.HandleAsync(req, func(e *imerr.Error) {
		h.logRefusal(cl, pk, e)
		q.complete(cl, slot, e)
	})
	return pk, packets.ErrRejectPacket // its PUBACK comes from the queue
}

// logRefusal leaves one concise line per refused publish (the client, the
// topic, the reason; never the payload), as broker/log.go makes of mochi's
// own report for refusals mochi answers.
func (h *IM) logRefusal(cl *mqtt.Client, pk packets.Packet, e *imerr.Error) {
	if e != nil {
		h.d.Log.Warn("publish refused", "client", cl.ID, "topic", pk.TopicName, "reason", refusal[e.Code].Reason, "detail", e.Detail)
	}
}

// storable refuses a retained publish outside im/ while the disk is below its
// reserve: mochi would acknowledge it and then fail to keep it.
func (h *IM) storable(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.FixedHeader.Retain || h.d.Space.Err() == nil {
		return nil
	}
	return h.Refuse(cl, pk, imerr.New(imerr.StorageFull, "server storage is full: retained message not kept; retry later"))
}

// Refuse sends the error notice for a refused publish outside im/ and
// returns what OnPublish hands mochi for it.
func (h *IM) Refuse(cl *mqtt.Client, pk packets.Packet, e *imerr.Error) error {
	h.d.IM.Notify(im.Request{User: string(cl.Properties.Username), ClientID: cl.ID, Topic: pk.TopicName, Payload: pk.Payload}, e)
	return refuse(cl, pk, e.Code)
}

// refuse is what OnPublish returns to mochi for a refused publish.
func refuse(cl *mqtt.Client, pk packets.Packet, code imerr.Code) error {
	switch {
	case cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0:
		return refusal[code]
	case unkept(code) && pk.FixedHeader.Qos > 0:
		// Nothing was kept, so nothing may be acknowledged: no PUBACK, and
		// the client sends it again after reconnecting.
		return packets.ErrRejectPacket
	default:
		// MQTT 3.1.1 has no reason codes, and mochi would still deliver on a
		// packets.Code error: acknowledge and drop instead.
		return packets.CodeSuccessIgnore
	}
}

// OnSessionEstablished counts the device for presence ("online" when it is
// the user's first).
func (h *IM) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.d.IM.DeviceConnected(string(cl.Properties.Username), cl.ID, cl)
}

// OnDisconnect is OnSessionEstablished's counterpart, however the device
// left (clean DISCONNECT, dropped socket, keepalive timeout, takeover).
func (h *IM) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.Net.Inline || cl.Net.Conn == nil {
		return // the inline client, or a session restored from storage at start
	}
	h.acks.forget(cl)
	if !cl.IsTakenOver() && h.d.Keys != nil {
		h.d.Keys.Unbind(cl.ID)
	}
	h.d.IM.DeviceDisconnected(string(cl.Properties.Username), cl.ID, cl)
}
