package hooks

import (
	"sync"

	"github.com/mqim/mqim/accounts"
)

// Binding is the credential a connected client authenticated with.
type Binding struct {
	User string
	accounts.Credential
}

// KeyBindings remembers which credential (API key, token or password) each
// connected client authenticated with, so revoking a key or a token, or all
// of a user's tokens, can disconnect the sessions that used it at once.
type KeyBindings struct {
	mu    sync.Mutex
	byCID map[string]Binding
}

// NewKeyBindings returns an empty set.
func NewKeyBindings() *KeyBindings { return &KeyBindings{byCID: map[string]Binding{}} }

// Bind records that clientID connected with b.
func (k *KeyBindings) Bind(clientID string, b Binding) {
	k.mu.Lock()
	k.byCID[clientID] = b
	k.mu.Unlock()
}

// Unbind forgets clientID.
func (k *KeyBindings) Unbind(clientID string) {
	k.mu.Lock()
	delete(k.byCID, clientID)
	k.mu.Unlock()
}

// Clients returns the client ids connected with API key keyID.
func (k *KeyBindings) Clients(keyID string) []string {
	return k.Where(func(b Binding) bool { return b.Kind == accounts.CredKey && b.ID == keyID })
}

// Where returns the client ids whose binding matches.
func (k *KeyBindings) Where(match func(Binding) bool) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for cid, b := range k.byCID {
		if match(b) {
			out = append(out, cid)
		}
	}
	return out
}
