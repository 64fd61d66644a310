package broker

import (
	"net"
	"sync"
	"time"
)

// drainListener counts accepted connections until mochi has attached them.
//
// mochi's attachClient calls Listeners.ClientsWg.Add(1) on a goroutine of its
// own, while Server.Close calls ClientsWg.Wait(): a connection accepted just
// before shutdown races the Wait (sync.WaitGroup forbids that, and the race
// detector says so). mochi reads the connection only after that Add, so once
// every accepted connection has been read from (or closed), Close is safe.
type drainListener struct {
	net.Listener
	pending *sync.WaitGroup
}

func (l drainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.pending.Add(1)
	return &attachConn{Conn: c, done: l.pending.Done}, nil
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

// waitAttached waits, at most d, for accepted connections to be attached.
func waitAttached(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
