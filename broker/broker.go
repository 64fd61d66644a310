// Package broker builds the embedded mochi MQTT broker: capabilities sized on
// purpose, the IM hooks, persistent sessions in Badger, a TCP listener, and a
// channel-fed listener through which the gateway hands over WebSocket
// connections it has upgraded (so MQTT over WebSocket shares the HTTP port and
// the gateway's Origin check).
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/fanout"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/hooks"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/ratelimit"
	"github.com/mqim/mqim/topic"
)

// Options configure the broker.
type Options struct {
	MQTTAddr      string
	DataDir       string // sessions are kept in DataDir/sessions
	SessionExpiry time.Duration
	MaxInflight   uint16
	WritesPending int32
	Log           *slog.Logger
	// ConnLimits bound connections per client IP on the TCP listener.
	ConnLimits ratelimit.ListenerLimits
	// ConnectTimeout closes a connection that has not sent CONNECT in time
	// (0: never).
	ConnectTimeout time.Duration
	// MaxKeepalive caps the keepalive (0: none); see keepaliveCap.
	MaxKeepalive time.Duration
	// Guard bounds topics and subscriptions per client.
	Guard GuardLimits
	// Epoch is the history store's epoch; a session store of another
	// epoch is emptied of sessions at start (see sessionStoreOptions).
	Epoch string
	// Retained, if set, keeps clients' retained messages outside im/,
	// committed before their PUBACK (see retained.go).
	Retained *badger.DB
	// Cursors holds device sessions' feed positions (delivery.go), read
	// from History, woken by Hub.
	Cursors *badger.DB
	History history.Store
	Hub     fanout.Hub
	// Window bounds each device's unacknowledged chat messages (0: 256).
	Window int
}

// Broker is the running MQTT broker.
type Broker struct {
	Server      *mqtt.Server
	WS          *ChanListener
	tcp         net.Listener
	IM          *hooks.IM
	deps        *hooks.Deps
	closeMu     sync.Once
	pending     attachTracker // accepted connections not yet attached
	hooks       []mqtt.Hook   // in the order added, for cleanup after a recovered panic
	guardLimits GuardLimits
	delivery    *delivery
	cursors     *cursorStore
}

// clientReadBuffer is mochi's per-client read buffer (mochi's default: 2 KiB).
const clientReadBuffer = 256

// MaxPacketSize caps any MQTT packet; IM payloads have their own, smaller
// limits, this protects the broker from giant frames.
const MaxPacketSize = 256 << 10

// TopicAliasMaximum is the most topic aliases an MQTT 5 client may set up
// (advertised in CONNACK). mochi's default, 65535, would let one client
// keep 65535 topics of up to topic_bytes each in its alias map.
const TopicAliasMaximum = 64

