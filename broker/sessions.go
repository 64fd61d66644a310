package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	badgerstore "github.com/mochi-mqtt/server/v2/hooks/storage/badger"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"

	"github.com/mqim/mqim/hooks"
	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/topic"
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
//
// While the disk is below its reserve (space), record writes are skipped:
// mochi's hook writes on the publisher's goroutine through Badger's mmap'd
// log, where a full disk is a SIGBUS, not an error. The sessions then live
// on in memory only; retained publishes from clients are refused before
// that point (hooks.IM), so nothing acknowledged depends on a skipped write.
type sessionStore struct {
	*badgerstore.Hook
	srv   *mqtt.Server
	space *kvstore.Space
	// retained keeps clients' retained messages outside im/ (retained.go);
	// im answers a publish it refuses.
	retained *badger.DB
	im       *hooks.IM

	mu      sync.RWMutex
	expired map[string]time.Time // id -> when it expired; kept for a minute

	// stored are the inflight records written (outbound QoS>0 publishes):
	// only those are deleted on completion. mochi calls OnQosComplete for
	// every inbound QoS 1 publish too (its PUBACK passes through the
	// inflight map), which would cost a Badger transaction each for a key
	// that was never written.
	storedMu sync.Mutex
	stored   map[string]struct{}
}

func newSessionStore(srv *mqtt.Server, space *kvstore.Space, retained *badger.DB, im *hooks.IM) *sessionStore {
	return &sessionStore{Hook: new(badgerstore.Hook), srv: srv, space: space, retained: retained, im: im, expired: map[string]time.Time{}, stored: map[string]struct{}{}}
}

// recordKey is mochi's storage key of cl's inflight packet pk.
func recordKey(cl *mqtt.Client, pk packets.Packet) string {
	return storage.InflightKey + "_" + cl.ID + ":" + pk.FormatID()
}

// forget reports whether cl's record for pk was written, and forgets it.
func (h *sessionStore) forget(cl *mqtt.Client, pk packets.Packet) bool {
	k := recordKey(cl, pk)
	h.storedMu.Lock()
	_, ok := h.stored[k]
	delete(h.stored, k)
	h.storedMu.Unlock()
	return ok
}

// OnQosComplete deletes mochi's stored inflight record of a completed
// packet, if one was written (chat packets never are).
func (h *sessionStore) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if !h.forget(cl, pk) { // chat packets were acknowledged in OnPacketRead
		return
	}
	h.Hook.OnQosComplete(cl, pk)
}

// OnQosDropped removes the record of a dropped inflight message, if any.
func (h *sessionStore) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if h.forget(cl, pk) {
		h.Hook.OnQosDropped(cl, pk)
	}
}

// StoredInflightMessages leaves out chat copies queued by versions that
// kept them in mochi's sessions: their devices' cursors deliver them now,
// in order (mochi would resend these in map order).
func (h *sessionStore) StoredInflightMessages() ([]storage.Message, error) {
	all, err := h.Hook.StoredInflightMessages()
	out := all[:0]
	h.storedMu.Lock()
	defer h.storedMu.Unlock()
	for _, m := range all {
		if t, perr := topic.Parse(m.TopicName); perr == nil && (t.Kind == topic.DM || t.Kind == topic.GroupInbox) {
			continue
		}
		h.stored[m.ID] = struct{}{}
		out = append(out, m)
	}
	return out, err
}

// full reports whether writes are to be skipped.
func (h *sessionStore) full() bool { return h.space.Err() != nil }

// OnSysInfoTick stores the broker's statistics (every second) unless full.
func (h *sessionStore) OnSysInfoTick(sys *system.Info) {
	if !h.full() {
		h.Hook.OnSysInfoTick(sys)
	}
}

// OnSubscribed stores subscriptions unless full.
func (h *sessionStore) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !h.full() {
		h.Hook.OnSubscribed(cl, pk, codes)
	}
}

// OnWillSent updates the client record unless full.
func (h *sessionStore) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if !h.full() {
		h.Hook.OnWillSent(cl, pk)
	}
}

