package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/fanout"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// A feed is one HTTP device's view of its user's inbox, shared by the SSE
// stream and long-poll sessions. It delivers what an MQTT device subscribed
// to im/u/{me}/# and im/presence/+ receives, from the same fan-out
// (fanout.Hub), split by guarantee:
//
//   - Chat messages (im/u/{me}/dm/..., im/u/{me}/g/...) are read from the
//     user's history feed (history.Store.Sync), each with the sync cursor
//     right after it: resuming from any cursor is gap-free and
//     duplicate-free. The fan-out's entries only wake the reader.
//   - Everything else (receipts, typing, signals, error notices, sync
//     replies, presence) is taken from the fan-out's events as sent, into a
//     bounded buffer: at most once, like MQTT QoS 0 to a connected client.
//
// While a feed is open it counts as a device of its user for presence.
type feed struct {
	g        *Gateway
	user     string
	clientID string // "{user}:{device}/sse" or "/poll": never an MQTT client id
	cancel   func() // the fan-out subscription

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

// openFeed subscribes to user's feed and presence and registers the device.
// Each open feed holds one of user's stream slots (limits.streams_per_user):
// every presence update is copied into every feed, so feeds are what a user
// must not multiply. Over the limit, the user's oldest idle poll session
// gives way; with none, the answer is 429 quota_exceeded (an SSE stream is
// a live connection, gone as soon as its client is, so never evicted).
func (g *Gateway) openFeed(user, device, kind string) (*feed, error) {
	if !g.tr.streams.Take(user) && !(g.evictIdlePoll(user) && g.tr.streams.Take(user)) {
		return nil, fail(http.StatusTooManyRequests, imerr.QuotaExceeded,
			"%d streams and poll sessions open: close one first", g.tr.streams.Max)
	}
	f := &feed{g: g, user: user, clientID: user + ":" + device + "/" + kind, wake: make(chan struct{}, 1)}
	f.cancel = g.o.Transport.Hub.Subscribe(user, f, true)
	// Like an MQTT SUBSCRIBE to im/presence/+, start with the retained state.
	for _, pk := range g.o.Transport.Broker.Topics.Messages(topic.PresenceTopic("+")) {
		if g.canSeePresence(user, f.clientID, pk.TopicName) {
			f.push(pk.TopicName, pk.Payload)
		}
	}
	g.tr.feeds.Add(1)
	g.o.Transport.IM.DeviceConnected(user, f.clientID, f)
	return f, nil
}

// close unregisters the device and ends the subscription (idempotent).
func (f *feed) close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.g.tr.feeds.Add(-1)
	f.g.tr.streams.Release(f.user)
	f.g.o.Transport.IM.DeviceDisconnected(f.user, f.clientID, f)
}

// Entry implements fanout.Sink: a chat message was stored; the history read
// finds it.
func (f *feed) Entry(fanout.Entry) { f.signal() }

// Event implements fanout.Sink. Presence events of every user arrive here
// (the feed takes broadcasts), each judged by the same acl read rule as an
// MQTT delivery of it (a user who blocked f.user hides its presence); the
// rest are f.user's own.
func (f *feed) Event(e fanout.Event) {
	if strings.HasPrefix(e.Topic, presencePrefix) && !f.g.canSeePresence(f.user, f.clientID, e.Topic) {
		return
	}
	f.push(e.Topic, e.Payload)
}

var presencePrefix = topic.PresenceTopic("")

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
	page, e := f.g.o.Transport.IM.Sync(ctx, f.user, cur, limit)
	if e != nil {
		return nil, cur, false, imFail(e)
	}
	out := make([]event, len(page.Messages))
	for i, m := range page.Messages {
		// A feed has no gaps: the i-th message is at position cur.Pos+i+1.
		at := history.Cursor{Epoch: page.Next.Epoch, Pos: cur.Pos + uint64(i) + 1}
		out[i] = event{Topic: im.InboxTopic(f.user, &m), Payload: envelope.Marshal(m), ID: at.String()}
	}
	return out, page.Next, page.More, nil
}

func (f *feed) hasChat(ctx context.Context, cur history.Cursor) (bool, error) {
	page, e := f.g.o.Transport.IM.Sync(ctx, f.user, cur, 1)
	if e != nil {
		return false, imFail(e)
	}
	return len(page.Messages) > 0, nil
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
	if since == "" {
		since = "now"
	}
	cur, e := g.o.Transport.IM.Cursor(ctx, user, since)
	if e != nil {
		return cur, imFail(e)
	}
	return cur, nil
}

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

// feedDevice is the device a stream or poll session presents as.
func feedDevice(r *http.Request) (string, error) {
	d := r.URL.Query().Get("device")
	if d == "" {
		return "http-" + randomHex(6), nil
	}
	if !validDevice(d) {
		return "", fail(http.StatusBadRequest, imerr.Invalid, "device must be 1-64 printable characters without / + #")
	}
	return d, nil
}
