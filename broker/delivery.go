package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/fanout"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/metrics"
	"github.com/mqim/mqim/topic"
)

// Chat delivery to MQTT devices: from the log, by cursor.
//
// A chat message is stored once, in history. An MQTT device session is a
// cursor into its user's feed: the position up to which everything was
// acknowledged (or was not for this session: no subscription matched). A
// connected session pushes the feed to its device in position order, with at
// most window unacknowledged QoS 1 messages; a PUBACK moves the cursor, which
// is persisted in batches (cursorStore). After a disconnect, a takeover or a
// restart the session resumes from its cursor, so a plain MQTT device gets
// every message it missed, in order, exactly once unless the server crashed
// (then at least once: every message carries its id and seq).
//
// mochi still owns connections, sessions and subscriptions; it no longer
// holds chat copies. The packets written here are entered in the client's
// inflight map only so that mochi's packet ids stay unique and its PUBACK
// handling (processPuback -> OnQosComplete) reports them; they are taken out
// again when the connection ends, before mochi could store or resend them.

// defaultWindow bounds a device's unacknowledged chat messages (and below
// it, an MQTT 5 client's Receive Maximum [MQTT-3.3.4-9]).
const defaultWindow = 256

// feedWait bounds a read of the feed (and a stop's wait for a pump).
const feedWait = 5 * time.Second

// maxLive bounds the entries a session buffers from the fan-out between
// writes; past it the session reads the log instead.
const maxLive = 128

// delivery is the set of connected device sessions of this broker.
type delivery struct {
	srv     *mqtt.Server
	hub     fanout.Hub
	hist    history.Store
	cursors *cursorStore
	window  int
	log     *slog.Logger
	metrics *metrics.Metrics

	mu       sync.Mutex
	sessions map[string]*devSession // connected, by client id
}

// devSession is one connected device session.
type devSession struct {
	d       *delivery
	cl      *mqtt.Client
	user    string
	durable bool // the session outlives the connection: its cursor is kept
	cancel  func()

	mu      sync.Mutex
	acked   uint64   // feed positions <= acked are done for this session
	sent    uint64   // positions <= sent were written (or skipped)
	known   uint64   // the feed is known to reach at least this position
	flights []flight // positions acked < pos <= sent, in order
	live    []fanout.Entry

	// matches caches, per inbox topic, what the client's subscriptions
	// make of it; emptied on every SUBSCRIBE and UNSUBSCRIBE of the client.
	// Only the pump reads and writes it, under matchMu.
	matchMu sync.Mutex
	matches map[string]match
	ready   bool // acked/sent set: the pump may run
	running bool
	stopped bool
	idle    chan struct{} // closed when the running pump returns
}

// flight is one written position: a QoS 1 packet awaiting its PUBACK, or
// (done) a position finished without one.
type flight struct {
	pos  uint64
	id   uint16
	done bool
}

func newDelivery(srv *mqtt.Server, hub fanout.Hub, hist history.Store, cursors *cursorStore, window int, log *slog.Logger, m *metrics.Metrics) *delivery {
	if window <= 0 {
		window = defaultWindow
	}
	return &delivery{srv: srv, hub: hub, hist: hist, cursors: cursors, window: window, log: log, metrics: m,
		sessions: map[string]*devSession{}}
}

