package platform_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/config"
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
