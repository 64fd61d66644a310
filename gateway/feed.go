package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// A feed is one HTTP device's view of its user's inbox, shared by the SSE
// stream and long-poll sessions. It delivers what an MQTT device subscribed
// to im/u/{me}/# and im/presence/+ receives, split by guarantee:
//
//   - Chat messages (im/u/{me}/dm/..., im/u/{me}/g/...) are read from the
//     user's history feed (history.Store.Sync), one message per read so each
//     carries the sync cursor right after it: resuming from any cursor is
//     gap-free and duplicate-free. The inbox tap only wakes the reader.
//   - Everything else (receipts, typing, signals, error notices, sync
//     replies, presence) is taken from the tap as published, into a bounded
//     buffer: at most once, like MQTT QoS 0 to a connected client.
//
// While a feed is open it counts as a device of its user for presence.
type feed struct {
	g        *Gateway
	user     string
	clientID string // "{user}:{device}/sse" or "/poll": never an MQTT client id
	subID    int

	mu      sync.Mutex
	events  []event // ephemeral events not yet taken
	dropped int     // ephemeral events lost to the bound since the last take
	closed  bool
	wake    chan struct{} // capacity 1: "something may have arrived"
}

// event is one delivery: an inbox topic and its payload, and for chat
// messages the feed cursor after it.
type event struct {
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"`
	ID      string          `json:"id,omitempty"`
}

// maxFeedEvents bounds a feed's ephemeral buffer; past it the oldest go.
const maxFeedEvents = 256

// feedSubIDs numbers inline subscriptions; mochi keys them by filter and id.
var feedSubIDs atomic.Int64

func init() { feedSubIDs.Store(1 << 20) }

// openFeed taps user's inbox and presence and registers the device. Each
// open feed holds one of user's stream slots (limits.streams_per_user):
// every presence update is copied into every feed, so feeds are what a user
// must not multiply. Over the limit, the user's oldest idle poll session
// gives way; with none, the answer is 429 quota_exceeded (an SSE stream is
// a live connection, gone as soon as its client is, so never evicted).
func (g *Gateway) openFeed(user, device, kind string) (*feed, error) {
	if !g.tr.streams.Take(user) && !(g.evictIdlePoll(user) && g.tr.streams.Take(user)) {
		return nil, fail(http.StatusTooManyRequests, imerr.QuotaExceeded,
			"%d streams and poll sessions open: close one first", g.tr.streams.Max)
	}
	f := &feed{g: g, user: user, clientID: user + ":" + device + "/" + kind,
		subID: int(feedSubIDs.Add(1)), wake: make(chan struct{}, 1)}
	if err := g.o.Transport.Broker.Subscribe(topic.Inbox(user), f.subID, f.tap); err != nil {
		g.tr.streams.Release(user)
		return nil, fmt.Errorf("gateway: tap inbox of %s: %w", user, err)
	}
	if err := g.o.Transport.Broker.Subscribe(topic.PresenceTopic("+"), f.subID, f.tap); err != nil {
		_ = g.o.Transport.Broker.Unsubscribe(topic.Inbox(user), f.subID)
		g.tr.streams.Release(user)
		return nil, fmt.Errorf("gateway: tap presence: %w", err)
	}
	// Like an MQTT SUBSCRIBE to im/presence/+, start with the retained state.
	for _, pk := range g.o.Transport.Broker.Topics.Messages(topic.PresenceTopic("+")) {
		f.push(pk.TopicName, pk.Payload)
	}
	g.tr.feeds.Add(1)
	g.o.Transport.IM.DeviceConnected(user, f.clientID, f)
	return f, nil
}

// close unregisters the device and removes the tap (idempotent).
func (f *feed) close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.mu.Unlock()
	_ = f.g.o.Transport.Broker.Unsubscribe(topic.Inbox(f.user), f.subID)
	_ = f.g.o.Transport.Broker.Unsubscribe(topic.PresenceTopic("+"), f.subID)
	f.g.tr.feeds.Add(-1)
	f.g.tr.streams.Release(f.user)
	f.g.o.Transport.IM.DeviceDisconnected(f.user, f.clientID, f)
}

// tap runs on the publisher's goroutine for every matching publish: it must
// not block.
func (f *feed) tap(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	if t, err := topic.Parse(pk.TopicName); err == nil && (t.Kind == topic.DM || t.Kind == topic.GroupInbox) {
		f.signal() // stored before it was published: the history read finds it
		return
	}
	f.push(pk.TopicName, pk.Payload)
}

func (f *feed) push(t string, payload []byte) {
	f.mu.Lock()
	if len(f.events) == maxFeedEvents {
		f.events = f.events[1:]
		f.dropped++
	}
	f.events = append(f.events, event{Topic: t, Payload: rawPayload(payload)})
	f.mu.Unlock()
	f.signal()
}

func (f *feed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// take returns and clears the buffered ephemeral events.
func (f *feed) take() []event {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.events
	f.events, f.dropped = nil, 0
	return out
}

func (f *feed) pending() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.events) > 0
}

// chat reads up to limit chat messages after cur, each with the cursor right
// after it, and whether more follow.
func (f *feed) chat(ctx context.Context, cur history.Cursor, limit int) ([]event, history.Cursor, bool, error) {
	var out []event
	for len(out) < limit {
		page, err := f.g.o.History.Sync(ctx, f.user, cur, 1)
		if err != nil {
			return out, cur, false, err
		}
		if len(page.Messages) == 0 {
			return out, cur, false, nil
		}
		cur = page.Next
		out = append(out, event{Topic: inboxTopic(f.user, page.Messages[0]), Payload: envelope.Marshal(page.Messages[0]), ID: cur.String()})
	}
	more, err := f.hasChat(ctx, cur)
	return out, cur, more, err
}

func (f *feed) hasChat(ctx context.Context, cur history.Cursor) (bool, error) {
	page, err := f.g.o.History.Sync(ctx, f.user, cur, 1)
	return len(page.Messages) > 0, err
}

// inboxTopic is the topic an MQTT device of user received m on.
func inboxTopic(user string, m envelope.Message) string {
	if m.Group != "" {
		return topic.Topic{Kind: topic.GroupInbox, Owner: user, Group: m.Group}.String()
	}
	peer := m.From
	if m.From == user {
		peer = m.To
	}
	return topic.Topic{Kind: topic.DM, Owner: user, Peer: peer}.String()
}

// rawPayload embeds a JSON payload as is and anything else as a JSON string.
func rawPayload(p []byte) json.RawMessage {
	if json.Valid(p) {
		return append(json.RawMessage(nil), p...)
	}
	s, _ := json.Marshal(string(p))
	return s
}

// startCursor resolves where a feed starts: "" or "now" is the current end
// of the user's feed, anything else a cursor to resume after.
func (g *Gateway) startCursor(ctx context.Context, user, since string) (history.Cursor, error) {
	if since == "" || since == "now" {
		return g.o.History.Head(ctx, user)
	}
	cur, err := history.ParseCursor(since)
	if err != nil {
		return cur, errMalformedCursor
	}
	if cur.Epoch != g.o.History.Epoch() {
		return cur, history.ErrCursorEpoch
	}
	return cur, nil
}

var errMalformedCursor = errors.New("gateway: malformed cursor")

// validDevice is the device part of an MQTT client id: 1-64 printable
// characters without '/', '+', '#'.
func validDevice(d string) bool {
	if len(d) < 1 || len(d) > 64 {
		return false
	}
	for _, r := range d {
		if r < 0x21 || r == 0x7f || r == '/' || r == '+' || r == '#' {
			return false
		}
	}
	return true
}
