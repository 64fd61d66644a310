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

// MaxClientIDBytes bounds the client id a CONNECT may carry.
const MaxClientIDBytes = 256

// SessionKey is the internal id of user's MQTT client id: mochi's cl.ID, by
// which it keys sessions (and which %c in operator rules, presence and
// credential bindings see). It is "{user}:{device}", the device being id
// without a leading "{user}:" (so bob's "phone" and "bob:phone" are one
// device, and ids of that older, once required form keep their sessions,
// keys and bindings), with '/', '+', '#', spaces and control bytes
// percent-escaped so a device stays one topic level. A user name has no ':'
// (topic.ValidUser), so a key's user is everything before its first ':', and
// no client id of one user is ever another user's key: bob's "alice:phone"
// is "bob:alice:phone". (Escaping is not injective within one user: bob's
// "a/b" and "a%2Fb" share a session; no other user's.)
func SessionKey(user, id string) string {
	dev := strings.TrimPrefix(id, user+":")
	var b strings.Builder
	b.Grow(len(user) + 1 + len(dev))
	b.WriteString(user)
	b.WriteByte(':')
	for i := 0; i < len(dev); i++ {
		c := dev[i]
		if c <= ' ' || c == 0x7f || c == '/' || c == '+' || c == '#' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// UserOf is the user of a session key (SessionKey).
func UserOf(key string) string {
	u, _, _ := strings.Cut(key, ":")
	return u
}

// OnConnectAuthenticate checks the user's password, key or token and keys
// the session by user and client id (SessionKey), rewriting cl.ID: MQTT
// keys persistent sessions by client id, so a bare id would let one user
// take over another's session. Any client id is accepted (mosquitto_sub
// without -i, MQTT.js's mqttjs_..., a device's fixed id); an empty one has
// been assigned one by mochi, which an MQTT 5 client is told in the
// CONNACK's Assigned Client Identifier [MQTT-3.2.2-16]. (A 3.1.1 client with
// an empty id and a persistent session is refused before: see broker's
// packet guard.)
func (h *Auth) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	r := h.authenticate(cl, pk, user)
	switch {
	case r == nil:
		h.d.Metrics.Connects.WithLabelValues("ok").Inc()
		return true
	case r.retry:
		h.d.Metrics.Connects.WithLabelValues("retry_later").Inc()
	default:
		h.d.Metrics.Connects.WithLabelValues("refused").Inc()
	}
	return false
}

// authenticate returns nil for an accepted CONNECT; a refused one has had
// its CONNACK written and its connection stopped.
func (h *Auth) authenticate(cl *mqtt.Client, pk packets.Packet, user string) *connectRefusal {
	log := h.d.Log.With("client", pk.Connect.ClientIdentifier, "user", user, "remote", cl.Net.Remote)
	refuse := func(r connectRefusal, detail string, args ...any) *connectRefusal {
		log.Info("connect refused: "+r.why, args...)
		h.refuseConnect(cl, r, detail)
		return &r
	}
	if !topic.ValidUser(user) {
		return refuse(refuseCredentials, "no such user name")
	}
	if len(pk.Connect.ClientIdentifier) > MaxClientIDBytes {
		return refuse(refuseClientID, fmt.Sprintf("client id of %d bytes: at most %d", len(pk.Connect.ClientIdentifier), MaxClientIDBytes))
	}
	id := pk.Connect.ClientIdentifier
	if id == "" {
		id = cl.ID // assigned by mochi
	}
	key := SessionKey(user, id)
	cred, err := h.d.Accounts.Authenticate(remoteHost(cl.Net.Remote), user, key, string(pk.Connect.Password))
	if secs, ok := accounts.RetryAfter(err); ok {
		if errors.Is(err, accounts.ErrThrottled) {
			return refuse(refuseThrottled, fmt.Sprintf("too many failed logins; retry in %d s", secs), "error", err)
		}
		return refuse(refuseBusy, fmt.Sprintf("server busy; retry in %d s", secs), "error", err)
	}
	if err != nil {
		return refuse(refuseCredentials, "bad user name, password, key or token")
	}
	mount := h.d.Policy.MountOf(user)
	will := MountIn(mount, pk.Connect.WillTopic)
	if pk.Connect.WillFlag && !h.d.Policy.CanWrite(user, key, will) {
		// mochi publishes wills without OnPublish or ACL checks, so a will
		// into im/ would bypass stamping; refuse it up front, visibly.
		return refuse(refuseWill, fmt.Sprintf("will topic %q not allowed", truncate(pk.Connect.WillTopic, 64)), "topic", will)
	}
	if pk.Connect.WillFlag {
		cl.Properties.Will.TopicName = will
	}
	h.d.Mounts.set(cl, mount)
	cl.ID = key
	h.d.Keys.Bind(key, Binding{User: user, Credential: cred})
	return nil
}

// connectRefusal is one reason a CONNECT is refused, with its CONNACK codes.
type connectRefusal struct {
	why    string
	v5, v3 packets.Code
	retry  bool // the CONNECT could not be checked now; the client may retry
}

// The refusals of a CONNECT. mochi itself can only answer "bad user name or
// password" (and sends 3.1.1 clients 5 not authorized for it), which would
// tell a client with a bad client id, or one only throttled, that its
// password is wrong.
var (
	refuseClientID    = connectRefusal{why: "client id not accepted", v5: packets.ErrClientIdentifierNotValid, v3: packets.Err3ClientIdentifierNotValid}
	refuseCredentials = connectRefusal{why: "bad credentials", v5: packets.ErrBadUsernameOrPassword, v3: packets.ErrMalformedUsernameOrPassword}
	refuseWill        = connectRefusal{why: "will topic not allowed", v5: packets.ErrNotAuthorized, v3: packets.Err3NotAuthorized}
	refuseBusy        = connectRefusal{why: "retry later", v5: packets.ErrServerBusy, v3: packets.Err3ServerUnavailable, retry: true}
	refuseThrottled   = connectRefusal{why: "retry later", v5: packets.ErrConnectionRateExceeded, v3: packets.Err3ServerUnavailable, retry: true}

	connectRefusals = []connectRefusal{refuseClientID, refuseCredentials, refuseWill, refuseBusy, refuseThrottled}
)

// refuseConnect answers a refused CONNECT with r's CONNACK, and for MQTT 5
// detail as its reason string, and closes the connection. Closing the client
// makes mochi's own refusal CONNACK fail to write.
func (h *Auth) refuseConnect(cl *mqtt.Client, r connectRefusal, detail string) {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: r.v3.Code}
	if cl.Properties.ProtocolVersion == 5 {
		ack.ReasonCode = r.v5.Code
		ack.Properties.ReasonString = detail
	}
	_ = cl.WritePacket(ack)
	cl.Stop(fmt.Errorf("connect refused: %s", r.why))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
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
// a publish carrying only an alias would be judged by an empty topic. An
// alias this connection never set up (aliases end with their connection
// [MQTT-3.3.2-10]) is a protocol error: DISCONNECT 0x94 Topic Alias invalid
// (mochi would go on with an empty topic name).
func (h *Auth) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.Properties.TopicAliasFlag && pk.Properties.TopicAlias > 0 {
		pk.TopicName = cl.State.TopicAliases.Inbound.Set(pk.Properties.TopicAlias, pk.TopicName)
		if pk.TopicName == "" {
			_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
				ReasonCode: packets.ErrTopicAliasInvalid.Code})
			cl.Stop(packets.ErrTopicAliasInvalid)
			return pk, packets.ErrRejectPacket
		}
	}
	return pk, nil
}

// OnACLCheck authorises subscriptions (and each delivery) by the policy.
// Every write passes here: IM.OnPublish judges im/ and Namespaces.OnPublish
// everything else by the same policy, and both can refuse with an error
// notice and an acknowledgement. Refusing here would make mochi disconnect
// an MQTT 3.1.1 publisher (3.1.1 has no reason codes), and a persistent
// session resends the publish at every reconnect: a loop.
func (h *Auth) OnACLCheck(cl *mqtt.Client, t string, write bool) bool {
	if write {
		return true
	}
	return h.d.Policy.CanSubscribe(string(cl.Properties.Username), cl.ID, t)
}
