package imtest

import (
	"bytes"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Raw5 is a minimal MQTT 5 client built on mochi's packet codec, for tests
// that need reason codes (paho.mqtt.golang speaks 3.1.1 only). Its helpers
// speak the Raw's protocol version: Raw.Client gives them to a 3.1.1 Raw
// (whose PUBACKs carry no reason code: 0).
type Raw5 struct {
	*Raw
	pid uint16
}

// DialRaw5 connects over TCP and sends CONNECT; it returns the CONNACK reason.
func DialRaw5(addr, clientID, user, password string) (*Raw5, byte, error) {
	return DialRaw5Connect(addr, packets.ConnectParams{ClientIdentifier: clientID,
		Username: []byte(user), UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
}

// DialRaw5Connect is DialRaw5 with the CONNECT's parameters (a will, say);
// the protocol name, keepalive and clean start are filled in.
func DialRaw5Connect(addr string, cp packets.ConnectParams) (*Raw5, byte, error) {
	r, code, err := DialRawConnect(addr, 5, cp)
	if err != nil {
		return nil, 0, err
	}
	return &Raw5{Raw: r}, code, nil
}

// Client gives r the publish and subscribe helpers of Raw5.
func (r *Raw) Client() *Raw5 { return &Raw5{Raw: r} }

func (r *Raw5) write(pk *packets.Packet, enc func(*packets.Packet, *bytes.Buffer) error) error {
	var b bytes.Buffer
	if err := enc(pk, &b); err != nil {
		return err
	}
	return r.Raw.Write(b.Bytes())
}

// Read reads the next packet (CONNACK, PUBLISH, PUBACK, SUBACK or DISCONNECT).
func (r *Raw5) Read() (packets.Packet, error) { return r.Raw.Read(5 * time.Second) }

// Publish sends a QoS 1 PUBLISH and returns the PUBACK reason code, skipping
// any other packet that arrives first.
func (r *Raw5) Publish(topic string, payload []byte) (byte, error) {
	r.pid++
	return r.PublishID(topic, payload, r.pid, false)
}

// PublishID is Publish with a chosen packet id and DUP flag, to replay a
// retransmission as a client does after reconnecting.
func (r *Raw5) PublishID(topic string, payload []byte, pid uint16, dup bool) (byte, error) {
	return r.publish(packets.Packet{ProtocolVersion: r.version, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: dup},
		TopicName: topic, Payload: payload, PacketID: pid})
}

// PublishRetained is Publish with the retain flag (an empty payload deletes
// the topic's retained message).
func (r *Raw5) PublishRetained(topic string, payload []byte) (byte, error) {
	r.pid++
	return r.publish(packets.Packet{ProtocolVersion: r.version, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
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
		r.Skipped = append(r.Skipped, ack)
	}
}

// Subscribe subscribes to filters and returns the SUBACK reason codes.
func (r *Raw5) Subscribe(filters ...string) ([]byte, error) {
	r.pid++
	pk := packets.Packet{ProtocolVersion: r.version, FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: r.pid}
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
		r.Skipped = append(r.Skipped, ack)
	}
}
