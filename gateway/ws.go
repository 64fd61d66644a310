package gateway

import (
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// maxWSMessage caps one WebSocket message; MQTT packets are capped separately
// by the broker (broker.MaxPacketSize) and an MQTT packet may span messages.
const maxWSMessage = 512 << 10

func (g *Gateway) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		Subprotocols:     []string{"mqtt"},
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		CheckOrigin:      g.originAllowed,
	}
}

// serveMQTT upgrades /mqtt to a WebSocket carrying MQTT and hands the
// connection to the broker's channel listener.
func (g *Gateway) serveMQTT(w http.ResponseWriter, r *http.Request) {
	if !g.originAllowed(r) {
		writeError(w, http.StatusForbidden, "forbidden", "origin not allowed")
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, "invalid", "expected a WebSocket upgrade with subprotocol mqtt")
		return
	}
	c, err := g.upgrader().Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered already
	}
	if c.Subprotocol() != "mqtt" {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseProtocolError, "subprotocol mqtt required"), time.Now().Add(time.Second))
		c.Close()
		return
	}
	c.SetReadLimit(maxWSMessage)
	if err := g.o.WS.Push(&wsConn{Conn: c.NetConn(), c: c}); err != nil {
		c.Close()
	}
}

// wsConn adapts a WebSocket to the byte stream mochi reads MQTT from.
type wsConn struct {
	net.Conn // the underlying connection, for addresses and deadlines
	c        *websocket.Conn
	r        io.Reader
}

var errTextFrame = errors.New("gateway: MQTT over WebSocket needs binary messages")

func (ws *wsConn) Read(p []byte) (int, error) {
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (ws *wsConn) Close() error { return ws.c.Close() }
