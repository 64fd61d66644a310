package broker

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// guardReader is the guard's read buffer. It holds a pooled buffer only
// while bytes are buffered, so an idle connection, blocked waiting for its
// next packet, holds none: on a TCP socket the wait is the runtime poller's
// (the buffer is taken only once the socket has bytes, inside the read
// attempt that Go's own Read would make anyway); on a WebSocket it is the
// WebSocket reader's, whose frame buffer is there regardless.
type guardReader struct {
	c      net.Conn
	sock   syscall.RawConn // c's socket when reads may bypass c (TCP), else nil
	waiter readWaiter      // c when it can wait for data without a buffer of ours
	buf    *[]byte
	pos    int
	end    int
}

// readWaiter is a connection that can block until a read would return data
// (wsconn.Conn).
type readWaiter interface{ WaitRead() error }

var readPool = sync.Pool{New: func() any { b := make([]byte, guardReadBuffer); return &b }}

func newGuardReader(c net.Conn) *guardReader {
	r := &guardReader{c: c}
	switch raw := underlying(c).(type) {
	case *net.TCPConn:
		// Deadlines and closing act on the socket, shared by every wrapper.
		if sc, err := raw.SyscallConn(); err == nil {
			r.sock = sc
		}
	case readWaiter:
		r.waiter = raw
	}
	return r
}

// underlying unwraps the broker's connection wrappers down to the transport.
func underlying(c net.Conn) net.Conn {
	for {
		switch w := c.(type) {
		case *boundedConn:
			c = w.Conn
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
		default:
			return c
		}
	}
}

func (r *guardReader) release() {
	if r.buf != nil {
		readPool.Put(r.buf)
		r.buf, r.pos, r.end = nil, 0, 0
	}
}

// fill reads into an empty buffer, taking one from the pool.
func (r *guardReader) fill() error {
	r.release()
	if r.sock != nil {
		return r.fillSocket()
	}
	if r.waiter != nil {
		if err := r.waiter.WaitRead(); err != nil {
			return err
		}
	}
	b := readPool.Get().(*[]byte)
	for range 100 { // as bufio: a reader may return nothing, but not for ever
		n, err := r.c.Read(*b)
		if n > 0 {
			r.buf, r.pos, r.end = b, 0, n
			return nil
		}
		if err != nil {
			readPool.Put(b)
			return err
		}
	}
	readPool.Put(b)
	return io.ErrNoProgress
}

// fillSocket reads the TCP socket directly: one non-blocking read attempt,
// and on EAGAIN the buffer goes back to the pool before the poller waits.
func (r *guardReader) fillSocket() error {
	var n int
	var rerr error
	var b *[]byte
	err := r.sock.Read(func(fd uintptr) bool {
		b = readPool.Get().(*[]byte)
		for {
			n, rerr = syscall.Read(int(fd), *b)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			readPool.Put(b)
			b = nil
			return false // wait for readability, holding nothing
		}
		return true
	})
	switch {
	case err != nil: // deadline, or closed
		if b != nil {
			readPool.Put(b)
		}
		return err
	case rerr != nil:
		readPool.Put(b)
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", rerr)}
	case n <= 0:
		readPool.Put(b)
		return io.EOF
	}
	r.buf, r.pos, r.end = b, 0, n
	return nil
}

// wait blocks until a byte is buffered.
func (r *guardReader) wait() error {
	if r.pos < r.end {
		return nil
	}
	return r.fill()
}

func (r *guardReader) ReadByte() (byte, error) {
	if r.pos == r.end {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	c := (*r.buf)[r.pos]
	r.pos++
	if r.pos == r.end {
		r.release()
	}
	return c, nil
}

// ReadFull fills p, reading straight into it when it is larger than the
// buffer and nothing is buffered.
func (r *guardReader) ReadFull(p []byte) error {
	for len(p) > 0 {
		if r.pos == r.end {
			if len(p) >= guardReadBuffer {
				_, err := io.ReadFull(r.c, p)
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			if err := r.fill(); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		n := copy(p, (*r.buf)[r.pos:r.end])
		r.pos += n
		p = p[n:]
		if r.pos == r.end {
			r.release()
		}
	}
	return nil
}
