package gateway

import (
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mqim/mqim/internal/wsconn"
)

// maxWSMessage caps one WebSocket message; MQTT packets are capped separately
// by the broker (broker.MaxPacketSize) and an MQTT packet may span messages.
const maxWSMessage = 512 << 10

// wsWriteBuffers lends every /mqtt WebSocket its write buffer for the length
// of one message: an idle connection holds none.
var wsWriteBuffers sync.Pool

// wsReadBuffer is the frame reader's buffer, held by each WebSocket for its
// lifetime (gorilla cannot lend it): small, as MQTT packets mostly are;
// larger frames are read straight into the reader's destination.
const wsReadBuffer = 1024

func (g *Gateway) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		Subprotocols:     []string{"mqtt"},
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   wsReadBuffer,
		WriteBufferSize:  4096,
		WriteBufferPool:  &wsWriteBuffers,
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
	if err := g.o.WS.Push(wsconn.New(c)); err != nil {
		c.Close()
	}
}
