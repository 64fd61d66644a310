package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/imtest"
)

func TestSendAndReceiveFiles(t *testing.T) {
	t.Setenv("MQIM_ICE_LOOPBACK", "1") // only loopback is certain to exist on a test machine
	srv := imtest.Start(t, "")
	srv.User("alice")
	srv.User("bob")
	src, dst := t.TempDir(), t.TempDir()
	files := map[string][]byte{"one.bin": make([]byte, 3<<20+5), "two.txt": []byte("hello\n")}
	var paths []string
	for name, data := range files {
		_, _ = rand.Read(data)
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	// A file of that name exists already: the new one must not replace it.
	if err := os.WriteFile(filepath.Join(dst, "two.txt"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	auth := []string{"--http", srv.HTTP, "--password", imtest.Password, "--timeout", "60s"}
	var rOut, rErr imtest.Buffer
	recvDone := make(chan int, 1)
	go func() {
		recvDone <- Main(append([]string{"recv-files", "--user", "bob", "--from", "alice", "--dir", dst, "--count", "2"}, auth...), nil, &rOut, &rErr)
	}()
	imtest.Eventually(t, "recv-files to wait", 10*time.Second, func() bool { return strings.Contains(rErr.String(), "waiting for files") })

	var sOut, sErr imtest.Buffer
	code := Main(append(append([]string{"send-file", "--user", "alice", "--to", "bob"}, auth...), paths...), nil, &sOut, &sErr)
	if code != exitOK {
		t.Fatalf("send-file exit %d\nstdout: %s\nstderr: %s\nrecv stderr: %s", code, sOut.String(), sErr.String(), rErr.String())
	}
	select {
	case code := <-recvDone:
		if code != exitOK {
			t.Fatalf("recv-files exit %d\n%s", code, rErr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("recv-files did not exit\n%s", rErr.String())
	}
	for name, data := range files {
		got := name
		if name == "two.txt" {
			got = "two (1).txt"
		}
		b, err := os.ReadFile(filepath.Join(dst, got))
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("%s: %v (len %d, want %d)", got, err, len(b), len(data))
		}
		sum := sha256.Sum256(data)
		if !strings.Contains(sOut.String(), hex.EncodeToString(sum[:])) || !strings.Contains(rOut.String(), hex.EncodeToString(sum[:])) {
			t.Fatalf("%s's SHA-256 not reported:\nsend: %s\nrecv: %s", name, sOut.String(), rOut.String())
		}
	}
	if !strings.Contains(sErr.String(), "one.bin: sending 100%") || !strings.Contains(rErr.String(), "one.bin: receiving 100%") {
		t.Fatalf("progress did not reach 100%%:\nsend: %s\nrecv: %s", sErr.String(), rErr.String())
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "two.txt")); string(b) != "old" {
		t.Fatal("an existing file was replaced")
	}
	entries, _ := os.ReadDir(dst)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".part") {
			t.Fatalf("partial file left behind: %s", e.Name())
		}
	}

	// Each transfer is recorded in the DM as a message of type file.
	var page struct {
		Messages []struct {
			From, Type, Body string
			Meta             FileMeta
		}
	}
	srv.MustAPI(200, "GET", "/api/v1/history/dm/alice", srv.Login("bob"), nil, &page)
	if len(page.Messages) != 2 {
		t.Fatalf("history: %+v", page.Messages)
	}
	for _, m := range page.Messages {
		data := files[m.Body]
		sum := sha256.Sum256(data)
		if m.From != "alice" || m.Type != "file" || m.Meta.Name != m.Body || m.Meta.Size != uint64(len(data)) || m.Meta.SHA256 != hex.EncodeToString(sum[:]) || m.Meta.MIME == "" {
			b, _ := json.Marshal(m)
			t.Fatalf("file message: %s", b)
		}
	}
}

func TestSendFileExitCodes(t *testing.T) {
	srv := imtest.Start(t, "")
	srv.User("alice")
	srv.User("carol") // offline
	f := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	auth := []string{"--http", srv.HTTP, "--user", "alice", "--password", imtest.Password}
	for _, c := range []struct {
		name string
		args []string
		want int
	}{
		{"offline peer", append(append([]string{"send-file", "--to", "carol"}, auth...), f), exitNoPeer},
		{"no files", append([]string{"send-file", "--to", "carol"}, auth...), exitUsage},
		{"missing file", append(append([]string{"send-file", "--to", "carol"}, auth...), f+".nope"), exitUsage},
		{"bad password", []string{"send-file", "--http", srv.HTTP, "--user", "alice", "--password", "wrong password", "--to", "carol", f}, exitFailed},
		{"recv bad flag", []string{"recv-files", "--bogus"}, exitUsage},
	} {
		var out, errb imtest.Buffer
		if got := Main(c.args, nil, &out, &errb); got != c.want {
			t.Errorf("%s: exit %d, want %d\n%s", c.name, got, c.want, errb.String())
		}
	}
}
