package hooks

import (
	"bytes"

	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mqim/mqim/accounts"
	"hash/fnv"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/presence"
	"github.com/mqim/mqim/topic"
)

// MaxSignalBytes bounds a ROAP message (an SDP offer is a few KiB).
const MaxSignalBytes = 64 << 10

// IM validates, stamps, stores and fans out every publish under im/, and keeps
// presence from device connects and disconnects.
type IM struct {
	mqtt.HookBase
	d *Deps
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
	// 0x97 is one of the few codes MQTT 5 allows in a PUBACK (3.4.2.1).
	imerr.StorageFull: packets.ErrQuotaExceeded,
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
	user := string(cl.Properties.Username)
	req := Request{User: user, ClientID: cl.ID, Topic: pk.TopicName, Payload: pk.Payload,
		PacketID: pk.PacketID, Dup: pk.FixedHeader.Dup && pk.FixedHeader.Qos > 0}
	if e := h.Handle(req); e != nil {
		return pk, refuse(cl, pk, e.Code)
	}
	// Accepted: the stamped copies are already out; the original is only acked.
	return pk, packets.CodeSuccessIgnore
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
	h.notify(Request{User: string(cl.Properties.Username), Topic: pk.TopicName}, e)
	return refuse(cl, pk, e.Code)
}

// Notify tells user, on its error topic, why something of theirs on topic
// was refused (a subscription the broker's guard refused, say).
func (h *IM) Notify(user, topic string, e *imerr.Error) {
	h.notify(Request{User: user, Topic: topic}, e)
}

// refuse is what OnPublish returns to mochi for a refused publish.
func refuse(cl *mqtt.Client, pk packets.Packet, code imerr.Code) error {
	switch {
	case cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0:
		return refusal[code]
	case (code == imerr.StorageFull || code == imerr.Internal) && pk.FixedHeader.Qos > 0:
		// Nothing was kept, so nothing may be acknowledged: no PUBACK, and
		// the client sends it again after reconnecting.
		return packets.ErrRejectPacket
	default:
		// MQTT 3.1.1 has no reason codes, and mochi would still deliver on a
		// packets.Code error: acknowledge and drop instead.
		return packets.CodeSuccessIgnore
	}
}

// Request is one publish into im/, from MQTT or from the HTTP API.
type Request struct {
	User     string
	ClientID string
	Topic    string
	Payload  []byte
	PacketID uint16
	Dup      bool // a QoS>0 retransmission
	// Stamped, if set, receives the stored message of an accepted chat
	// publish (the HTTP API answers with it).
	Stamped *envelope.Message
}

// Handle applies the im/ contract to one publish: authorise, validate, stamp,
// store and deliver. A refusal is returned after the error notice was sent;
// nothing of a refused publish is stored or delivered.
func (h *IM) Handle(r Request) *imerr.Error {
	t, err := topic.Parse(r.Topic)
	var e *imerr.Error
	if rate := h.d.publishRate(r.User); rate != nil {
		// Checked first: a flood costs one map lookup per message, and
		// MQTT and HTTP publishes share the user's bucket.
		e = rate
	} else if err != nil {
		e = imerr.New(imerr.Invalid, "unknown im/ topic %q", r.Topic)
	} else if e = h.d.Policy.CanPublish(r.User, t); e == nil {
		switch t.Kind {
		case topic.DM:
			e = h.dm(r, t)
		case topic.Group:
			e = h.group(r, t)
		case topic.Receipt:
			e = h.receipt(r, t)
		case topic.Typing:
			e = h.typing(r, t)
		case topic.GroupTyping:
			e = h.groupTyping(r, t)
		case topic.Signal:
			e = h.signal(r, t)
		case topic.Presence:
			e = h.presence(r)
		case topic.SyncRequest:
			e = h.sync(r)
		}
	}
	if e != nil {
		h.notify(r, e)
	}
	return e
}

func (h *IM) notify(r Request, e *imerr.Error) {
	h.d.Metrics.Refusals.WithLabelValues(string(e.Code)).Inc()
	n := envelope.Notice{Code: e.Code, Topic: r.Topic, Detail: e.Detail}
	if d, err := envelope.ParseDraft(r.Payload, envelope.Limits{BodyBytes: 1 << 30}); err == nil {
		n.CID = d.CID
	}
	// QoS 1 so a device that reconnects still learns why its message failed.
	h.publish("error", topic.ErrorTopic(r.User), envelope.Marshal(n), false, 1)
}

