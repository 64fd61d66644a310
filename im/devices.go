package im

import (
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/fanout"
)

// Devices that are not MQTT connections (the gateway's SSE streams and
// long-poll sessions) count for presence exactly like MQTT clients: the first
// device of a user publishes "online", the last one to leave "offline", and a
// signal to a user with only such devices is relayed rather than answered
// with ERROR OFFLINE.

// DeviceConnected records a non-MQTT device of user. clientID must not clash
// with an MQTT client id (the gateway's contain a '/', which MQTT client ids
// may not); conn identifies this connection of it (see presence.Tracker).
func (h *Service) DeviceConnected(user, clientID string, conn any) {
	h.d.Metrics.Connections.Inc()
	if h.d.Presence.Connect(user, clientID, conn) {
		h.setPresence(user, "online", "")
	}
}

// DeviceDisconnected is DeviceConnected's counterpart.
func (h *Service) DeviceDisconnected(user, clientID string, conn any) {
	h.d.Metrics.Connections.Dec()
	if h.d.Presence.Disconnect(user, clientID, conn) {
		h.setPresence(user, "offline", "")
	}
}

// StalePresence marks user offline unless a device of theirs is connected:
// after a restart, a retained presence still says what it said before.
func (h *Service) StalePresence(user string) {
	if !h.d.Presence.Online(user) {
		h.setPresence(user, "offline", "")
	}
}

// Online reports whether user has a device connected.
func (h *Service) Online(user string) bool { return h.d.Presence.Online(user) }

// RefreshPresence announces user's presence if the last status disagrees
// with the presence view: offline with no device anywhere, online with
// one; otherwise it publishes nothing. A cluster node calls it when
// another node's change, or death, decided user's presence.
func (h *Service) RefreshPresence(user string) {
	s := h.d.Presence.StatusOf(user)
	switch online := h.d.Presence.Online(user); {
	case !online && s.Status != "offline":
		h.setPresence(user, "offline", "")
	case online && s.Status == "offline":
		h.setPresence(user, "online", "")
	}
}

// ShowPresence publishes user's last status as it was published (same
// text and time) to hub only: a cluster node that starts, or learns
// statuses another node published while it did not hear them, corrects
// its own retained copies without announcing anything again.
func (h *Service) ShowPresence(hub fanout.Hub, user string) {
	s := h.d.Presence.StatusOf(user)
	h.showPresenceOn(hub, envelope.Presence{User: user, Status: s.Status, Text: s.Text, TS: s.TS})
}
