package hooks

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/topic"
)

// Auth authenticates CONNECTs and authorises subscriptions.
type Auth struct {
	mqtt.HookBase
	d *Deps
}

// NewAuth returns the auth/ACL hook.
func NewAuth(d *Deps) *Auth { return &Auth{d: d} }

// ID implements mqtt.Hook.
func (h *Auth) ID() string { return "mqim-auth" }

// Provides implements mqtt.Hook.
func (h *Auth) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPacketRead}, []byte{b})
}

// ValidClientID reports whether id is "{user}:{device}" for user.
func ValidClientID(user, id string) bool {
	dev, ok := strings.CutPrefix(id, user+":")
	if !ok || len(dev) < 1 || len(dev) > 64 {
		return false
	}
	for _, r := range dev {
		if r < 0x21 || r == 0x7f || r == '/' || r == '+' || r == '#' {
			return false
		}
	}
	return true
}

// OnConnectAuthenticate checks the user's password or token and that the
// client id belongs to that user: MQTT keys persistent sessions by client id,
// so a foreign id would let one user take over another's session.
func (h *Auth) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	ok := h.authenticate(cl, pk, user)
	switch {
	case ok:
		h.d.Metrics.Connects.WithLabelValues("ok").Inc()
	case cl.Closed():
		h.d.Metrics.Connects.WithLabelValues("retry_later").Inc()
	default:
		h.d.Metrics.Connects.WithLabelValues("refused").Inc()
	}
	return ok
}

func (h *Auth) authenticate(cl *mqtt.Client, pk packets.Packet, user string) bool {
	log := h.d.Log.With("client", pk.Connect.ClientIdentifier, "user", user, "remote", cl.Net.Remote)
	if !topic.ValidUser(user) || !ValidClientID(user, pk.Connect.ClientIdentifier) {
		log.Info("connect refused: client id must be {user}:{device}")
		return false
	}
	cred, err := h.d.Accounts.Authenticate(remoteHost(cl.Net.Remote), user, pk.Connect.ClientIdentifier, string(pk.Connect.Password))
	if secs, ok := accounts.RetryAfter(err); ok {
		log.Info("connect refused: retry later", "error", err)
		h.refuseRetry(cl, err, secs)
		return false
	}
	if err != nil {
		log.Info("connect refused: bad credentials")
		return false
	}
	if pk.Connect.WillFlag && !h.d.Policy.CanWrite(user, pk.Connect.ClientIdentifier, pk.Connect.WillTopic) {
		// mochi publishes wills without OnPublish or ACL checks, so a will
		// into im/ would bypass stamping; refuse it up front, visibly.
		log.Info("connect refused: will topic not allowed", "topic", pk.Connect.WillTopic)
		return false
	}
	h.d.Keys.Bind(pk.Connect.ClientIdentifier, Binding{User: user, Credential: cred})
	return true
}

// refuseRetry answers a CONNECT that could not be checked now (the KDF is
// busy, or the IP or account is throttled) with a CONNACK that says so
// and closes the connection. mochi can only refuse an authentication with
// "bad user name or password", which would tell a client its password is
// wrong: MQTT 5 gets 0x89 server busy or 0x9F connection rate exceeded with
// a reason string, MQTT 3.1.1 0x03 server unavailable. Closing the client
// makes mochi's own refusal CONNACK fail to write.
func (h *Auth) refuseRetry(cl *mqtt.Client, err error, secs int) {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}
	switch {
	case cl.Properties.ProtocolVersion < 5:
		ack.ReasonCode = packets.Err3ServerUnavailable.Code
	case errors.Is(err, accounts.ErrThrottled):
		ack.ReasonCode = packets.ErrConnectionRateExceeded.Code
		ack.Properties.ReasonString = fmt.Sprintf("too many failed logins; retry in %d s", secs)
	default:
		ack.ReasonCode = packets.ErrServerBusy.Code
		ack.Properties.ReasonString = fmt.Sprintf("server busy; retry in %d s", secs)
	}
	_ = cl.WritePacket(ack)
	cl.Stop(err)
}

// remoteHost is the IP of a "host:port" remote address.
func remoteHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// OnPacketRead resolves an inbound MQTT 5 topic alias before anything else
// sees the packet: mochi checks the write ACL before it resolves aliases, so
// a publish carrying only an alias would be judged by an empty topic.
func (h *Auth) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.Properties.TopicAliasFlag && pk.Properties.TopicAlias > 0 {
		pk.TopicName = cl.State.TopicAliases.Inbound.Set(pk.Properties.TopicAlias, pk.TopicName)
	}
	return pk, nil
}

// OnACLCheck authorises subscriptions (and each delivery) by the policy. For
// writes under im/ it defers to IM.OnPublish, which applies the same policy
// but can answer with an error notice; refusing here would make mochi
// disconnect MQTT 3.1.1 publishers instead.
func (h *Auth) OnACLCheck(cl *mqtt.Client, t string, write bool) bool {
	user := string(cl.Properties.Username)
	if write {
		if strings.HasPrefix(t, topic.Prefix) {
			return true
		}
		return h.d.Policy.CanWrite(user, cl.ID, t)
	}
	return h.d.Policy.CanSubscribe(user, cl.ID, t)
}
