package broker

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// ErrStalled is the write error of a connection whose peer stopped reading.
var ErrStalled = errors.New("broker: client stopped reading; disconnected")

// Write limits of a client connection: past either, the client is considered
// stalled and disconnected; it catches up through its session and sync.
const (
	maxPendingBytes = 1 << 20
	writeTimeout    = 10 * time.Second
)

// boundedConn decouples mochi from slow readers. mochi writes to a client's
// socket while holding that client's mutex, which publishers to the client
// also take (packet ids), so one client that stops reading would stall every
// publisher that shares a topic with it. Here Write only queues (bounded), and
// a short-lived goroutine drains the queue with a write deadline.
type boundedConn struct {
	net.Conn
	mu       sync.Mutex
	q        bytes.Buffer
	inflight int // bytes taken by the drainer, not yet written
	draining bool
	idle     chan struct{} // closed when the current drainer stops
	err      error
	linger   bool // Close reads away what the peer still sends (see lingerOnClose)
}

// lingerOnClose makes Close half-close and read away what the peer is still
// sending, for a connection the server ends in the middle of the client's
// packet (too large, malformed): closing a socket with unread data makes
// the kernel answer with a reset, and a reset can destroy the DISCONNECT
// (with its reason code) before the client reads it.
func (c *boundedConn) lingerOnClose() {
	c.mu.Lock()
	c.linger = true
	c.mu.Unlock()
}

// Bounds of the lingering close: it never holds a connection longer or
// reads more than this.
const (
	lingerTime  = time.Second
	lingerBytes = 1 << 20
)

func (c *boundedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	if c.q.Len()+c.inflight+len(p) > maxPendingBytes {
		c.err = ErrStalled
		c.mu.Unlock()
		c.Conn.Close()
		return 0, ErrStalled
	}
	if !c.draining && c.q.Len() == 0 {
		// Nothing queued: try the socket at once without blocking, which
		// is nearly always all of it (no goroutine, no wake-up per packet).
		n := c.tryWrite(p)
		if n == len(p) {
			c.mu.Unlock()
			return n, nil
		}
		p = p[n:]
	}
	c.q.Write(p)
	if !c.draining {
		c.draining = true
		c.idle = make(chan struct{})
		go c.drain()
	}
	c.mu.Unlock()
	return len(p), nil
}

// tryWrite writes what the socket takes right now, without waiting; c.mu is
// held. Only for sockets (a WebSocket adapter has its own framing).
func (c *boundedConn) tryWrite(p []byte) int {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, err := syscall.Write(int(fd), p[n:])
			if m > 0 {
				n += m
			}
			if err == syscall.EINTR {
				continue
			}
			if err != nil || m <= 0 {
				break // EAGAIN (full), or an error the drainer will report
			}
		}
		return true // never wait for writability here
	})
	return n
}

func (c *boundedConn) drain() {
	var out []byte
	for {
		c.mu.Lock()
		c.inflight = 0
		if c.q.Len() == 0 || c.err != nil {
			c.stopDraining()
			c.mu.Unlock()
			return
		}
		out = append(out[:0], c.q.Bytes()...)
		c.q.Reset()
		c.inflight = len(out)
		c.mu.Unlock()

		_ = c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.Conn.Write(out); err != nil {
			c.mu.Lock()
			if c.err == nil {
				c.err = err
			}
			c.stopDraining()
			c.mu.Unlock()
			c.Conn.Close()
			return
		}
	}
}

// stopDraining marks the drainer gone; c.mu is held.
func (c *boundedConn) stopDraining() {
	c.draining = false
	close(c.idle)
}

// Close flushes what is queued (a CONNACK refusing a client, a final
// DISCONNECT) for up to closeFlush, then closes the socket (lingering: in
// the background, see lingerOnClose).
func (c *boundedConn) Close() error {
	timeout := time.NewTimer(closeFlush)
	defer timeout.Stop()
	for waiting := true; waiting; {
		c.mu.Lock()
		busy, idle := c.draining && c.err == nil, c.idle
		c.mu.Unlock()
		if !busy {
			break
		}
		select {
		case <-idle: // a Write may have started another drainer: look again
		case <-timeout.C:
			waiting = false
		}
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = net.ErrClosed
	}
	linger := c.linger
	c.mu.Unlock()
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); linger && ok && hc.CloseWrite() == nil {
		// Read away in the background: mochi closes under the client's
		// stop, and whoever stops it next (a takeover's CONNECT) waits
		// for that to return.
		_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
		go func() {
			_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
			_ = c.Conn.Close()
		}()
		return nil
	}
	return c.Conn.Close()
}

const closeFlush = 2 * time.Second
