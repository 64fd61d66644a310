package platform_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/mochi-mqtt/server/v2/hooks/storage"

	"github.com/mqim/mqim/internal/imtest"
)

// TestExpiredSessionsLeaveNothingBehind: a churn of persistent sessions that
// each get queued messages and then expire leaves no subscription, queued
// message or client record in the session store, nor in the topic tree.
func TestExpiredSessionsLeaveNothingBehind(t *testing.T) {
	dir := t.TempDir()
	s := imtest.Start(t, dir, func(c *imtestConfig) { c.SessionExpiry = 2 * time.Second })
	s.User("alice")
	s.User("bob")
	alice := s.MustConnect("alice", imtest.ClientOpts{Clean: true, NoSub: true})
	baseSubs := s.Broker.Server.Info.Subscriptions
	const devices = 60
	for i := 0; i < devices; i++ {
		c, err := s.Connect("bob", imtest.ClientOpts{Device: fmt.Sprintf("d%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		c.Disconnect(0)
		alice.Publish("im/u/bob/dm/alice", 1, fmt.Sprintf("queued for %d devices", i+1))
	}
	imtest.Eventually(t, "sessions expire", 20*time.Second, func() bool {
		for _, cl := range s.Broker.Server.Clients.GetAll() {
			if strings.HasPrefix(cl.ID, "bob:") {
				return false
			}
		}
		return s.Broker.Server.Info.Subscriptions == baseSubs
	})
	s.Close()

	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "sessions")).WithLogger(nil).WithReadOnly(false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	left := map[string]int{}
	db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			for _, p := range []string{storage.ClientKey, storage.SubscriptionKey, storage.InflightKey} {
				if strings.HasPrefix(k, p+"_bob:") {
					left[p]++
				}
			}
		}
		return nil
	})
	if len(left) != 0 {
		t.Fatalf("expired sessions left records behind: %v", left)
	}
}
