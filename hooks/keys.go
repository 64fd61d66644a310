package hooks

import "sync"

// KeyBindings remembers which API key each connected client authenticated
// with, so revoking a key can disconnect its sessions at once.
type KeyBindings struct {
	mu    sync.Mutex
	byCID map[string]string // client id -> key id
}

// NewKeyBindings returns an empty set.
func NewKeyBindings() *KeyBindings { return &KeyBindings{byCID: map[string]string{}} }

// Bind records that clientID connected with keyID.
func (k *KeyBindings) Bind(clientID, keyID string) {
	k.mu.Lock()
	k.byCID[clientID] = keyID
	k.mu.Unlock()
}

// Unbind forgets clientID.
func (k *KeyBindings) Unbind(clientID string) {
	k.mu.Lock()
	delete(k.byCID, clientID)
	k.mu.Unlock()
}

// Clients returns the client ids connected with keyID.
func (k *KeyBindings) Clients(keyID string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for cid, kid := range k.byCID {
		if kid == keyID {
			out = append(out, cid)
		}
	}
	return out
}
