package p2p

import (
	"errors"
	"fmt"
	"sync/atomic"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/roap"
	"github.com/mqim/mqim/topic"
)

// ErrNotSignal is returned by MQTTSignaller.HandleEvent for a topic that is
// not one of our signal topics (so the caller may route it elsewhere).
var ErrNotSignal = errors.New("p2p: not a signal topic")

// MQTTSignaller carries ROAP over the platform's MQTT topics: it publishes
// each message on im/u/{to}/signal/{me} at QoS 0 (the server relays signals
// at QoS 0 and never stores them, so QoS 1 would buy nothing) and hands
// payloads from im/u/{me}/signal/{from} to the bound Peer.
//
// Inbound payloads must be handed over in the order the broker delivered
// them, from one goroutine: imclient's OnEvent does exactly that.
//
//	sig := p2p.NewMQTTSignaller(me)
//	c, _ := imclient.Dial(ctx, imclient.Options{..., OnEvent: func(t string, b []byte) { _ = sig.HandleEvent(t, b) }})
//	sig.SetClient(c.MQTT())
//	peer := p2p.NewPeer(p2p.Config{Self: me, Signaller: sig, ...})
//	sig.Bind(peer)
type MQTTSignaller struct {
	self   string
	client atomic.Pointer[paho.Client]
	peer   atomic.Pointer[Peer]
}

// NewMQTTSignaller returns a signaller for user self; give it a connected
// client with SetClient and a Peer with Bind before signals flow.
func NewMQTTSignaller(self string) *MQTTSignaller {
	return &MQTTSignaller{self: self}
}

// SetClient sets the MQTT client signals are published with.
func (s *MQTTSignaller) SetClient(c paho.Client) { s.client.Store(&c) }

// Bind sets the Peer inbound signals go to. Signals that arrive before are
// dropped (nothing can be negotiating yet).
func (s *MQTTSignaller) Bind(p *Peer) { s.peer.Store(p) }

// SignalTopic is the topic a signal from "from" to "to" is published on.
func SignalTopic(to, from string) string {
	return topic.Topic{Kind: topic.Signal, Owner: to, Peer: from}.String()
}

// SendSignal publishes msg on im/u/{msg.To}/signal/{me}. It does not wait
// for the network: the roap.Manager calls it with its lock held, and paho
// keeps the order of publishes.
func (s *MQTTSignaller) SendSignal(msg roap.Message) error {
	if msg.From != s.self {
		return fmt.Errorf("p2p: signal from %q sent by %q: %w", msg.From, s.self, roap.ErrInvalidField)
	}
	b, err := msg.Encode()
	if err != nil {
		return err
	}
	c := s.client.Load()
	if c == nil || !(*c).IsConnectionOpen() {
		return fmt.Errorf("p2p: signal to %s: not connected", msg.To)
	}
	tok := (*c).Publish(SignalTopic(msg.To, s.self), 0, false, b)
	select {
	case <-tok.Done():
		return tok.Error()
	default:
		return nil
	}
}

// HandleEvent takes one inbound publish. A topic other than
// im/u/{me}/signal/{from} returns ErrNotSignal; a payload that does not
// decode, or whose from differs from the topic's (the server stamps the
// topic, so it is the truth), is refused with the decoder's error.
func (s *MQTTSignaller) HandleEvent(name string, payload []byte) error {
	t, err := topic.Parse(name)
	if err != nil || t.Kind != topic.Signal || t.Owner != s.self {
		return ErrNotSignal
	}
	p := s.peer.Load()
	if p == nil {
		return fmt.Errorf("p2p: signal from %s before a peer was bound", t.Peer)
	}
	if err := p.HandleSignalPayload(t.Peer, payload); err != nil {
		p.cfg.Logf("p2p: %s: %v", s.self, err)
		return err
	}
	return nil
}
