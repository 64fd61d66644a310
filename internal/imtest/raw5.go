package imtest

import (
	"bytes"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Raw5 is a minimal MQTT 5 client built on mochi's packet codec, for tests
// that need reason codes (paho.mqtt.golang speaks 3.1.1 only).
type Raw5 struct {
	*Raw
	pid uint16
}

// DialRaw5 connects over TCP and sends CONNECT; it returns the CONNACK reason.
func DialRaw5(addr, clientID, user, password string) (*Raw5, byte, error) {
	r, code, err := DialRaw(addr, 5, clientID, user, password)
	if err != nil {
		return nil, 0, err
	}
	return &Raw5{Raw: r}, code, nil
}

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
	pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: dup},
		TopicName: topic, Payload: payload, PacketID: pid}
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