func (h *IM) publish(kind, t string, payload []byte, retain bool, qos byte) {
	if err := h.d.Broker.Publish(t, payload, retain, qos); err != nil {
		h.d.Log.Error("inline publish failed", "topic", t, "error", err)
		return
	}
	h.d.Metrics.Deliveries.WithLabelValues(kind).Inc()
}

func (h *IM) exists(user string) *imerr.Error {
	ok, err := h.d.Accounts.Exists(user)
	if err != nil {
		return imerr.New(imerr.Internal, "user lookup failed")
	}
	if !ok {
		return imerr.New(imerr.NotFound, "no such user %q", user)
	}
	return nil
}

// idemKey identifies a publish across retries: by the client's cid when it
// gives one (any device of the user), else by client id + packet id + payload
// hash, which only a QoS>0 retransmission (DUP) is checked against.
func idemKey(r Request, cid string) (key string, check bool) {
	if cid != "" {
		return "c/" + r.User + "/" + cid, true
	}
	if r.PacketID == 0 {
		return "", false
	}
	f := fnv.New64a()
	f.Write(r.Payload)
	return fmt.Sprintf("p/%s/%d/%s", r.ClientID, r.PacketID, hex.EncodeToString(f.Sum(nil))), r.Dup
}

// storeWait bounds how long a publisher's goroutine (a client's read loop)
// waits to hand a write to the history store: a stalled store answers
// "retry" instead of holding every publishing client forever. (A write
// once queued is waited for, so a stored message is never reported lost.)
const storeWait = 5 * time.Second

func storeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeWait)
}

func (h *IM) store(r Request, conv history.ConvID, m envelope.Message, recipients []string) (history.AppendResult, *imerr.Error) {
	key, check := idemKey(r, m.CID)
	start := time.Now()
	ctx, cancel := storeContext()
	defer cancel()
	res, err := h.d.History.Append(ctx, history.AppendRequest{
		Conv: conv, Msg: m, Recipients: recipients, IdemKey: key, IdemCheck: check})
	h.d.Metrics.StoreLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		h.d.Log.Error("history append failed", "conv", conv, "error", err)
		return res, storeError(err, "message could not be stored; retry")
	}
	return res, nil
}

// storeError is the protocol error for a failed history write.
func storeError(err error, detail string) *imerr.Error {
	if errors.Is(err, kvstore.ErrFull) {
		return imerr.New(imerr.StorageFull, "server storage is full: %s; retry later", strings.TrimSuffix(detail, "; retry"))
	}
	return imerr.New(imerr.Internal, "%s", detail)
}

func (h *IM) dm(r Request, t topic.Topic) *imerr.Error {
	to, from := t.Owner, r.User
	if e := h.exists(to); e != nil {
		return e
	}
	d, e := envelope.ParseDraft(r.Payload, h.d.Limits)
	if e != nil {
		return e
	}
	m := envelope.Message{From: from, To: to, Type: d.Type, Body: d.Body, CID: d.CID, Meta: d.Meta}
	recipients := []string{to, from}
	if to == from {
		recipients = recipients[:1]
	}
	res, e := h.store(r, history.DM(from, to), m, recipients)
	if e != nil {
		return e
	}
	h.d.Metrics.MessagesIn.WithLabelValues("dm").Inc()
	if r.Stamped != nil {
		*r.Stamped = res.Msg
	}
	if res.Duplicate {
		return nil // already delivered when first stored
	}
	payload := envelope.Marshal(res.Msg)
	h.publish("dm", t.String(), payload, false, 1)
	if to != from {
		// Carbon: the sender's other devices, and the sending device's ack.
		h.publish("dm", topic.Topic{Kind: topic.DM, Owner: from, Peer: to}.String(), payload, false, 1)
	}
	return nil
}

