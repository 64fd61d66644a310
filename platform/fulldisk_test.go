package platform_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
	"github.com/mqim/mqim/kvstore"
)

// mountTmpfs mounts a tmpfs of size bytes and unmounts it at cleanup. It
// skips the test, loudly, only when mounting is impossible (not root).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Logf("!!! SKIPPED: the real full-disk test needs a tmpfs it can mount (root): %v: %s", err, out)
		t.Skip("cannot mount a tmpfs; the full-disk behaviour is covered only by TestLowDiskRefusesWritesAndServesReads")
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillTo writes a filler file until the filesystem of dir has at most
// leave bytes free.
func fillTo(t *testing.T, dir string, leave uint64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "filler"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{1}, 64<<10)
	for {
		free, err := kvstore.StatFree(dir)
		if err != nil {
			t.Fatal(err)
		}
		if free <= leave {
			return
		}
		n := uint64(len(chunk))
		if free-leave < n {
			n = free - leave
		}
		if _, err := f.Write(chunk[:n]); err != nil {
			return // full
		}
	}
}

// On a real, small filesystem: writes are refused (0x97) before the disk
// fills, the server survives, every acknowledged message is kept, and a
// restart on the completely full disk starts and serves reads (issue 12
// item 4c: a full disk killed the process with SIGBUS and it could not
// restart).
func TestFullDiskRefusesWritesKeepsAckedAndRestarts(t *testing.T) {
	disk := mountTmpfs(t, 96<<20)
	data := filepath.Join(disk, "data")
	reserve := func(c *imtestConfig) { c.StorageReserve = 24 << 20; c.Durability = "batch" }
	s := imtest.Start(t, data, reserve)
	tok := s.User("alice")
	s.User("bob")
	raw, _, err := imtest.DialRaw5(s.MQTT, "alice:v5", "alice", imtest.Password)
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	for i := 0; i < 50; i++ {
		if rc, err := raw.Publish("im/u/bob/dm/alice", []byte(fmt.Sprint("before ", i))); err != nil || rc != 0 {
			t.Fatalf("publish with room: %v %#x", err, rc)
		}
		acked++
	}
	fillTo(t, disk, 20<<20) // below the reserve, with room for Badger's own writes
	refused := false
	deadline := time.Now().Add(10 * time.Second)
	for !refused && time.Now().Before(deadline) {
		rc, err := raw.Publish("im/u/bob/dm/alice", []byte("while filling"))
		if err != nil {
			t.Fatalf("server gone while the disk filled: %v", err)
		}
		switch rc {
		case 0:
			acked++
		case 0x97:
			refused = true
		default:
			t.Fatalf("PUBACK %#x on a filling disk", rc)
		}
	}
	if !refused {
		t.Fatal("publishes never refused below the reserve")
	}
	free, _ := kvstore.StatFree(disk)
	t.Logf("%d publishes acknowledged, then 0x97 with %d KiB free", acked, free>>10)
	raw.Close()
	s.Close()

	fillTo(t, disk, 0) // now completely full
	s2 := imtest.Start(t, data, reserve)
	var page struct{ Messages []envelope.Message }
	s2.MustAPI(200, "GET", fmt.Sprintf("/api/v1/history/dm/bob?limit=%d", 200), tok, nil, &page)
	if len(page.Messages) != acked {
		t.Fatalf("after a restart on a full disk: %d messages, %d were acknowledged", len(page.Messages), acked)
	}
	raw2, _, err := imtest.DialRaw5(s2.MQTT, "alice:v5", "alice", imtest.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer raw2.Close()
	if rc, err := raw2.Publish("im/u/bob/dm/alice", []byte("on a full disk")); err != nil || rc != 0x97 {
		t.Fatalf("publish on a full disk after restart: %v %#x, want 0x97", err, rc)
	}
	s2.Close()
}