// OnDisconnect updates or removes the client record unless full.
func (h *sessionStore) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if !h.full() {
		h.Hook.OnDisconnect(cl, err, expire)
	}
}

// epochKey records, in the session store, the history epoch its sessions
// belong to.
var epochKey = []byte("mqim/epoch")

// staleOnNewEpoch are the key prefixes (mochi's storage keys) of what belongs
// to accounts: client records, subscriptions, queued messages and retained
// messages under im/. Retained messages of operator namespaces stay.
var staleOnNewEpoch = [][]byte{
	[]byte(storage.ClientKey + "_"), []byte(storage.SubscriptionKey + "_"), []byte(storage.InflightKey + "_"),
	[]byte(storage.RetainedKey + "_" + topic.Prefix),
}

// sessionStoreOptions prepares the session store in dir for a history of the
// given epoch and returns the options mochi's hook opens it with.
//
// A session store from another epoch (the history was replaced, or started
// afresh) holds queues and subscriptions of accounts that no longer exist: a
// newcomer registering a freed name would inherit the old owner's queued
// private messages. Those are dropped, with a log line, before mochi loads
// them.
//
// readOnly opens it without writing (the disk is full): a store of another
// epoch is then refused, since its stale sessions cannot be dropped.
func sessionStoreOptions(dir, epoch string, readOnly bool, log *slog.Logger) (*badgerstore.Options, error) {
	if readOnly {
		if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("broker: session store %s does not exist and the disk is full: free space and restart", dir)
		}
	}
	db, err := kvstore.Open(dir, kvstore.Options{SyncWrites: true, ReadOnly: readOnly}, log)
	if err != nil {
		return nil, fmt.Errorf("broker: session store: %w", err)
	}
	changed := false
	err = db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(epochKey)
		var had []byte
		if err == nil {
			had, err = it.ValueCopy(nil)
		}
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if string(had) == epoch {
			return nil
		}
		if readOnly {
			return fmt.Errorf("it is from history epoch %q, not %q, and the disk is full: free space and restart", had, epoch)
		}
		changed = true
		n := countKeys(txn, staleOnNewEpoch)
		if n > 0 {
			log.Warn("session store is from another history epoch: dropping its sessions, subscriptions and queued messages",
				"path", dir, "store_epoch", string(had), "history_epoch", epoch, "records", n)
		}
		return txn.Set(epochKey, []byte(epoch))
	})
	if err == nil && changed {
		err = db.DropPrefix(staleOnNewEpoch...)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("broker: session store %s: %w", dir, err)
	}
	opts := kvstore.BadgerOptions(dir, kvstore.Options{ReadOnly: readOnly}, log)
	return &badgerstore.Options{Path: dir, Options: &opts}, nil
}

func countKeys(txn *badger.Txn, prefixes [][]byte) int {
	n := 0
	for _, p := range prefixes {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		it.Close()
	}
	return n
}

// OnSessionEstablished forgets an earlier expiry of a reused client id.
func (h *sessionStore) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	delete(h.expired, cl.ID)
	h.mu.Unlock()
	if !h.full() {
		h.Hook.OnSessionEstablished(cl, pk)
	}
}

func (h *sessionStore) isExpired(id string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, gone := h.expired[id]
	return gone
}

// OnQosPublish stores a queued message unless its session has expired.
// The PUBACK of an inbound QoS 1 publish is not stored: mochi completes it
// in the same call, before anything could need it.
func (h *sessionStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type == packets.Puback || h.isExpired(cl.ID) || h.full() {
		return
	}
	h.storedMu.Lock()
	h.stored[recordKey(cl, pk)] = struct{}{}
	h.storedMu.Unlock()
	h.Hook.OnQosPublish(cl, pk, sent, resends)
	if h.isExpired(cl.ID) {
		// Expired while we wrote; its cleanup may have run before our write
		// landed, so remove the record again.
		h.forget(cl, pk)
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