func (h *IM) group(r Request, t topic.Topic) *imerr.Error {
	members, err := h.d.Groups.Members(t.Group)
	if err != nil {
		return imerr.New(imerr.NotFound, "no such group %q", t.Group)
	}
	d, e := envelope.ParseDraft(r.Payload, h.d.Limits)
	if e != nil {
		return e
	}
	m := envelope.Message{From: r.User, Group: t.Group, Type: d.Type, Body: d.Body, CID: d.CID, Meta: d.Meta}
	res, e := h.store(r, history.Group(t.Group), m, members)
	if e != nil {
		return e
	}
	h.d.Metrics.MessagesIn.WithLabelValues("group").Inc()
	if r.Stamped != nil {
		*r.Stamped = res.Msg
	}
	if res.Duplicate {
		return nil
	}
	payload := envelope.Marshal(res.Msg)
	for _, u := range members {
		h.publish("group", topic.Topic{Kind: topic.GroupInbox, Owner: u, Group: t.Group}.String(), payload, false, 1)
	}
	return nil
}

func (h *IM) receipt(r Request, t topic.Topic) *imerr.Error {
	rc, e := envelope.ParseReceipt(r.Payload)
	if e != nil {
		return e
	}
	conv := history.DM(r.User, t.Owner)
	if rc.Group != "" {
		ok, _ := h.d.Groups.IsMember(rc.Group, r.User)
		if !ok {
			return imerr.New(imerr.Forbidden, "not a member of group %q", rc.Group)
		}
		conv = history.Group(rc.Group)
	} else if e := h.exists(t.Owner); e != nil {
		return e
	}
	if rc.Type == "read" {
		ctx, cancel := storeContext()
		defer cancel()
		if err := h.d.History.MarkRead(ctx, r.User, conv, rc.Seq); err != nil {
			h.d.Log.Error("mark read failed", "conv", conv, "error", err)
			return storeError(err, "read marker not stored; retry")
		}
	}
	h.d.Metrics.MessagesIn.WithLabelValues("receipt").Inc()
	rc.From, rc.TS = r.User, h.d.Now().UnixMilli()
	h.publish("receipt", t.String(), envelope.Marshal(rc), false, 1)
	if rc.Type == "read" && rc.Group == "" && t.Owner != r.User {
		// The reader's other devices learn the conversation was read.
		rc.Peer = t.Owner
		self := topic.Topic{Kind: topic.Receipt, Owner: r.User, Peer: r.User}.String()
		h.publish("receipt", self, envelope.Marshal(rc), false, 1)
	}
	return nil
}

func (h *IM) typing(r Request, t topic.Topic) *imerr.Error {
	state, e := envelope.ParseTypingState(r.Payload)
	if e != nil {
		return e
	}
	h.d.Metrics.MessagesIn.WithLabelValues("typing").Inc()
	// QoS 0: a typing indicator is worthless later and must not queue.
	h.publish("typing", t.String(), envelope.Marshal(envelope.Typing{From: r.User, State: state, TS: h.d.Now().UnixMilli()}), false, 0)
	return nil
}

func (h *IM) groupTyping(r Request, t topic.Topic) *imerr.Error {
	state, e := envelope.ParseTypingState(r.Payload)
	if e != nil {
		return e
	}
	members, err := h.d.Groups.Members(t.Group)
	if err != nil {
		return imerr.New(imerr.NotFound, "no such group %q", t.Group)
	}
	h.d.Metrics.MessagesIn.WithLabelValues("typing").Inc()
	payload := envelope.Marshal(envelope.Typing{From: r.User, State: state, TS: h.d.Now().UnixMilli(), Group: t.Group})
	for _, u := range members {
		if u != r.User {
			h.publish("typing", topic.Topic{Kind: topic.Typing, Owner: u, Peer: r.User}.String(), payload, false, 0)
		}
	}
	return nil
}

// signalFields are the ROAP fields the server reads or rewrites; the rest of
// the message is relayed untouched.
type signalFields struct {
	Type      string `json:"type"`
	SessionID string `json:"sessionID"`
}

func (h *IM) signal(r Request, t topic.Topic) *imerr.Error {
	if len(r.Payload) > MaxSignalBytes {
		return imerr.New(imerr.TooLarge, "signal over %d bytes", MaxSignalBytes)
	}
	var raw map[string]json.RawMessage
	var f signalFields
	if err := json.Unmarshal(r.Payload, &raw); err != nil {
		return imerr.New(imerr.Invalid, "signal must be a JSON object: %v", err)
	}
	if err := json.Unmarshal(r.Payload, &f); err != nil || f.Type == "" {
		return imerr.New(imerr.Invalid, "signal needs a string field type")
	}
	if e := h.exists(t.Owner); e != nil {
		return e
	}
	h.d.Metrics.MessagesIn.WithLabelValues("signal").Inc()
	back := topic.Topic{Kind: topic.Signal, Owner: r.User, Peer: t.Owner}.String()
	if !h.d.Presence.Online(t.Owner) {
		// Answer at once: a signal must never wait in a queue for minutes.
		h.publish("signal", back, envelope.Marshal(map[string]string{
			"type": "ERROR", "errorType": "OFFLINE", "from": t.Owner, "to": r.User, "sessionID": f.SessionID}), false, 0)
		return nil
	}
	// from/to are the verified identities, whatever the client wrote.
	raw["from"], _ = json.Marshal(r.User)
	raw["to"], _ = json.Marshal(t.Owner)
	out, _ := json.Marshal(raw)
	h.publish("signal", t.String(), out, false, 0)
	return nil
}