// durable reports whether cl's session outlives its connection: MQTT 3.1.1
// clean session 0 [MQTT-3.1.2-4], or MQTT 5 with a Session Expiry Interval
// [MQTT-3.1.2-23].
func durable(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// establish runs before mochi takes over an existing session with cl's id:
// the old connection's session stops, its chat packets leave the inflight
// map mochi is about to copy (and resend, in map order), and its cursor is
// saved for attach to resume from.
func (d *delivery) establish(cl *mqtt.Client) {
	d.mu.Lock()
	s := d.sessions[cl.ID]
	delete(d.sessions, cl.ID)
	d.mu.Unlock()
	if s != nil {
		s.stop()
	}
}

// attach starts delivering to cl once its session is established. A new
// session (clean start, or no cursor stored) starts at the end of the feed:
// it is owed only what is published from now [MQTT-3.1.2-4]; a resumed one
// continues from its cursor.
func (d *delivery) attach(cl *mqtt.Client, clean bool) {
	user := string(cl.Properties.Username)
	if user == "" || cl.Net.Inline {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	s := &devSession{d: d, cl: cl, user: user, durable: durable(cl)}
	// Subscribed before the head is read, so nothing committed after it is
	// missed; the pump waits for ready.
	s.cancel = d.hub.Subscribe(user, s, false)
	head, err := d.hist.Head(ctx, user)
	if err != nil {
		// Without the feed's end a new session cannot know where it starts:
		// drop the connection (its client reconnects) rather than guess.
		s.cancel()
		d.log.Error("delivery: feed head; disconnecting", "client", cl.ID, "error", err)
		cl.Stop(fmt.Errorf("broker: delivery: %w", err))
		return
	}
	epoch := d.hist.Epoch()
	start, resumed := head.Pos, false
	if !clean {
		if cur, ok := d.cursors.get(cl.ID); ok && cur.Epoch == epoch {
			start, resumed = cur.Pos, true
		}
	}
	if s.durable {
		d.cursors.set(cl.ID, history.Cursor{Epoch: epoch, Pos: start}, !resumed)
	} else {
		d.cursors.remove(cl.ID)
	}
	s.mu.Lock()
	s.acked, s.sent, s.known, s.ready = start, start, max(s.known, head.Pos, start), true
	s.mu.Unlock()
	d.mu.Lock()
	old := d.sessions[cl.ID]
	d.sessions[cl.ID] = s
	d.mu.Unlock()
	if old != nil {
		old.stop()
	}
	s.kick()
}

// detach ends cl's session when its connection ends; expire: the session
// ends with it (its cursor goes too).
func (d *delivery) detach(cl *mqtt.Client, expire bool) {
	d.mu.Lock()
	s := d.sessions[cl.ID]
	if s == nil || s.cl != cl {
		d.mu.Unlock()
		return // taken over: establish already stopped it
	}
	delete(d.sessions, cl.ID)
	d.mu.Unlock()
	s.stop()
	if expire {
		d.cursors.remove(cl.ID)
	}
}

// expired forgets the cursor of a session mochi expired.
func (d *delivery) expired(id string) { d.cursors.remove(id) }

// acked handles a PUBACK of cl's packet id as it is read, before mochi
// processes it; false: not one of the session's chat packets. It does not
// rely on mochi's inflight map: mochi v2.7.9 keeps one map for both
// directions and deletes an entry when the client publishes with the same
// packet id (server.go:894-901), after which it ignores our PUBACK
// (docs/upstream/mochi-inflight-ids.md).
func (d *delivery) acked(cl *mqtt.Client, id uint16) bool {
	d.mu.Lock()
	s := d.sessions[cl.ID]
	d.mu.Unlock()
	if s == nil || s.cl != cl {
		return false
	}
	return s.ack(id)
}

// Entry implements fanout.Sink: the hub's wake-up, carrying the message.
func (s *devSession) Entry(e fanout.Entry) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if e.Pos > s.known {
		s.known = e.Pos
	}
	if len(s.live) < maxLive {
		s.live = append(s.live, e)
	}
	s.mu.Unlock()
	s.kick()
}

// Event implements fanout.Sink. Ephemeral events reach MQTT devices through
// the broker's topic tree (the hub's router), not through sessions.
func (s *devSession) Event(fanout.Event) {}

// kick makes sure a pump runs if there may be work.
func (s *devSession) kick() {
	s.mu.Lock()
	if s.running || s.stopped || !s.ready {
		s.mu.Unlock()
		return
	}
	s.running = true
	s.idle = make(chan struct{})
	s.mu.Unlock()
	go s.pump()
}

// item is one feed position to write.
type item struct {
	pos     uint64
	msg     *envelope.Message
	payload []byte
}

// pump writes what the window allows, then returns; Entry and ack start it
// again. It holds no goroutine while a device is idle. The decision to stop
// and the end of running are one step under s.mu, so a wake-up that comes
// meanwhile is never lost.
func (s *devSession) pump() {
	for {
		s.mu.Lock()
		if s.stopped {
			s.exit()
			return
		}
		room := s.room()
		items := s.takeLive(room)
		read := len(items) == 0 && room > 0 && s.known > s.sent
		if len(items) == 0 && !read {
			s.exit()
			return
		}
		from := s.sent
		s.mu.Unlock()
		if read {
			var err error
			if items, err = s.read(from, room); err != nil {
				s.d.log.Error("delivery: read feed", "client", s.cl.ID, "error", err)
				s.mu.Lock()
				s.exit()
				time.AfterFunc(time.Second, s.kick) // try again
				return
			}
			if len(items) == 0 {
				s.mu.Lock()
				if s.sent == from && s.known > from {
					s.known = from // the feed ends here after all
				}
				s.mu.Unlock()
				continue
			}
		}
		if err := s.write(items); err != nil {
			s.mu.Lock()
			s.exit() // the connection is gone; its disconnect stops the session
			return
		}
	}
}

// exit ends the running pump; s.mu is held, and released.
func (s *devSession) exit() {
	s.running = false
	close(s.idle)
	s.mu.Unlock()
}

// room is how many more QoS 1 messages the window allows; s.mu is held.
func (s *devSession) room() int {
	room := s.d.window - len(s.flights)
	if rm := int(s.cl.Properties.Props.ReceiveMaximum); s.cl.Properties.ProtocolVersion == 5 && rm > 0 {
		// The client's limit counts every unacknowledged QoS>0 publish,
		// mochi's own included [MQTT-3.3.4-9].
		room = min(room, rm-s.cl.State.Inflight.Len())
	}
	return room
}

// takeLive takes up to n buffered entries that continue the feed from
// s.sent, dropping what was already written; s.mu is held.
func (s *devSession) takeLive(n int) []item {
	var out []item
	i := 0
	for ; i < len(s.live) && len(out) < n; i++ {
		e := s.live[i]
		if e.Pos <= s.sent+uint64(len(out)) {
			continue // written already (read from the log)
		}
		if e.Pos != s.sent+uint64(len(out))+1 {
			break // a gap: the log has it
		}
		out = append(out, item{pos: e.Pos, msg: e.Msg, payload: e.Payload})
	}
	if len(out) == 0 && i < len(s.live) && s.live[i].Pos > s.sent+1 {
		s.live = s.live[:0] // gap: read the log; these come again from it
		return nil
	}
	s.live = append(s.live[:0], s.live[i:]...)
	return out
}

// read reads up to n feed positions after from from the log.
func (s *devSession) read(from uint64, n int) ([]item, error) {
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	page, err := s.d.hist.Sync(ctx, s.user, history.Cursor{Epoch: s.d.hist.Epoch(), Pos: from}, n)
	if err != nil {
		return nil, err
	}
	out := make([]item, len(page.Messages))
	for i := range page.Messages {
		// Feed positions have no gaps: the i-th message is at from+i+1.
		var payload []byte
		if i < len(page.Raw) {
			payload = page.Raw[i]
		} else {
			payload = envelope.Marshal(page.Messages[i])
		}
		out[i] = item{pos: from + uint64(i) + 1, msg: &page.Messages[i], payload: payload}
	}
	if page.More {
		s.mu.Lock()
		s.known = max(s.known, from+uint64(len(out))+1)
		s.mu.Unlock()
	}
	return out, nil
}

// write sends items, in order, as one write: each on the inbox topic it
// belongs to, at the QoS of the best matching subscription (none: skipped,
// as MQTT skips a message no subscription matches).
func (s *devSession) write(items []item) error {
	cl := s.cl
	var buf bytes.Buffer
	fl := make([]flight, 0, len(items))
	max := cl.Properties.Props.MaximumPacketSize
	for _, it := range items {
		name := im.InboxTopic(s.user, it.msg)
		m := s.match(name)
		qos, ids, ok := m.qos, m.ids, m.ok
		if !ok {
			fl = append(fl, flight{pos: it.pos, done: true})
			continue
		}
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
			TopicName:       name,
			Payload:         it.payload,
			ProtocolVersion: cl.Properties.ProtocolVersion,
			Created:         time.Now().Unix(),
		}
		pk.Properties.SubscriptionIdentifier = ids
		if qos > 0 {
			id, err := cl.NextPacketID()
			if err != nil {
				return err // 65535 in flight: the window prevents it
			}
			pk.PacketID = uint16(id)
		}
		n := buf.Len()
		if err := pk.PublishEncode(&buf); err != nil {
			return err
		}
		if max > 0 && uint32(buf.Len()-n) > max {
			// Larger than the client accepts: not sent, and treated as
			// delivered [MQTT-3.1.2-25].
			buf.Truncate(n)
			fl = append(fl, flight{pos: it.pos, done: true})
			continue
		}
		if qos > 0 {
			cl.State.Inflight.Set(pk)
			cl.State.Inflight.DecreaseSendQuota()
			atomic.AddInt64(&s.d.srv.Info.Inflight, 1)
			fl = append(fl, flight{pos: it.pos, id: pk.PacketID})
		} else {
			fl = append(fl, flight{pos: it.pos, done: true})
		}
		s.d.metrics.Deliveries.WithLabelValues(kindOf(it.msg)).Inc()
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		s.release(fl)
		return errSessionStopped
	}
	s.flights = append(s.flights, fl...)
	s.sent = items[len(items)-1].pos
	s.collapse()
	s.mu.Unlock()
	if buf.Len() == 0 {
		return nil
	}
	if cl.Closed() || cl.Net.Conn == nil {
		return mqtt.ErrConnectionClosed
	}
	// mochi writes under the client's lock (WritePacket); so do we, so that
	// packets never interleave. The connection queues without blocking
	// (boundedConn), coalescing what queued into one socket write.
	cl.Lock()
	_, err := cl.Net.Conn.Write(buf.Bytes())
	cl.Unlock()
	return err
}

