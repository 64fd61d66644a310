package bench

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/mqim/mqim/internal/wsconn"
)

// bufConn gives paho a buffered reader: paho reads packet headers a byte at
// a time, one syscall each, which otherwise dominates the generator's CPU.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// srcAddrs spreads client source addresses over 127.0.0.2-127.0.0.9 so that
// tens of thousands of connections to one port do not run out of ephemeral
// ports.
var srcIdx atomic.Uint32

func nextSrc() *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+srcIdx.Add(1)%8))}
}

// dialWS opens an MQTT-over-WebSocket stream to ws://addr/path.
func dialWS(addr, path string, bufSize int) (net.Conn, error) {
	d := websocket.Dialer{
		Subprotocols:     []string{"mqtt"},
		HandshakeTimeout: 20 * time.Second,
		ReadBufferSize:   bufSize,
		WriteBufferSize:  bufSize,
		NetDial: func(network, a string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: nextSrc(), Timeout: 20 * time.Second}
			return nd.Dial(network, a)
		},
	}
	c, resp, err := d.Dial("ws://"+addr+path, http.Header{})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("bench: websocket %s: %s: %w", addr, resp.Status, err)
		}
		return nil, err
	}
	return wsconn.New(c), nil
}

// clientOpts are the settings one simulated device connects with.
type clientOpts struct {
	addr     string // host:port
	ws       bool   // MQTT over WebSocket at ws://addr/mqtt (platform) or ws://addr/ (mosquitto)
	wsPath   string
	id       string
	user     string
	password string
	clean    bool
	handler  paho.MessageHandler
	onLost   func(error) // connection lost after CONNACK (nil: ignored)
}

// connect returns a connected paho client (not yet subscribed).
func connect(o clientOpts) (paho.Client, error) {
	po := paho.NewClientOptions().
		AddBroker("tcp://" + o.addr).
		SetClientID(o.id).
		SetCleanSession(o.clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).
		SetConnectTimeout(30 * time.Second).
		SetWriteTimeout(30 * time.Second).
		SetMessageChannelDepth(1000).
		SetDefaultPublishHandler(o.handler).
		SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
			if o.ws {
				c, err := dialWS(o.addr, o.wsPath, 16<<10)
				if err != nil {
					return nil, err
				}
				return &bufConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10)}, nil
			}
			c, err := net.DialTimeout("tcp", o.addr, 20*time.Second)
			if err != nil {
				return nil, err
			}
			return &bufConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10)}, nil
		})
	if o.user != "" {
		po.SetUsername(o.user).SetPassword(o.password)
	}
	if o.onLost != nil {
		po.SetConnectionLostHandler(func(_ paho.Client, err error) { o.onLost(err) })
	}
	c := paho.NewClient(po)
	t := c.Connect()
	if !t.WaitTimeout(40 * time.Second) {
		c.Disconnect(0)
		return nil, fmt.Errorf("bench: connect %s: timeout", o.id)
	}
	if err := t.Error(); err != nil {
		return nil, fmt.Errorf("bench: connect %s: %w", o.id, err)
	}
	return c, nil
}

// subscribe subscribes c to filter at QoS 1; messages go to the default handler.
func subscribe(c paho.Client, filter string) error {
	t := c.Subscribe(filter, 1, nil)
	if !t.WaitTimeout(30 * time.Second) {
		return fmt.Errorf("bench: subscribe %s: timeout", filter)
	}
	return t.Error()
}