// New creates the broker; Start begins serving.
func New(o Options, d *hooks.Deps) (*Broker, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumSessionExpiryInterval = uint32(o.SessionExpiry / time.Second)
	// 0 = no server-imposed expiry: mochi applies this cap to retained
	// messages too, and retained presence must outlive a quiet day.
	caps.MaximumMessageExpiryInterval = 0
	caps.MaximumInflight = o.MaxInflight
	// Each pending slot costs memory per connection (8192 default ~64 KiB);
	// a client further behind than this catches up through sync.
	caps.MaximumClientWritesPending = o.WritesPending
	caps.MaximumPacketSize = MaxPacketSize
	caps.TopicAliasMaximum = TopicAliasMaximum
	caps.Compatibilities.NoInheritedPropertiesOnAck = true

	srv := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		InlineClient:           true,
		Logger:                 mochiLogger(o.Log),
		SysTopicResendInterval: 10,
		// mochi's reader reads packets the guard has already framed, from
		// the guard's buffer: its own buffer only saves calls, and every
		// connection holds it for its lifetime. The write size is only
		// mochi's threshold for flushing its (transient) batch buffer.
		ClientNetReadBufferSize: clientReadBuffer,
	})
	b := &Broker{Server: srv, deps: d, IM: hooks.NewIM(d), guardLimits: o.Guard}
	b.cursors = newCursorStore(o.Cursors, d.Space, o.Log)
	b.delivery = newDelivery(srv, o.Hub, o.History, b.cursors, o.Window, o.Log, d.Metrics)
	if o.MaxKeepalive > 0 {
		if err := b.addHook(&keepaliveCap{max: uint16(o.MaxKeepalive / time.Second)}, nil); err != nil {
			return nil, err
		}
	}

	if err := b.addHook(&connackProps{maxPacket: MaxPacketSize, topicAliases: caps.TopicAliasMaximum}, nil); err != nil {
		return nil, err
	}
	if err := b.addHook(&outboundFixes{}, nil); err != nil {
		return nil, err
	}
	if err := b.addHook(hooks.NewAuth(d), nil); err != nil {
		return nil, err
	}
	if d.Mounts == nil {
		d.Mounts = hooks.NewMountTable()
	}
	if err := b.addHook(hooks.NewMounts(d.Mounts), nil); err != nil { // right after Auth: aliases resolved first
		return nil, err
	}
	if err := b.addHook(b.IM, nil); err != nil {
		return nil, err
	}
	if err := b.addHook(hooks.NewNamespaces(d, srv), nil); err != nil { // after IM: sees only non-im/ publishes
		return nil, err
	}
	sopts, err := sessionStoreOptions(filepath.Join(o.DataDir, "sessions"), o.Epoch, d.Space.Pinned(), o.Log)
	if err != nil {
		return nil, err
	}
	// Before the session store: a device's chat packets leave mochi's
	// inflight map on disconnect before anything could store them.
	if err := b.addHook(&deliveryHook{d: b.delivery}, nil); err != nil {
		return nil, err
	}
	if err := b.addHook(newSessionStore(srv, d.Space, o.Retained, b.IM), sopts); err != nil {
		return nil, fmt.Errorf("broker: session store: %w", err)
	}

	l, err := net.Listen("tcp", o.MQTTAddr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", o.MQTTAddr, err)
	}
	b.tcp = l
	var tcp net.Listener = l
	if o.ConnLimits.MaxConns > 0 || o.ConnLimits.Rate > 0 {
		tcp = ratelimit.NewListener(l, o.ConnLimits)
	}
	if err := srv.AddListener(newRecoveringListener("tcp", drainListener{tcp, &b.pending, b.guard, o.ConnectTimeout}, b.recovered, b.closeListenerClients)); err != nil {
		l.Close()
		return nil, err
	}
	b.WS = NewChanListener(l.Addr())
	if err := srv.AddListener(newRecoveringListener("ws", drainListener{b.WS, &b.pending, b.guard, o.ConnectTimeout}, b.recovered, b.closeListenerClients)); err != nil {
		l.Close()
		return nil, err
	}
	return b, nil
}

func (b *Broker) addHook(h mqtt.Hook, config any) error {
	if err := b.Server.AddHook(h, config); err != nil {
		return err
	}
	b.hooks = append(b.hooks, h)
	return nil
}

// guard puts a packetGuard in front of mochi's reader of c.
func (b *Broker) guard(c net.Conn) net.Conn {
	return newPacketGuard(c, MaxPacketSize, b.guardLimits, guardEnvOf{b})
}

// guardEnvOf is the broker as its guards see it.
type guardEnvOf struct{ b *Broker }

func (e guardEnvOf) refused(g *packetGuard, reason string, err error) {
	e.b.deps.Metrics.PacketsRefused.WithLabelValues(reason).Inc()
	e.b.deps.Log.Warn("mqtt: packet refused", "remote", g.RemoteAddr().String(), "client", g.id, "error", err.Error())
}

// client finds the mochi client reading from g: by the session key the
// auth hook gives the CONNECT's client id, checked against the connection
// (a later connection may have taken the session over), and remembers it.
// Only a client whose id mochi assigned (an empty one) is searched for
// among all clients, once.
func (e guardEnvOf) client(g *packetGuard) *mqtt.Client {
	if g.cl != nil {
		return g.cl
	}
	reads := func(cl *mqtt.Client) bool {
		ac, ok := cl.Net.Conn.(*attachConn)
		return ok && ac.Conn == net.Conn(g)
	}
	if g.key != "" {
		if cl, ok := e.b.Server.Clients.Get(g.key); ok && reads(cl) {
			g.cl = cl
		}
		return g.cl
	}
	for _, cl := range e.b.Server.Clients.GetAll() {
		if reads(cl) {
			g.cl = cl
			return cl
		}
	}
	return nil
}

func (e guardEnvOf) notify(cl *mqtt.Client, topic string, err *imerr.Error) {
	e.b.deps.IM.Notify(im.Request{User: string(cl.Properties.Username), ClientID: cl.ID, Topic: topic}, err)
}

// connackProps tells an MQTT 5 client, in the CONNACK of an accepted
// connection, the limits mochi enforces but does not advertise (v2.7.9):
// Maximum Packet Size [MQTT-3.2.2-15], so a client knows that a larger
// packet ends its connection instead of finding out, and Topic Alias
// Maximum, without which a client may not use topic aliases at all
// [MQTT-3.2.2-17].
type connackProps struct {
	mqtt.HookBase
	maxPacket    uint32
	topicAliases uint16
}

func (h *connackProps) ID() string           { return "mqim-connack" }
func (h *connackProps) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (h *connackProps) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5 && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
		pk.Properties.MaximumPacketSize = h.maxPacket
		pk.Properties.TopicAliasMaximum = h.topicAliases
	}
	return pk
}

