package broker

import (
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// recoveringListener serves a net.Listener to mochi like listeners.Net, with
// one difference: the goroutine that runs each connection (mochi reads,
// decodes and processes every packet of it, hooks included, there) recovers a
// panic. A bug in mochi's packet path or in a hook then ends only the
// connection that triggered it; mochi's deferred cleanup of that client
// (socket closed, counters) has run by then, and onPanic finishes the rest.
//
// Close disconnects the listener's clients with closeClients, not with the
// callback mochi passes: mochi's (Server.closeListenerClients) takes the
// clients map's read lock twice over (Clients.GetByListener calls Len), which
// deadlocks shutdown when a disconnecting client's Delete queues for the
// write lock in between (seen in our tests).
type recoveringListener struct {
	id           string
	l            net.Listener
	onPanic      func(conn net.Conn, v any, stack []byte)
	closeClients func(listener string)
	log          *slog.Logger
	mu           sync.Mutex
	end          atomic.Bool
}

var _ listeners.Listener = (*recoveringListener)(nil)

func newRecoveringListener(id string, l net.Listener, onPanic func(net.Conn, any, []byte), closeClients func(string)) *recoveringListener {
	return &recoveringListener{id: id, l: l, onPanic: onPanic, closeClients: closeClients}
}

func (l *recoveringListener) ID() string       { return l.id }
func (l *recoveringListener) Address() string  { return l.l.Addr().String() }
func (l *recoveringListener) Protocol() string { return l.l.Addr().Network() }

func (l *recoveringListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until the listener is closed.
func (l *recoveringListener) Serve(establish listeners.EstablishFn) {
	for !l.end.Load() {
		conn, err := l.l.Accept()
		if err != nil {
			return
		}
		if l.end.Load() {
			conn.Close()
			return
		}
		go l.serve(establish, conn)
	}
}

func (l *recoveringListener) serve(establish listeners.EstablishFn, conn net.Conn) {
	defer func() {
		if v := recover(); v != nil {
			conn.Close()
			if l.onPanic != nil {
				l.onPanic(conn, v, debug.Stack())
			}
		}
	}()
	if err := establish(l.id, conn); err != nil && l.log != nil {
		l.log.Debug("connection ended", "listener", l.id, "remote", conn.RemoteAddr().String(), "error", err)
	}
}

// Close stops accepting and closes this listener's clients.
func (l *recoveringListener) Close(listeners.CloseFn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.end.CompareAndSwap(false, true) {
		l.closeClients(l.id)
	}
	_ = l.l.Close()
}
