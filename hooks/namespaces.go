package hooks

import (
	"bytes"
	"errors"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// Namespaces authorises publishes to the operator namespaces (topics
// outside im/, opened by config rules) and applies the per-user limits
// there, where mochi otherwise behaves as a plain broker: the publish rate
// shared with im/ (im.Service.AllowPublish), and the retained-message quota
// (Deps.Retained). A refusal is the same as in im/:
// an error notice on im/u/{me}/error, MQTT 5 PUBACK 0x97, and for MQTT 3.1.1
// a plain PUBACK with the message dropped.
//
// It must come after IM among the hooks: IM ends the OnPublish chain for
// every im/ publish, so this hook only sees the rest.
type Namespaces struct {
	mqtt.HookBase
	d   *Deps
	srv *mqtt.Server
}

// NewNamespaces returns the hook.
func NewNamespaces(d *Deps, srv *mqtt.Server) *Namespaces {
	return &Namespaces{d: d, srv: srv}
}

// ID implements mqtt.Hook.
func (h *Namespaces) ID() string { return "mqim-namespaces" }

// Provides implements mqtt.Hook.
func (h *Namespaces) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublish, mqtt.OnRetainMessage, mqtt.OnRetainedExpired, mqtt.OnWill, mqtt.OnStarted, mqtt.OnSubscribed}, []byte{b})
}

// operatorTopic reports whether t is in an operator namespace: not im/, not $SYS.
func operatorTopic(t string) bool {
	return !strings.HasPrefix(t, topic.Prefix) && !strings.HasPrefix(t, "$")
}

// OnPublish refuses a publish outside im/ that no operator rule lets the
// user make (Auth.OnACLCheck lets every write through to here), one over
// the user's rate, or a retained one over its retained quota. A retained
// delete (empty payload) is never refused by the quota: it only frees.
func (h *Namespaces) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || strings.HasPrefix(pk.TopicName, topic.Prefix) {
		return pk, nil
	}
	user := string(cl.Properties.Username)
	e := h.d.IM.AllowPublish(user) // first: a flood of refused publishes costs a lookup each
	if e == nil && !h.d.Policy.CanWrite(user, cl.ID, pk.TopicName) {
		e = imerr.New(imerr.Forbidden, "no operator rule lets %s publish to %q", user, truncate(pk.TopicName, 128))
	}
	if e == nil && pk.FixedHeader.Retain && operatorTopic(pk.TopicName) && !h.d.Retained.Admit(user, pk.TopicName, len(pk.Payload)) {
		e = h.retainedQuotaErr()
	}
	if e == nil {
		return pk, nil
	}
	h.d.IM.Notify(im.Request{User: user, ClientID: cl.ID, Topic: pk.TopicName, Payload: pk.Payload}, e)
	return pk, refuseQoS2(cl, pk, refuse(cl, pk, e.Code))
}

// refuseQoS2 answers a refused MQTT 5 QoS 2 publish with PUBREC and its
// reason code itself: mochi answers a reason-code error from OnPublish
// with a PUBACK whatever the QoS (v2.7.9 server.go:919), which a QoS 2
// publisher cannot match to its flow. A PUBREC of 0x80 or more ends the
// flow [MQTT-4.3.3], and packets.ErrRejectPacket leaves mochi no state of it.
func refuseQoS2(cl *mqtt.Client, pk packets.Packet, err error) error {
	var code packets.Code
	if pk.FixedHeader.Qos != 2 || !errors.As(err, &code) || code.Code < packets.ErrUnspecifiedError.Code {
		return err
	}
	_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID, ReasonCode: code.Code})
	return packets.ErrRejectPacket
}

func (h *Namespaces) retainedQuotaErr() *imerr.Error {
	return imerr.New(imerr.QuotaExceeded, "retained message quota reached (%d messages, %d bytes of topic and payload per user): delete retained messages (publish an empty retained payload) first",
		h.d.Retained.MaxCount, h.d.Retained.MaxBytes)
}

// OnWill keeps a will within the retained quota: over it, the will is
// still published, but not retained (mochi publishes wills without
// OnPublish, so this is their admission check).
func (h *Namespaces) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	user := string(cl.Properties.Username)
	if will.Retain && operatorTopic(will.TopicName) && !h.d.Retained.Admit(user, will.TopicName, len(will.Payload)) {
		will.Retain = false
		h.d.IM.Notify(im.Request{User: user, ClientID: cl.ID, Topic: will.TopicName}, h.retainedQuotaErr())
	}
	return will, nil
}

// OnRetainMessage records what the broker retained (or deleted), whatever
// the path: the ledger follows the broker's retained store.
func (h *Namespaces) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	if operatorTopic(pk.TopicName) && !cl.Net.Inline {
		h.d.Retained.Set(string(cl.Properties.Username), pk.TopicName, len(pk.Payload))
	}
}

// OnRetainedExpired frees an expired retained message (MQTT 5 message expiry).
func (h *Namespaces) OnRetainedExpired(t string) {
	if operatorTopic(t) {
		h.d.Retained.Set("", t, 0)
	}
}

// OnStarted charges each retained message restored from storage to the
// user that published it, so quotas survive a restart.
func (h *Namespaces) OnStarted() {
	for t, pk := range h.srv.Topics.Retained.GetAll() {
		if operatorTopic(t) {
			// mochi keeps only the client id of a retained message's publisher.
			h.d.Retained.Load(UserOf(pk.Origin), t, len(pk.Payload))
		}
	}
}
