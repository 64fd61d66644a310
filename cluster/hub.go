package cluster

import (
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/mqim/mqim/fanout"
)

// Hub is the fan-out seam of a cluster node. Entries stay local: every
// node's view commits every message and announces it to its own
// fanout.Local. Events (receipts, typing, signals, notices, presence) are
// delivered here and published on core NATS to the other nodes, which
// deliver them to their own devices: at most once, in Send order per
// user, as fanout's contract asks (one connection, one subject).
type Hub struct {
	*fanout.Local
	n   *Node
	sub *nats.Subscription
}

// Event headers. The user travels in a header, not the subject, because
// user ids may contain '.', NATS's token separator.
const (
	hdrUser   = "U" // absent: a broadcast
	hdrTopic  = "T"
	hdrQoS    = "Q"
	hdrRetain = "R"
)

// NewHub wraps local so that events reach the other nodes too.
func NewHub(n *Node, local *fanout.Local) (*Hub, error) {
	h := &Hub{Local: local, n: n}
	sub, err := n.ev.Subscribe(evSubject, h.receive)
	if err != nil {
		return nil, err
	}
	// An event nobody drains in time is dropped (at most once), never
	// allowed to grow without bound.
	if err := sub.SetPendingLimits(65536, 64<<20); err != nil {
		return nil, err
	}
	h.sub = sub
	return h, nil
}

// Send implements fanout.Hub.
func (h *Hub) Send(user string, e fanout.Event) {
	h.Local.Send(user, e)
	h.publish(user, e)
}

// Broadcast implements fanout.Hub.
func (h *Hub) Broadcast(e fanout.Event) {
	h.Local.Broadcast(e)
	h.publish("", e)
}

func (h *Hub) publish(user string, e fanout.Event) {
	m := nats.NewMsg(evSubject)
	if user != "" {
		m.Header.Set(hdrUser, user)
	}
	m.Header.Set(hdrTopic, e.Topic)
	m.Header.Set(hdrQoS, strconv.Itoa(int(e.QoS)))
	if e.Retain {
		m.Header.Set(hdrRetain, "1")
	}
	m.Data = e.Payload
	if err := h.n.ev.PublishMsg(m); err != nil {
		h.n.log.Warn("cluster: event not sent to other nodes", "topic", e.Topic, "err", err)
	}
}

// receive delivers another node's event to this node's sinks and broker.
func (h *Hub) receive(m *nats.Msg) {
	q, _ := strconv.Atoi(m.Header.Get(hdrQoS))
	e := fanout.Event{Topic: m.Header.Get(hdrTopic), Payload: m.Data, QoS: byte(q), Retain: m.Header.Get(hdrRetain) == "1"}
	if e.Topic == "" {
		return
	}
	if u := m.Header.Get(hdrUser); u != "" {
		h.Local.Send(u, e)
		return
	}
	h.Local.Broadcast(e)
}

// Close stops taking other nodes' events.
func (h *Hub) Close() error { return h.sub.Unsubscribe() }