func (h *IM) presence(r Request) *imerr.Error {
	p, e := envelope.ParsePresence(r.Payload)
	if e != nil {
		return e
	}
	h.d.Metrics.MessagesIn.WithLabelValues("presence").Inc()
	h.setPresence(r.User, p.Status, p.Text)
	return nil
}

func (h *IM) setPresence(user, status, text string) {
	p := envelope.Presence{User: user, Status: status, Text: text, TS: h.d.Now().UnixMilli()}
	if k, _ := h.d.Accounts.Kind(user); k == accounts.KindDevice {
		p.Device = true
	}
	h.d.Presence.SetStatus(user, presenceStatus(p))
	h.publish("presence", topic.PresenceTopic(user), envelope.Marshal(p), true, 0)
}

// OnSessionEstablished publishes "online" when a user's first device arrives.
func (h *IM) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	user := string(cl.Properties.Username)
	h.d.Metrics.Connections.Inc()
	if h.d.Presence.Connect(user, cl.ID, cl) {
		h.setPresence(user, "online", "")
	}
}

// OnDisconnect publishes "offline" when a user's last device leaves, however
// it left (clean DISCONNECT, dropped socket, keepalive timeout, takeover).
func (h *IM) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.Net.Inline || cl.Net.Conn == nil {
		return // the inline client, or a session restored from storage at start
	}
	user := string(cl.Properties.Username)
	h.d.Metrics.Connections.Dec()
	if !cl.IsTakenOver() && h.d.Keys != nil {
		h.d.Keys.Unbind(cl.ID)
	}
	if h.d.Presence.Disconnect(user, cl.ID, cl) {
		h.setPresence(user, "offline", "")
	}
}

// maxSyncReply keeps a sync reply under the broker's packet size limit.
const maxSyncReply = 192 << 10

func (h *IM) sync(r Request) *imerr.Error {
	req, e := envelope.ParseSyncRequest(r.Payload)
	if e != nil {
		return e
	}
	cur, err := history.ParseCursor(req.Since)
	if err != nil {
		return imerr.New(imerr.Invalid, "malformed cursor")
	}
	limit := req.Limit
	if limit == 0 {
		limit = 100
	}
	reply := topic.Topic{Kind: topic.SyncReply, Owner: r.User}.String()
	for {
		ctx, cancel := storeContext()
		page, err := h.d.History.Sync(ctx, r.User, cur, limit)
		cancel()
		if errors.Is(err, history.ErrCursorEpoch) {
			h.publish("sync", reply, envelope.Marshal(envelope.SyncReply{ID: req.ID, Messages: []envelope.Message{}, Reset: true}), false, 1)
			return nil
		}
		if err != nil {
			h.d.Log.Error("sync failed", "user", r.User, "error", err)
			return imerr.New(imerr.Internal, "sync failed; retry")
		}
		if page.Messages == nil {
			page.Messages = []envelope.Message{}
		}
		out := envelope.Marshal(envelope.SyncReply{ID: req.ID, Messages: page.Messages, Cursor: page.Next.String(), More: page.More})
		if len(out) > maxSyncReply && limit > 1 {
			limit /= 2 // large bodies: fewer per reply, the client asks again
			continue
		}
		h.d.Metrics.MessagesIn.WithLabelValues("sync").Inc()
		h.publish("sync", reply, out, false, 1)
		return nil
	}
}

func presenceStatus(p envelope.Presence) presence.Status {
	return presence.Status{Status: p.Status, Text: p.Text, TS: p.TS}
}

// Online reports whether user has a device connected.
func (h *IM) Online(user string) bool { return h.d.Presence.Online(user) }