var errSessionStopped = errors.New("broker: device session stopped")

// ack marks the flight with packet id done.
func (s *devSession) ack(id uint16) bool {
	s.mu.Lock()
	found := false
	for i := range s.flights {
		if f := &s.flights[i]; !f.done && f.id == id {
			f.done, found = true, true
			break
		}
	}
	more := false
	if found {
		s.d.forget(s.cl, id)
		s.collapse()
		// Room opened: worth a pump only if something waits for it.
		more = len(s.live) > 0 || s.known > s.sent
	}
	s.mu.Unlock()
	if more {
		s.kick()
	}
	return found
}

// collapse moves the cursor over the finished flights at the front; s.mu
// is held.
func (s *devSession) collapse() {
	i := 0
	for i < len(s.flights) && s.flights[i].done {
		i++
	}
	if i == 0 {
		return
	}
	s.acked = s.flights[i-1].pos
	s.flights = append(s.flights[:0], s.flights[i:]...)
	if s.durable {
		s.d.cursors.set(s.cl.ID, history.Cursor{Epoch: s.d.hist.Epoch(), Pos: s.acked}, false)
	}
}

// stop ends the session: no more writes; its unacknowledged packets leave
// mochi's inflight map (they are sent again from the cursor next time).
func (s *devSession) stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	idle := s.idle
	running := s.running
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
	if running {
		select {
		case <-idle:
		case <-time.After(feedWait):
		}
	}
	s.mu.Lock()
	fl := s.flights
	s.flights, s.live = nil, nil
	s.mu.Unlock()
	s.release(fl)
}