// keepaliveCap bounds the keepalive [MQTT-3.1.2-21]: an MQTT 5 client asking
// for more than max, or for none, is given max in the CONNACK's Server Keep
// Alive and must use it. MQTT 3.1.1 has no way to say so: a 3.1.1 client's
// own keepalive is kept, except none, which becomes max, so a peer that
// vanished without a FIN is dropped after 1.5x max of silence instead of
// never.
type keepaliveCap struct {
	mqtt.HookBase
	max uint16
}

func (h *keepaliveCap) ID() string           { return "mqim-keepalive" }
func (h *keepaliveCap) Provides(b byte) bool { return b == mqtt.OnConnect }

func (h *keepaliveCap) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	ka := cl.State.Keepalive
	switch {
	case cl.Properties.ProtocolVersion == 5 && (ka == 0 || ka > h.max):
		cl.State.Keepalive, cl.State.ServerKeepalive = h.max, true
	case ka == 0:
		cl.State.Keepalive = h.max
	}
	return nil
}

// closeListenerClients tells every client of one listener that the server
// is shutting down (MQTT 5: DISCONNECT 0x8B) and closes it.
func (b *Broker) closeListenerClients(listener string) {
	for _, cl := range b.Server.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = b.Server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// recovered finishes what mochi's attachClient would have done after its
// read loop, for a connection whose goroutine panicked: mochi's deferred
// cleanup has closed the socket, but no OnDisconnect hook ran (presence,
// the session store) and a clean session was not removed.
func (b *Broker) recovered(conn net.Conn, v any, stack []byte) {
	b.deps.Metrics.ConnPanics.Inc()
	b.deps.Log.Error("mqtt: recovered a panic; dropped that connection only",
		"remote", conn.RemoteAddr().String(), "panic", fmt.Sprint(v), "stack", string(stack))
	err := fmt.Errorf("broker: connection panicked: %v", v)
	for _, cl := range b.Server.Clients.GetAll() {
		if cl.Net.Conn != conn {
			continue
		}
		cl.Stop(err)
		expire := (cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.SessionExpiryInterval == 0) ||
			(cl.Properties.ProtocolVersion < 5 && cl.Properties.Clean)
		for _, h := range b.hooks {
			if h.Provides(mqtt.OnDisconnect) {
				h.OnDisconnect(cl, err, expire)
			}
		}
		if expire && !cl.IsTakenOver() {
			cl.ClearInflights()
			b.Server.UnsubscribeClient(cl)
			b.Server.Clients.Delete(cl.ID)
		}
	}
}

// Start restores stored sessions and retained messages and starts serving.
func (b *Broker) Start() error {
	if err := b.Server.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.resetPresence()
	return nil
}

// resetPresence marks offline every user whose restored retained presence
// says otherwise: after a restart no device is connected yet.
func (b *Broker) resetPresence() {
	for _, pk := range b.Server.Topics.Messages(topic.PresenceTopic("+")) {
		if t, err := topic.Parse(pk.TopicName); err == nil {
			b.deps.IM.StalePresence(t.Owner)
		}
	}
}

// DisconnectKey drops every session that authenticated with API key keyID
// (MQTT 5 clients are told why: not authorized).
func (b *Broker) DisconnectKey(keyID string) {
	for _, id := range b.deps.Keys.Clients(keyID) {
		if cl, ok := b.Server.Clients.Get(id); ok && !cl.Closed() {
			_ = b.Server.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
	}
}

// MQTTAddr is the TCP listener's address.
func (b *Broker) MQTTAddr() net.Addr { return b.tcp.Addr() }

// Close disconnects every client and stops the broker; stored sessions stay.
func (b *Broker) Close() error {
	var err error
	b.closeMu.Do(func() {
		b.tcp.Close()
		b.WS.Close()
		b.pending.closeAndWait(2 * time.Second)
		err = b.Server.Close()
		b.cursors.close() // after every session's disconnect saved its cursor
	})
	return err
}

// ChanListener is a net.Listener fed with connections by Push.
type ChanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// ErrListenerClosed is returned by Accept and Push after Close.
var ErrListenerClosed = errors.New("broker: listener closed")

// NewChanListener returns a listener reporting addr.
func NewChanListener(addr net.Addr) *ChanListener {
	return &ChanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Push hands a connection to the broker; it fails once the listener closed.
func (l *ChanListener) Push(c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.done:
		return ErrListenerClosed
	}
}

// Accept implements net.Listener.
func (l *ChanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrListenerClosed
	}
}

// Close implements net.Listener.
func (l *ChanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *ChanListener) Addr() net.Addr { return l.addr }
