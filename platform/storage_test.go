package platform_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
	"github.com/mqim/mqim/platform"
)

// A data dir whose main database lost its MANIFEST is refused at start with
// an error naming the path, and its tables stay (issue 12 item 4a).
func TestStartRefusesADataDirWithoutItsManifest(t *testing.T) {
	dir := t.TempDir()
	s := imtest.Start(t, dir)
	s.User("alice")
	s.Close()
	im := filepath.Join(dir, "im")
	ssts, _ := filepath.Glob(filepath.Join(im, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no table files to protect")
	}
	if err := os.Remove(filepath.Join(im, badger.ManifestFilename)); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Data, cfg.HTTP, cfg.MQTT = dir, "127.0.0.1:0", "127.0.0.1:0"
	p, err := platform.Start(cfg, imtest.Logger())
	if err == nil {
		p.Close(t.Context())
		t.Fatal("started on a data dir without its MANIFEST")
	}
	if !strings.Contains(err.Error(), im) {
		t.Errorf("error does not name %s: %v", im, err)
	}
	if after, _ := filepath.Glob(filepath.Join(im, "*.sst")); len(after) != len(ssts) {
		t.Errorf("tables before %v, after %v", ssts, after)
	}
}

// When the history starts afresh (the operator removed the main database)
// while the session store stays, a newcomer who registers a freed name does
// not inherit the old owner's queued private messages.
func TestNewHistoryEpochDropsStaleSessionQueues(t *testing.T) {
	dir := t.TempDir()
	s1 := imtest.Start(t, dir)
	s1.User("alice")
	s1.User("bob")
	bob := s1.MustConnect("bob", imtest.ClientOpts{})
	bob.Disconnect(100)
	alice := s1.MustConnect("alice", imtest.ClientOpts{})
	alice.Publish("im/u/bob/dm/alice", 1, "for the old bob only")
	alice.Disconnect(100)
	s1.Close()

	for _, p := range []string{filepath.Join(dir, "im"), filepath.Join(dir, "im.id")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	s2 := imtest.Start(t, dir)
	s2.User("bob") // a newcomer under the freed name
	newBob := s2.MustConnect("bob", imtest.ClientOpts{NoSub: true})
	// A marker published after connecting shows the session is live and
	// anything queued would have been resent by now.
	s2.User("carol")
	carol := s2.MustConnect("carol", imtest.ClientOpts{})
	defer carol.Disconnect(0)
	sub := newBob.Subscribe("im/u/bob/#", 1, nil)
	if !sub.WaitTimeout(5*time.Second) || sub.Error() != nil {
		t.Fatal(sub.Error())
	}
	carol.Publish("im/u/bob/dm/carol", 1, "marker")
	imtest.Eventually(t, "marker", 5*time.Second, func() bool { return len(newBob.Envelopes("im/u/bob/dm/carol")) == 1 })
	if got := newBob.Envelopes("im/u/bob/dm/alice"); len(got) != 0 {
		t.Fatalf("the new bob received the old bob's queued DMs: %+v", got)
	}
}

// Below the free-space reserve every write is refused with storage_full
// (MQTT 5 PUBACK 0x97 and the error notice, HTTP 507), retained messages of
// operator namespaces included, while reads go on; with room again, writes
// are accepted (issue 12 item 4c). Free space is injected.
func TestLowDiskRefusesWritesAndServesReads(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 40)
	defer platform.SetFreeSpace(func(string) (uint64, error) { return free.Load(), nil })()
	s := imtest.Start(t, "", func(c *imtestConfig) {
		c.StorageReserve = 64 << 20
		c.Rules = []acl.Rule{{User: "*", Access: "readwrite", Topics: []string{"bots/#"}}}
	})
	tok := s.User("alice")
	s.User("bob")
	watch := s.MustConnect("alice", imtest.ClientOpts{Device: "watch"})
	raw := s.MustDialRaw5("alice:v5", "alice", imtest.Password)
	if rc, err := raw.Publish("im/u/bob/dm/alice", []byte("stored")); err != nil || rc != 0 {
		t.Fatalf("publish with room: %v %#x", err, rc)
	}

	free.Store(1 << 20)
	imtest.Eventually(t, "DM refused with 0x97", 5*time.Second, func() bool {
		rc, err := raw.Publish("im/u/bob/dm/alice", []byte("refused"))
		return err == nil && rc == 0x97
	})
	if rc, err := raw.PublishRetained("bots/thermostat", []byte("21.5")); err != nil || rc != 0x97 {
		t.Fatalf("retained operator publish on a full disk: %v %#x, want 0x97", err, rc)
	}
	imtest.Eventually(t, "storage_full notices", 5*time.Second, func() bool {
		n := 0
		for _, m := range watch.Messages("im/u/alice/error") {
			if strings.Contains(string(m.Payload), `"storage_full"`) {
				n++
			}
		}
		return n >= 2 // the DM and the retained message
	})
	var refusal struct{ Error struct{ Code string } }
	s.MustAPI(507, "POST", "/api/v1/publish", tok, map[string]any{"topic": "im/u/bob/dm/alice", "payload": "x"}, &refusal)
	if refusal.Error.Code != "storage_full" {
		t.Errorf("HTTP publish refusal code %q", refusal.Error.Code)
	}
	s.MustAPI(507, "POST", "/api/v1/register", "", map[string]any{"user": "carol", "password": imtest.Password}, nil)
	s.MustAPI(507, "POST", "/api/v1/groups", tok, map[string]any{"id": "g1", "members": []string{"bob"}}, nil)

	// Reads go on: history holds exactly the message stored before.
	var page struct{ Messages []envelope.Message }
	s.MustAPI(200, "GET", "/api/v1/history/dm/bob", tok, nil, &page)
	if len(page.Messages) != 1 || page.Messages[0].Body != "stored" {
		t.Fatalf("history on a full disk: %+v", page.Messages)
	}

	free.Store(1 << 40)
	imtest.Eventually(t, "writes accepted again", 5*time.Second, func() bool {
		rc, err := raw.Publish("im/u/bob/dm/alice", []byte("again"))
		return err == nil && rc == 0
	})
	if rc, err := raw.PublishRetained("bots/thermostat", []byte("21.5")); err != nil || rc != 0 {
		t.Fatalf("retained publish with room: %v %#x", err, rc)
	}
}

// A client's retained message outside im/ is committed to the platform's
// database (fsync'd under durability batch) before its PUBACK, survives a
// restart, and clearing it clears it for good (issue 12 item 4c: mochi's
// store wrote retained messages without fsync after deciding to ack them).
func TestRetainedOperatorMessagesAreStoredBeforeTheirPuback(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *imtestConfig) {
		c.Durability = "batch"
		c.Rules = []acl.Rule{{User: "*", Access: "readwrite", Topics: []string{"bots/#"}}}
	}
	s := imtest.Start(t, dir, cfg)
	s.User("alice")
	raw, _, err := imtest.DialRaw5(s.MQTT, "alice:v5", "alice", imtest.Password)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []string{"bots/a", "bots/b"} {
		if rc, err := raw.PublishRetained(tp, []byte("on "+tp)); err != nil || rc != 0 {
			t.Fatalf("retained publish: %v %#x", err, rc)
		}
		// Acknowledged, so already committed where the platform keeps it.
		err := s.Platform.DB.View(func(txn *badger.Txn) error {
			_, err := txn.Get([]byte("rt/" + tp))
			return err
		})
		if err != nil {
			t.Fatalf("%s acknowledged but not in the platform's database: %v", tp, err)
		}
	}
	if rc, err := raw.PublishRetained("bots/b", nil); err != nil || rc != 0 { // clear it
		t.Fatalf("clearing publish: %v %#x", err, rc)
	}
	raw.Close()
	s.Close()

	s2 := imtest.Start(t, dir, cfg)
	w := s2.MustConnect("alice", imtest.ClientOpts{Device: "w", Clean: true, NoSub: true})
	if tok := w.Subscribe("bots/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	imtest.Eventually(t, "retained bots/a after restart", 5*time.Second, func() bool { return len(w.Messages("bots/a")) == 1 })
	if got := w.Messages("bots/b"); len(got) != 0 {
		t.Fatalf("a cleared retained message came back: %q", got[0].Payload)
	}
}