// release takes unfinished flights out of mochi's inflight map.
func (s *devSession) release(fl []flight) {
	for _, f := range fl {
		if !f.done {
			s.d.forget(s.cl, f.id)
		}
	}
}

// forget takes chat packet id out of cl's inflight map and gives back the
// send quota it took (even when mochi has already dropped the entry).
func (d *delivery) forget(cl *mqtt.Client, id uint16) {
	if cl.State.Inflight.Delete(id) {
		atomic.AddInt64(&d.srv.Info.Inflight, -1)
	}
	cl.State.Inflight.IncreaseSendQuota()
}

// match is what cl's subscriptions make of one topic.
type match struct {
	qos byte
	ids []int
	ok  bool
}

// maxMatches bounds a session's match cache (a user's topics: one per DM
// peer and group).
const maxMatches = 256

func (s *devSession) match(name string) match {
	s.matchMu.Lock()
	defer s.matchMu.Unlock()
	if m, ok := s.matches[name]; ok {
		return m
	}
	if s.matches == nil || len(s.matches) >= maxMatches {
		s.matches = map[string]match{}
	}
	var m match
	m.qos, m.ids, m.ok = subscribed(s.cl, name)
	s.matches[name] = m
	return m
}

// resubscribed forgets the match cache of cl's session.
func (d *delivery) resubscribed(cl *mqtt.Client) {
	d.mu.Lock()
	s := d.sessions[cl.ID]
	d.mu.Unlock()
	if s != nil && s.cl == cl {
		s.matchMu.Lock()
		s.matches = nil
		s.matchMu.Unlock()
	}
}

