// Package im is the chat service: the im/ contract of docs/protocol.md
// (authorise, validate, stamp, append, deliver, sync, receipts, typing,
// signals, presence) with no broker types in its API. The MQTT hooks, the
// HTTP publish and the SSE / long-poll feeds are thin adapters onto it.
//
// The data path: a transport hands a Request to Handle; the service checks
// it (acl.Policy, envelope), appends chat messages to history, and the
// history store announces each commit to the fan-out (package fanout), from
// which every transport delivers it. Ephemeral events (receipts, typing,
// signals, notices, presence) go out through the same fan-out.
package im

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/acl"
	"hash/fnv"
	"strings"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/fanout"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/presence"
	"github.com/mqim/mqim/topic"
)

// MaxSignalBytes bounds a ROAP message (an SDP offer is a few KiB).
const MaxSignalBytes = 64 << 10

// Service is the chat service: it authorises, validates, stamps, appends
// and delivers every publish under im/, whichever transport brought it
// (MQTT through hooks.IM, HTTP through the gateway), and keeps presence from
// devices connecting and leaving. Its API has no broker types: transports
// adapt onto it.
type Service struct {
	d Deps
}

// New returns the service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{d: d}
}

// Notify tells r.User, on its error topic, why r (a publish outside im/, a
// subscription the broker's guard refused) was refused.
func (h *Service) Notify(r Request, e *imerr.Error) { h.notify(r, e) }

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

	then func(*imerr.Error) // HandleAsync's done
}

// Handle applies the im/ contract to one publish: authorise, validate, stamp,
// store and deliver. A refusal is returned after the error notice was sent;
// nothing of a refused publish is stored or delivered.
func (h *Service) Handle(r Request) *imerr.Error {
	r.then = nil
	e, _ := h.handle(r)
	return e
}

// HandleAsync is Handle without waiting for the history store: done gets the
// outcome exactly once, before HandleAsync returns when it is decided at once
// (a refusal, a receipt, typing...), or later, on the store's writer, for a
// chat message being stored. Stored messages are completed in the order of
// the calls, so a transport can acknowledge in order [MQTT-4.6.0-2] while
// the next publishes are already being read. done must not block.
func (h *Service) HandleAsync(r Request, done func(*imerr.Error)) {
	r.then = done
	if e, queued := h.handle(r); !queued {
		done(e)
	}
}

