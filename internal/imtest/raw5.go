package imtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Raw5 is a minimal MQTT 5 client built on mochi's packet codec, for tests
// that need reason codes (paho.mqtt.golang speaks 3.1.1 only).
type Raw5 struct {
	conn net.Conn
	r    *bufio.Reader
	pid  uint16
}

// DialRaw5 connects over TCP and sends CONNECT; it returns the CONNACK reason.
func DialRaw5(addr, clientID, user, password string) (*Raw5, byte, error) {
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "tcp://"), 5*time.Second)
	if err != nil {
		return nil, 0, err
	}
	r := &Raw5{conn: c, r: bufio.NewReader(c)}
	pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: clientID, Keepalive: 30, Clean: true,
			Username: []byte(user), UsernameFlag: true, Password: []byte(password), PasswordFlag: true}}
	if err := r.write(&pk, (*packets.Packet).ConnectEncode); err != nil {
		return nil, 0, err
	}
	ack, err := r.Read()
	if err != nil {
		return nil, 0, fmt.Errorf("read connack: %w", err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		return nil, 0, fmt.Errorf("expected CONNACK, got type %d", ack.FixedHeader.Type)
	}
	return r, ack.ReasonCode, nil
}

func (r *Raw5) write(pk *packets.Packet, enc func(*packets.Packet, *bytes.Buffer) error) error {
	var b bytes.Buffer
	if err := enc(pk, &b); err != nil {
		return err
	}
	r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.conn.Write(b.Bytes())
	return err
}

// Read reads the next packet (CONNACK, PUBLISH, PUBACK or SUBACK).
func (r *Raw5) Read() (packets.Packet, error) {
	r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	hb, err := r.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: 5}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, mult := 0, 1
	for {
		b, err := r.r.ReadByte()
		if err != nil {
			return pk, err
		}
		n += int(b&127) * mult
		mult *= 128
		if b&128 == 0 {
			break
		}
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
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
	case packets.Suback:
		err = pk.SubackDecode(body)
	}
	return pk, err
}

// Publish sends a QoS 1 PUBLISH and returns the PUBACK reason code, skipping
// any other packet that arrives first.
func (r *Raw5) Publish(topic string, payload []byte) (byte, error) {
	r.pid++
	return r.PublishID(topic, payload, r.pid, false)
}

// PublishID is Publish with a chosen packet id and DUP flag, to replay a
// retransmission as a client does after reconnecting.
func (r *Raw5) PublishID(topic string, payload []byte, pid uint16, dup bool) (byte, error) {
	return r.publish(packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: dup},
		TopicName: topic, Payload: payload, PacketID: pid})
}

// PublishRetained is Publish with the RETAIN flag set.
func (r *Raw5) PublishRetained(topic string, payload []byte) (byte, error) {
	r.pid++
	return r.publish(packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName: topic, Payload: payload, PacketID: r.pid})
}

func (r *Raw5) publish(pk packets.Packet) (byte, error) {
	pid := pk.PacketID
	if err := r.write(&pk, (*packets.Packet).PublishEncode); err != nil {
		return 0, err
	}
	for {
		ack, err := r.Read()
		if err != nil {
			return 0, err
		}
		if ack.FixedHeader.Type == packets.Puback && ack.PacketID == pid {
			return ack.ReasonCode, nil
		}
	}
}

// Subscribe subscribes to filters and returns the SUBACK reason codes.
func (r *Raw5) Subscribe(filters ...string) ([]byte, error) {
	r.pid++
	pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: r.pid}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	if err := r.write(&pk, (*packets.Packet).SubscribeEncode); err != nil {
		return nil, err
	}
	for {
		ack, err := r.Read()
		if err != nil {
			return nil, err
		}
		if ack.FixedHeader.Type == packets.Suback && ack.PacketID == r.pid {
			return ack.ReasonCodes, nil
		}
	}
}

// Close closes the connection.
func (r *Raw5) Close() error { return r.conn.Close() }
