package broker

import (
	"net"
	"sync"
	"time"
)

// attachTracker counts accepted connections until mochi has attached them.
//
// mochi's attachClient calls Listeners.ClientsWg.Add(1) on a goroutine of its
// own, while Server.Close calls ClientsWg.Wait(): a connection accepted just
// before shutdown races the Wait (sync.WaitGroup forbids that, and the race
// detector says so). mochi reads the connection only after that Add, so once
// every accepted connection has been read from (or closed), Close is safe.
// (A WaitGroup cannot do this counting either, for the same reason.)
type attachTracker struct {
	mu      sync.Mutex
	pending int
	closed  bool
	none    chan struct{} // closed once closed and nothing is pending
}

func (t *attachTracker) accepted() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.pending++
	return true
}

func (t *attachTracker) attached() {
	t.mu.Lock()
	t.pending--
	if t.closed && t.pending == 0 {
		close(t.none)
	}
	t.mu.Unlock()
}

// closeAndWait refuses further connections and waits, at most d, for the
// accepted ones to be attached.
func (t *attachTracker) closeAndWait(d time.Duration) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed, t.none = true, make(chan struct{})
	if t.pending == 0 {
		close(t.none)
	}
	none := t.none
	t.mu.Unlock()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	select {
	case <-none:
	case <-timeout.C:
	}
}

// drainListener wraps every accepted connection: attach tracking, the
// bounded, non-blocking writes of boundedConn, the CONNECT deadline and the
// packet guard.
type drainListener struct {
	net.Listener
	t     *attachTracker
	guard func(net.Conn) net.Conn
	// connectTimeout is how long an accepted connection may take to send
	// its CONNECT. mochi sets a read deadline only once CONNECT is processed
	// (from its keepalive), so without this a socket that never speaks is
	// held forever.
	connectTimeout time.Duration
}

func (l drainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.t.accepted() {
		c.Close()
		return nil, net.ErrClosed
	}
	if l.connectTimeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(l.connectTimeout))
	}
	return &attachConn{Conn: l.guard(&boundedConn{Conn: c}), done: l.t.attached}, nil
}

type attachConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *attachConn) Read(p []byte) (int, error) {
	c.once.Do(c.done)
	return c.Conn.Read(p)
}

func (c *attachConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}
