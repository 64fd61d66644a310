package broker

import (
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/hooks"
)

// DisconnectToken drops every session that authenticated with the token
// whose id is tokenID (after logout), telling MQTT 5 clients why: not
// authorized.
func (b *Broker) DisconnectToken(tokenID string) {
	b.disconnectWhere(func(c hooks.Binding) bool { return c.Kind == accounts.CredToken && c.ID == tokenID })
}

// DisconnectUser drops every session of user that authenticated with a
// token or a password (after a password change or "sign out everywhere");
// sessions on API keys are revoked key by key.
func (b *Broker) DisconnectUser(user string) {
	b.disconnectWhere(func(c hooks.Binding) bool { return c.User == user && c.Kind != accounts.CredKey })
}

func (b *Broker) disconnectWhere(match func(hooks.Binding) bool) {
	for _, id := range b.deps.Keys.Where(match) {
		if cl, ok := b.Server.Clients.Get(id); ok && !cl.Closed() {
			_ = b.Server.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
	}
}
