// Package wsconn carries a byte stream (MQTT) over binary WebSocket messages
// as a net.Conn, for the server's /mqtt handler and for Go clients alike.
package wsconn

import (
	"errors"
	"io"
	"net"

	"github.com/gorilla/websocket"
)

// ErrTextMessage is the read error when the peer sends a text message:
// MQTT over WebSocket uses binary messages only [MQTT-6.0.0-1].
var ErrTextMessage = errors.New("wsconn: MQTT over WebSocket needs binary messages")

// Conn is a WebSocket as a byte stream. A packet may span messages and a
// message may hold several packets [MQTT-6.0.0-2, MQTT-6.0.0-3]; each Write
// sends one message. Addresses and deadlines are the underlying socket's.
type Conn struct {
	net.Conn
	c *websocket.Conn
	r io.Reader
}

// New adapts c.
func New(c *websocket.Conn) *Conn { return &Conn{Conn: c.NetConn(), c: c} }

// WaitRead blocks until a message has begun arriving, so that a reader can
// wait without a read buffer of its own (an idle connection then holds only
// the WebSocket's). Read and WaitRead are for one goroutine.
func (w *Conn) WaitRead() error {
	if w.r != nil {
		// gorilla reports a message's end only on the read after its last
		// bytes; an empty read asks for it without a buffer.
		_, err := w.r.Read(nil)
		if !errors.Is(err, io.EOF) {
			return err
		}
		w.r = nil
	}
	op, r, err := w.c.NextReader()
	if err != nil {
		return err
	}
	if op != websocket.BinaryMessage {
		return ErrTextMessage
	}
	w.r = r
	return nil
}

func (w *Conn) Read(p []byte) (int, error) {
	for {
		if err := w.WaitRead(); err != nil {
			return 0, err
		}
		n, err := w.r.Read(p)
		if errors.Is(err, io.EOF) {
			w.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (w *Conn) Write(p []byte) (int, error) {
	if err := w.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the WebSocket's connection.
func (w *Conn) Close() error { return w.c.Close() }