// subscribed returns the QoS (at most 1) at which cl's subscriptions take
// name and their subscription identifiers [MQTT-3.3.4-3], or false when
// none matches.
func subscribed(cl *mqtt.Client, name string) (qos byte, ids []int, ok bool) {
	for _, sub := range cl.State.Subscriptions.GetAll() {
		if !topic.Match(sub.Filter, name) {
			continue
		}
		ok = true
		qos = max(qos, sub.Qos)
		for _, id := range sub.Identifiers {
			ids = append(ids, id)
		}
	}
	return min(qos, 1), ids, ok
}

func kindOf(m *envelope.Message) string {
	if m.Group != "" {
		return "group"
	}
	return "dm"
}

// deliveryHook connects device sessions to mochi's connection events.
type deliveryHook struct {
	mqtt.HookBase
	d *delivery
}

func (h *deliveryHook) ID() string { return "mqim-delivery" }

func (h *deliveryHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnClientExpired,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPacketRead:
		return true
	}
	return false
}

func (h *deliveryHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) { h.d.establish(cl) }

func (h *deliveryHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.d.attach(cl, pk.Connect.Clean)
}

func (h *deliveryHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline || cl.Net.Conn == nil {
		return // the inline client, or a session restored from storage at start
	}
	h.d.detach(cl, expire)
}

func (h *deliveryHook) OnClientExpired(cl *mqtt.Client) { h.d.expired(cl.ID) }

// OnPacketRead takes the PUBACKs of chat packets before mochi sees them
// (see delivery.acked); mochi then finds no inflight entry and ignores
// them.
func (h *deliveryHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Puback {
		h.d.acked(cl, pk.PacketID)
	}
	return pk, nil
}

// OnSubscribed and OnUnsubscribed change what the session's topics match;
// a new subscription may also open a topic to messages still ahead.
func (h *deliveryHook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	h.d.resubscribed(cl)
}

func (h *deliveryHook) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) { h.d.resubscribed(cl) }

// Router is the fan-out's way into the broker's topic tree: ephemeral events
// are inline publishes, delivered by mochi to whichever subscriptions match
// (read ACL per subscriber), retained where asked (presence).
func Router(srv *mqtt.Server) fanout.Router { return router{srv} }

type router struct{ srv *mqtt.Server }

func (r router) Route(e fanout.Event) {
	if err := r.srv.Publish(e.Topic, e.Payload, e.Retain, e.QoS); err != nil {
		r.srv.Log.Error("inline publish failed", "topic", e.Topic, "error", err)
	}
}