func (h *Service) handle(r Request) (e *imerr.Error, queued bool) {
	t, err := topic.Parse(r.Topic)
	if rate := h.AllowPublish(r.User); rate != nil {
		// Checked first: a flood costs one map lookup per message, and
		// MQTT and HTTP publishes share the user's bucket.
		e = rate
	} else if err != nil {
		e = imerr.New(imerr.Invalid, "unknown im/ topic %q", r.Topic)
	} else if e = h.d.Policy.CanPublish(r.User, t); e == nil {
		switch t.Kind {
		case topic.DM:
			e, queued = h.dm(r, t)
		case topic.Group:
			e, queued = h.group(r, t)
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
	return e, queued
}

func (h *Service) notify(r Request, e *imerr.Error) {
	h.d.Metrics.Refusals.WithLabelValues(string(e.Code)).Inc()
	n := envelope.Notice{Code: e.Code, Topic: r.Topic, Detail: e.Detail, CID: envelope.CIDOf(r.Payload)}
	// QoS 1 so a device that reconnects still learns why its message failed.
	h.publish("error", r.User, topic.ErrorTopic(r.User), envelope.Marshal(n), false, 1)
}

// publish sends an ephemeral event on topic t to user's devices (user "":
// to everyone's, for presence) through the fan-out. Chat messages are not
// published: the log announces them once committed (see fanout).
func (h *Service) publish(kind, user, t string, payload []byte, retain bool, qos byte) {
	h.publishOn(h.d.Hub, kind, user, t, payload, retain, qos)
}

// publishOn is publish through hub.
func (h *Service) publishOn(hub fanout.Hub, kind, user, t string, payload []byte, retain bool, qos byte) {
	e := fanout.Event{Topic: t, Payload: payload, QoS: qos, Retain: retain}
	if user == "" {
		hub.Broadcast(e)
	} else {
		hub.Send(user, e)
	}
	h.d.Metrics.Deliveries.WithLabelValues(kind).Inc()
}

func (h *Service) exists(user string) *imerr.Error {
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

// store appends m for recipients. With r.then set it only queues the
// append (queued true) and reports the outcome through r.then, notice
// included; else it waits.
func (h *Service) store(r Request, kind string, conv history.ConvID, m envelope.Message, recipients []string) (e *imerr.Error, queued bool) {
	key, check := idemKey(r, m.CID)
	req := history.AppendRequest{Conv: conv, Msg: m, Recipients: recipients, IdemKey: key, IdemCheck: check}
	start := time.Now()
	finish := func(res history.AppendResult, err error) *imerr.Error {
		h.d.Metrics.StoreLatency.Observe(time.Since(start).Seconds())
		if err != nil {
			h.d.Log.Error("history append failed", "conv", conv, "error", err)
			return storeError(err, "message could not be stored; retry")
		}
		h.d.Metrics.MessagesIn.WithLabelValues(kind).Inc()
		if r.Stamped != nil {
			*r.Stamped = res.Msg
		}
		// Delivered from the log to every recipient's feed (for a DM the
		// carbon reaches the sender's other devices); a duplicate was
		// delivered when first stored.
		return nil
	}
	ctx, cancel := storeContext()
	defer cancel()
	if r.then != nil {
		then := r.then
		err := h.d.History.AppendAsync(ctx, req, func(res history.AppendResult, err error) {
			e := finish(res, err)
			if e != nil {
				h.notify(r, e)
			}
			then(e)
		})
		if err != nil {
			return finish(history.AppendResult{}, err), false
		}
		return nil, true
	}
	res, err := h.d.History.Append(ctx, req)
	return finish(res, err), false
}

// storeError is the protocol error for a failed history write.
func storeError(err error, detail string) *imerr.Error {
	if errors.Is(err, kvstore.ErrFull) {
		return imerr.New(imerr.StorageFull, "server storage is full: %s; retry later", strings.TrimSuffix(detail, "; retry"))
	}
	if errors.Is(err, history.ErrUnavailable) {
		return imerr.New(imerr.Unavailable, "%s: the cluster cannot replicate it now (no quorum reachable from this node)", detail)
	}
	return imerr.New(imerr.Internal, "%s", detail)
}

func (h *Service) dm(r Request, t topic.Topic) (*imerr.Error, bool) {
	to, from := t.Owner, r.User
	if e := h.exists(to); e != nil {
		return e, false
	}
	d, e := envelope.ParseDraft(r.Payload, h.d.Limits)
	if e != nil {
		return e, false
	}
	conv := history.DM(from, to)
	if e := h.refs(from, conv, d, ""); e != nil {
		return e, false
	}
	m := draftMessage(d)
	m.From, m.To = from, to
	recipients := []string{to, from}
	held, e := h.dmRequest(from, to, d.Body)
	if e != nil {
		return e, false
	}
	if to == from || held {
		// Held: stored in the conversation, in the sender's feed only
		// (requests.go).
		recipients = []string{from}
	}
	h.wrote(from, to)
	return h.store(r, "dm", conv, m, recipients)
}

func (h *Service) group(r Request, t topic.Topic) (*imerr.Error, bool) {
	g, err := h.d.Groups.Get(t.Group)
	if err != nil {
		return imerr.New(imerr.NotFound, "no such group %q", t.Group), false
	}
	d, e := envelope.ParseDraft(r.Payload, h.d.Limits)
	if e != nil {
		return e, false
	}
	conv := history.Group(t.Group)
	if e := h.refs(r.User, conv, d, g.Owner); e != nil {
		return e, false
	}
	m := draftMessage(d)
	m.From, m.Group = r.User, t.Group
	return h.store(r, "group", conv, m, g.Members)
}

// draftMessage is the message of draft d, before the server stamps it.
func draftMessage(d envelope.Draft) envelope.Message {
	return envelope.Message{Type: d.Type, Body: d.Body, CID: d.CID, Meta: d.Meta, ReplyTo: d.ReplyTo, Ref: d.Ref}
}

func (h *Service) receipt(r Request, t topic.Topic) *imerr.Error {
	rc, e := envelope.ParseReceipt(r.Payload)
	if e != nil {
		return e
	}
	// A receipt is about a conversation: the reader must be allowed to read
	// it (acl's one rule for that, as the history API asks).
	conv, c := history.DM(r.User, t.Owner), acl.DMWith(t.Owner)
	if rc.Group != "" {
		conv, c = history.Group(rc.Group), acl.InGroup(rc.Group)
	}
	if e := h.d.Policy.CanReadConversation(r.User, c); e != nil {
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
	h.publish("receipt", t.Owner, t.String(), envelope.Marshal(rc), false, 1)
	if rc.Type == "read" && rc.Group == "" && t.Owner != r.User {
		// The reader's other devices learn the conversation was read.
		rc.Peer = t.Owner
		self := topic.Topic{Kind: topic.Receipt, Owner: r.User, Peer: r.User}.String()
		h.publish("receipt", r.User, self, envelope.Marshal(rc), false, 1)
	}
	return nil
}

func (h *Service) typing(r Request, t topic.Topic) *imerr.Error {
	state, e := envelope.ParseTypingState(r.Payload)
	if e != nil {
		return e
	}
	h.d.Metrics.MessagesIn.WithLabelValues("typing").Inc()
	// QoS 0: a typing indicator is worthless later and must not queue.
	h.publish("typing", t.Owner, t.String(), envelope.Marshal(envelope.Typing{From: r.User, State: state, TS: h.d.Now().UnixMilli()}), false, 0)
	return nil
}

func (h *Service) groupTyping(r Request, t topic.Topic) *imerr.Error {
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
			h.publish("typing", u, topic.Topic{Kind: topic.Typing, Owner: u, Peer: r.User}.String(), payload, false, 0)
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

func (h *Service) signal(r Request, t topic.Topic) *imerr.Error {
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
		h.publish("signal", r.User, back, envelope.Marshal(map[string]string{
			"type": "ERROR", "errorType": "OFFLINE", "from": t.Owner, "to": r.User, "sessionID": f.SessionID}), false, 0)
		return nil
	}
	// from/to are the verified identities, whatever the client wrote.
	raw["from"], _ = json.Marshal(r.User)
	raw["to"], _ = json.Marshal(t.Owner)
	out, _ := json.Marshal(raw)
	h.publish("signal", t.Owner, t.String(), out, false, 0)
	return nil
}

func (h *Service) presence(r Request) *imerr.Error {
	p, e := envelope.ParsePresence(r.Payload)
	if e != nil {
		return e
	}
	h.d.Metrics.MessagesIn.WithLabelValues("presence").Inc()
	h.setPresence(r.User, p.Status, p.Text)
	return nil
}

func (h *Service) setPresence(user, status, text string) {
	p := envelope.Presence{User: user, Status: status, Text: text, TS: h.d.Now().UnixMilli()}
	h.d.Presence.SetStatus(user, presenceStatus(p))
	h.showPresenceOn(h.d.Hub, p)
}

// showPresenceOn publishes p as user's retained presence through hub.
func (h *Service) showPresenceOn(hub fanout.Hub, p envelope.Presence) {
	if k, _ := h.d.Accounts.Kind(p.User); k == accounts.KindDevice {
		p.Device = true
	}
	h.publishOn(hub, "presence", "", topic.PresenceTopic(p.User), envelope.Marshal(p), true, 0)
}

// InboxTopic is the topic user's devices receive chat message m on: the DM
// with its other party, or the group's inbox.
func InboxTopic(user string, m *envelope.Message) string {
	if m.Group != "" {
		return topic.Topic{Kind: topic.GroupInbox, Owner: user, Group: m.Group}.String()
	}
	peer := m.From
	if m.From == user {
		peer = m.To
	}
	return topic.Topic{Kind: topic.DM, Owner: user, Peer: peer}.String()
}

func presenceStatus(p envelope.Presence) presence.Status {
	return presence.Status{Status: p.Status, Text: p.Text, TS: p.TS}
}
