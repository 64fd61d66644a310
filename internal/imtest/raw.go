package imtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/wsconn"
)

// Raw is an MQTT connection (3.1.1 or 5, TCP or WebSocket) that sends raw
// bytes after its CONNECT: for tests of what the broker does with packets
// no well-behaved client would send.
type Raw struct {
	Conn    net.Conn
	Connack packets.Packet // the server's answer to CONNECT
	// Skipped holds packets a helper read past while waiting for another
	// (a PUBLISH that came before an acknowledgement).
	Skipped []packets.Packet
	r       *bufio.Reader
	version byte
}

// DialRaw connects to url (tcp://host:port or ws://host:port/mqtt) with MQTT
// protocol version 4 (3.1.1) or 5 and sends CONNECT with a clean session; it
// returns the CONNACK's return or reason code.
func DialRaw(url string, version byte, clientID, user, password string) (*Raw, byte, error) {
	return DialRawConnect(url, version, packets.ConnectParams{ClientIdentifier: clientID,
		Username: []byte(user), UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
}

// DialRawConnect is DialRaw with the CONNECT's parameters (a will, say);
// the protocol name, clean start and (unless given) a 30 s keepalive are
// filled in.
func DialRawConnect(url string, version byte, cp packets.ConnectParams) (*Raw, byte, error) {
	return DialRawSession(url, version, cp, true, packets.Properties{})
}

// DialRawPersistent is DialRawConnect without clean session / clean start:
// a 3.1.1 persistent session (MQTT 5: use DialRawSession with a Session
// Expiry Interval). A refused CONNECT is no error: the CONNACK's code says
// why.
func DialRawPersistent(url string, version byte, cp packets.ConnectParams) (*Raw, byte, error) {
	return DialRawSession(url, version, cp, false, packets.Properties{})
}

// DialRawSession is DialRawConnect with the clean session (3.1.1) or clean
// start (5) flag and the CONNECT's MQTT 5 properties (Session Expiry
// Interval, Receive Maximum) given.
func DialRawSession(url string, version byte, cp packets.ConnectParams, clean bool, props packets.Properties) (*Raw, byte, error) {
	var c net.Conn
	var err error
	if strings.HasPrefix(url, "ws://") {
		c, err = DialWS(url)
	} else {
		c, err = net.DialTimeout("tcp", strings.TrimPrefix(url, "tcp://"), 5*time.Second)
	}
	if err != nil {
		return nil, 0, err
	}
	r := &Raw{Conn: c, r: bufio.NewReader(c), version: version}
	cp.ProtocolName, cp.Clean = []byte("MQTT"), clean
	if cp.Keepalive == 0 {
		cp.Keepalive = 30
	}
	pk := packets.Packet{ProtocolVersion: version, FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: cp, Properties: props}
	var b bytes.Buffer
	if err := pk.ConnectEncode(&b); err != nil {
		c.Close()
		return nil, 0, err
	}
	if err := r.Write(b.Bytes()); err != nil {
		c.Close()
		return nil, 0, err
	}
	ack, err := r.Read(5 * time.Second)
	if err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("read connack: %w", err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		c.Close()
		return nil, 0, fmt.Errorf("expected CONNACK, got type %d", ack.FixedHeader.Type)
	}
	r.Connack = ack
	return r, ack.ReasonCode, nil
}

// DialWS opens an MQTT-over-WebSocket byte stream to url (ws://.../mqtt).
func DialWS(url string) (net.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	return wsconn.New(ws), nil
}

// Write sends raw bytes.
func (r *Raw) Write(b []byte) error {
	r.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.Conn.Write(b)
	return err
}

// Read reads and decodes the next packet, waiting at most d.
func (r *Raw) Read(d time.Duration) (packets.Packet, error) {
	r.Conn.SetReadDeadline(time.Now().Add(d))
	pk := packets.Packet{ProtocolVersion: r.version}
	hb, err := r.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	if pk.FixedHeader.Remaining, _, err = packets.DecodeLength(r.r); err != nil {
		return pk, err
	}
	body := make([]byte, pk.FixedHeader.Remaining)
	if _, err := io.ReadFull(r.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// Ping sends PINGREQ and waits up to d for PINGRESP, skipping other packets.
func (r *Raw) Ping(d time.Duration) error {
	if err := r.Write([]byte{0xc0, 0x00}); err != nil {
		return err
	}
	deadline := time.Now().Add(d)
	for {
		pk, err := r.Read(time.Until(deadline))
		if err != nil {
			return err
		}
		if pk.FixedHeader.Type == packets.Pingresp {
			return nil
		}
		r.Skipped = append(r.Skipped, pk)
	}
}

// Close closes the connection.
func (r *Raw) Close() error { return r.Conn.Close() }

// Subscribe sends SUBSCRIBE (packet id 1) for filters at qos and waits for
// the SUBACK, returning its codes; packets before it go to Skipped.
func (r *Raw) Subscribe(qos byte, filters ...string) ([]byte, error) {
	return r.SubscribeID(1, qos, filters...)
}

// SubscribeID is Subscribe with packet id pid; it waits up to 30 s for the
// SUBACK of that id.
func (r *Raw) SubscribeID(pid uint16, qos byte, filters ...string) ([]byte, error) {
	pk := packets.Packet{ProtocolVersion: r.version, PacketID: pid,
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: qos})
	}
	var b bytes.Buffer
	if err := pk.SubscribeEncode(&b); err != nil {
		return nil, err
	}
	if err := r.Write(b.Bytes()); err != nil {
		return nil, err
	}
	for {
		ack, err := r.Read(30 * time.Second)
		if err != nil {
			return nil, fmt.Errorf("waiting for SUBACK %d: %w", pid, err)
		}
		if ack.FixedHeader.Type == packets.Suback && ack.PacketID == pid {
			return ack.ReasonCodes, nil
		}
		r.Skipped = append(r.Skipped, ack)
	}
}

// Puback acknowledges the QoS 1 PUBLISH with packet id.
func (r *Raw) Puback(id uint16) error {
	pk := packets.Packet{ProtocolVersion: r.version, PacketID: id, FixedHeader: packets.FixedHeader{Type: packets.Puback}}
	var b bytes.Buffer
	if err := pk.PubackEncode(&b); err != nil {
		return err
	}
	return r.Write(b.Bytes())
}

// Disconnect sends DISCONNECT and closes the connection.
func (r *Raw) Disconnect() error {
	_ = r.Write([]byte{0xe0, 0x00})
	return r.Conn.Close()
}
