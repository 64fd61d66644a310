package broker

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	badgerstore "github.com/mochi-mqtt/server/v2/hooks/storage/badger"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sessionStore is mochi's Badger storage hook, finishing what it leaves
// undone when a persistent session expires. mochi deletes only the client
// record, so the session's subscriptions stay in the topic tree and in
// storage, and its queued messages stay in storage, reloaded at every start.
//
// On expiry we unsubscribe and clear the queue, which runs the hook's delete
// paths. A message being queued for the session at that very moment could
// still write its record after the delete (mochi sets the inflight entry,
// then calls OnQosPublish), so expired ids are remembered: a write is
// skipped for an expired session, and undone when the session expired while
// it was being written. The lock guards only the map, never a disk write:
// every publisher passes through here once per queued copy.
type sessionStore struct {
	*badgerstore.Hook
	srv *mqtt.Server

	mu      sync.RWMutex
	expired map[string]time.Time // id -> when it expired; kept for a minute
}

func newSessionStore(srv *mqtt.Server) *sessionStore {
	return &sessionStore{Hook: new(badgerstore.Hook), srv: srv, expired: map[string]time.Time{}}
}

// OnSessionEstablished forgets an earlier expiry of a reused client id.
func (h *sessionStore) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	delete(h.expired, cl.ID)
	h.mu.Unlock()
	h.Hook.OnSessionEstablished(cl, pk)
}

func (h *sessionStore) isExpired(id string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, gone := h.expired[id]
	return gone
}

// OnQosPublish stores a queued message unless its session has expired.
func (h *sessionStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if h.isExpired(cl.ID) {
		return
	}
	h.Hook.OnQosPublish(cl, pk, sent, resends)
	if h.isExpired(cl.ID) {
		// Expired while we wrote; its cleanup may have run before our write
		// landed, so remove the record again.
		h.Hook.OnQosDropped(cl, pk)
	}
}

// OnClientExpired removes everything of the session.
func (h *sessionStore) OnClientExpired(cl *mqtt.Client) {
	now := time.Now()
	h.mu.Lock()
	for id, at := range h.expired {
		if now.Sub(at) > time.Minute { // any late write has long happened
			delete(h.expired, id)
		}
	}
	h.expired[cl.ID] = now
	h.mu.Unlock()
	// Unsubscribe first, so nothing new is queued while the queue is cleared.
	h.srv.UnsubscribeClient(cl)
	cl.ClearInflights()
	h.Hook.OnClientExpired(cl)
}
