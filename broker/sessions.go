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
// then calls OnQosPublish), so expired ids are remembered and their late
// writes skipped, under one lock with the expiry itself.
type sessionStore struct {
	*badgerstore.Hook
	srv *mqtt.Server

	mu      sync.Mutex
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

// OnQosPublish stores a queued message unless its session has expired.
func (h *sessionStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, gone := h.expired[cl.ID]; gone {
		return
	}
	h.Hook.OnQosPublish(cl, pk, sent, resends)
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
