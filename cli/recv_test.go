package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mqim/mqim/filexfer"
	"github.com/mqim/mqim/internal/imtest"
	"github.com/mqim/mqim/p2p"
)

func TestRecvFilesUsage(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"neither --from nor --accept-anyone", nil, "--accept-anyone"},
		{"both", []string{"--from", "alice", "--accept-anyone"}, "exclude each other"},
		{"bad user", []string{"--from", "alice,no/slash"}, "not a user id"},
		{"bad size", []string{"--from", "alice", "--max-size", "lots"}, "size"},
		{"negative limit", []string{"--from", "alice", "--max-offers", "-1"}, "usage"},
	} {
		var out, errb imtest.Buffer
		args := append([]string{"recv-files", "--user", "bob", "--password", "x", "--http", "http://127.0.0.1:1"}, c.args...)
		if got := Main(args, nil, &out, &errb); got != exitUsage || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%s: exit %d, want %d, stderr %q should mention %q", c.name, got, exitUsage, errb.String(), c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "123": 123, "100K": 100 << 10, "100M": 100 << 20, "2G": 2 << 30, "4GiB": 4 << 30, "1t": 1 << 40, "512KB": 512 << 10,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1", "1.5G", "1P", "10000000T"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"a.txt": "a.txt", "../../etc/passwd": "passwd", `..\..\x.exe`: "x.exe", ".bashrc": "_bashrc",
		"..": "file", "": "file", "a\nb": "a_b", "/": "file", "a\u202eexe.txt": "a_exe.txt", "a\u0085b": "a_b",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
	// Names past NAME_MAX are shortened on a rune boundary, keeping a short extension.
	for _, in := range []string{strings.Repeat("a", 300) + ".pdf", strings.Repeat("é", 152), strings.Repeat("x", 250) + "." + strings.Repeat("y", 50)} {
		got := safeName(in)
		if len(got) > maxNameBytes || !utf8.ValidString(got) || strings.HasSuffix(in, ".pdf") != strings.HasSuffix(got, ".pdf") {
			t.Errorf("safeName(%d bytes) = %q (%d bytes)", len(in), got, len(got))
		}
	}
}

func TestQuoteName(t *testing.T) {
	for in, want := range map[string]string{
		"a.txt": "a.txt", "résumé.pdf": "résumé.pdf", "a b": `"a b"`, "a\nreceived x": `"a\nreceived x"`,
		"\x1b[31mred": `"\x1b[31mred"`, `a"b`: `"a\"b"`, `a\b`: `"a\\b"`, "": `""`, "a\u202eb": `"a\u202eb"`,
	} {
		if got := quoteName(in); got != want {
			t.Errorf("quoteName(%q) = %s, want %s", in, got, want)
		}
	}
}

// recvRun is recv-files running in-process.
type recvRun struct {
	out, err imtest.Buffer
	done     chan int
	dir      string
}

func startRecv(t *testing.T, srv *imtest.Server, args ...string) *recvRun {
	t.Helper()
	t.Setenv("MQIM_ICE_LOOPBACK", "1")
	r := &recvRun{done: make(chan int, 1), dir: t.TempDir()}
	args = append([]string{"recv-files", "--http", srv.HTTP, "--user", "bob", "--password", imtest.Password, "--dir", r.dir, "--timeout", "60s"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.done <- recvFilesContext(ctx, args[1:], &r.out, &r.err) }()
	imtest.Eventually(t, "recv-files to wait", 10*time.Second, func() bool { return strings.Contains(r.err.String(), "waiting for files") })
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Errorf("recv-files did not stop\n%s", r.err.String())
		}
	})
	return r
}

// files lists dir, with ".part" files.
func (r *recvRun) files() []string {
	entries, _ := os.ReadDir(r.dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func (r *recvRun) partials() int {
	n := 0
	for _, name := range r.files() {
		if strings.HasSuffix(name, ".part") {
			n++
		}
	}
	return n
}

// testSender is a sending peer in-process, with its results by file id.
type testSender struct {
	ep      *endpoint
	s       *p2p.Session
	mu      sync.Mutex
	results map[string]filexfer.Result
}

func startSender(t *testing.T, srv *imtest.Server, user string) *testSender {
	t.Helper()
	ts := &testSender{results: map[string]filexfer.Result{}}
	f := &xferFlags{http: srv.HTTP, user: user, password: imtest.Password, device: "test", loopback: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ep, err := f.open(ctx, p2p.Config{
		Accept: func(string) bool { return false },
		Transfer: func(*p2p.Session) filexfer.Config {
			return filexfer.Config{OnDone: func(r filexfer.Result) {
				ts.mu.Lock()
				ts.results[r.File.ID] = r
				ts.mu.Unlock()
			}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.ep = ep
	t.Cleanup(ep.close)
	ts.s = ts.dial(t)
	return ts
}

// dial opens another session to bob.
func (ts *testSender) dial(t *testing.T) *p2p.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := ts.ep.peer.Dial(ctx, "bob")
	if err != nil {
		t.Fatalf("dial bob: %v", err)
	}
	return s
}

func (ts *testSender) send(t *testing.T, name string, src io.ReaderAt, size int64) filexfer.FileInfo {
	t.Helper()
	fi, err := ts.s.Engine().SendFile(name, "application/octet-stream", src, size)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// wait returns the result of file id once it has ended.
func (ts *testSender) wait(t *testing.T, id string) filexfer.Result {
	t.Helper()
	var r filexfer.Result
	imtest.Eventually(t, "the sender's result", 30*time.Second, func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		var ok bool
		r, ok = ts.results[id]
		return ok
	})
	return r
}

// gatedReader serves the hashing pass and the first n chunk reads, then
// blocks until the gate is closed: a sender that stopped mid-transfer.
type gatedReader struct {
	data  []byte
	n     int
	mu    sync.Mutex
	reads int
	gate  chan struct{}
}

func newGatedReader(t *testing.T, size, n int) *gatedReader {
	g := &gatedReader{data: bytes.Repeat([]byte("x"), size), n: n, gate: make(chan struct{})}
	t.Cleanup(func() { close(g.gate) }) // before the sender's Close (cleanups run last first)
	return g
}

func (g *gatedReader) ReadAt(p []byte, off int64) (int, error) {
	// The hashing pass, which runs beside the chunk reads, reads more than a
	// chunk at a time (and these files are whole chunks long).
	if len(p) > filexfer.DefaultChunkSize {
		return bytes.NewReader(g.data).ReadAt(p, off)
	}
	g.mu.Lock()
	g.reads++
	blocked := g.reads > g.n
	g.mu.Unlock()
	if blocked {
		<-g.gate
	}
	return bytes.NewReader(g.data).ReadAt(p, off)
}

// Only --from peers get a session; others are refused.
func TestRecvFilesOnlyFrom(t *testing.T) {
	srv := imtest.Start(t, "")
	srv.User("alice")
	srv.User("bob")
	srv.User("mallory")
	startRecv(t, srv, "--from", "carol,alice")
	f := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb imtest.Buffer
	args := []string{"send-file", "--http", srv.HTTP, "--user", "mallory", "--password", imtest.Password, "--to", "bob", "--loopback", "--timeout", "30s", f}
	if code := Main(args, nil, &out, &errb); code != exitDeclined {
		t.Fatalf("mallory's send-file: exit %d, want %d\n%s", code, exitDeclined, errb.String())
	}
}

// A file over --max-size is refused and the sender is told why; nothing
// is written, and it does not count towards --count.
func TestRecvFilesMaxSize(t *testing.T) {
	srv := imtest.Start(t, "")
	srv.User("alice")
	srv.User("bob")
	r := startRecv(t, srv, "--from", "alice", "--max-size", "1K", "--count", "1")
	ts := startSender(t, srv, "alice")
	huge := ts.sendDeclared(t, "huge.bin", 1<<40) // declared 1 TiB
	if res := ts.wait(t, huge.ID); !errors.Is(res.Err, filexfer.ErrTooLarge) || !res.Remote {
		t.Fatalf("1 TiB offer: %v (remote %v), want ErrTooLarge from the peer", res.Err, res.Remote)
	}
	over := ts.sendDeclared(t, "over.bin", 1<<10+1)
	if res := ts.wait(t, over.ID); !errors.Is(res.Err, filexfer.ErrTooLarge) || !res.Remote {
		t.Fatalf("1 KiB + 1 offer: %v (remote %v), want ErrTooLarge from the peer", res.Err, res.Remote)
	}
	if e := r.err.String(); !strings.Contains(e, "refused huge.bin") || !strings.Contains(e, "refused over.bin (1.0 KB) from alice: larger than --max-size") {
		t.Fatalf("stderr: %s", e)
	}
	small := ts.send(t, "small.bin", bytes.NewReader([]byte("hello")), 5)
	if res := ts.wait(t, small.ID); res.Err != nil {
		t.Fatalf("small file: %v", res.Err)
	}
	select {
	case code := <-r.done:
		r.done <- code
		if code != exitOK {
			t.Fatalf("recv-files exit %d\n%s", code, r.err.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("recv-files did not exit after its one file")
	}
	if names := r.files(); len(names) != 1 || names[0] != "small.bin" {
		t.Fatalf("dir holds %q", names)
	}
}

// sendDeclared offers a file of size bytes whose data is never read
// (the receiver is expected to refuse it).
func (ts *testSender) sendDeclared(t *testing.T, name string, size int64) filexfer.FileInfo {
	t.Helper()
	return ts.send(t, name, zeroReader{}, size)
}

// zeroReader reads zeros at any offset: a declared 1 TB file that costs
// nothing to hold (the sender hashes it in the background only until the
// receiver's refusal ends it).
type zeroReader struct{}

func (zeroReader) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

// Files received at once are bounded per peer and in total; beyond, the
// sender is told the receiver is busy, and once a slot frees a new offer
// is taken.
func TestRecvFilesOffersBounded(t *testing.T) {
	for _, c := range []struct {
		name, flag, other string
	}{
		{"per peer", "--max-offers-per-peer", "alice"}, // another session of the same peer
		{"in total", "--max-offers", "carol"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := imtest.Start(t, "")
			for _, u := range []string{"alice", "bob", "carol"} {
				srv.User(u)
			}
			r := startRecv(t, srv, "--from", "alice,carol", c.flag, "2")
			ts := startSender(t, srv, "alice")
			var held []filexfer.FileInfo
			for i := range 2 {
				held = append(held, ts.send(t, fmt.Sprintf("held%d", i), newGatedReader(t, 1<<20, 0), 1<<20))
			}
			heldSession := ts.s
			imtest.Eventually(t, "two partial files", 10*time.Second, func() bool { return r.partials() == 2 })
			// A new session, so its sends are not held up behind the held
			// files' reads: alice's second one, or carol's.
			other := ts
			if c.other == "alice" {
				ts.s = ts.dial(t)
			} else {
				other = startSender(t, srv, c.other)
			}
			third := other.send(t, "third", bytes.NewReader([]byte("x")), 1)
			if res := other.wait(t, third.ID); !errors.Is(res.Err, filexfer.ErrBusy) || !res.Remote {
				t.Fatalf("third offer: %v (remote %v), want ErrBusy from the peer", res.Err, res.Remote)
			}
			if !strings.Contains(r.err.String(), c.flag) {
				t.Fatalf("stderr does not name %s: %s", c.flag, r.err.String())
			}
			if err := heldSession.Engine().Cancel(held[0].ID); err != nil {
				t.Fatal(err)
			}
			imtest.Eventually(t, "the cancelled file's partial removed", 10*time.Second, func() bool { return r.partials() == 1 })
			fourth := other.send(t, "fourth", bytes.NewReader([]byte("y")), 1)
			if res := other.wait(t, fourth.ID); res.Err != nil {
				t.Fatalf("fourth offer after a slot freed: %v", res.Err)
			}
		})
	}
}

// A sender that stops mid-transfer, connected or gone, leaves nothing
// behind: after --idle-timeout the partial file is removed.
func TestRecvFilesSenderStops(t *testing.T) {
	for _, vanish := range []bool{false, true} {
		t.Run(fmt.Sprintf("vanish=%v", vanish), func(t *testing.T) {
			srv := imtest.Start(t, "")
			srv.User("alice")
			srv.User("bob")
			r := startRecv(t, srv, "--from", "alice", "--idle-timeout", "1s")
			ts := startSender(t, srv, "alice")
			fi := ts.send(t, "stuck.bin", newGatedReader(t, 4<<20, 20), 4<<20)
			imtest.Eventually(t, "a partial file", 10*time.Second, func() bool { return r.partials() == 1 })
			if vanish {
				ts.s.CloseConnection() // no SHUTDOWN, no reconnect: the sender's process died
			}
			imtest.Eventually(t, "the partial file removed", 30*time.Second, func() bool { return r.partials() == 0 })
			if !strings.Contains(r.err.String(), "stuck.bin: failed") {
				t.Fatalf("stderr: %s", r.err.String())
			}
			if !vanish {
				if res := ts.wait(t, fi.ID); !errors.Is(res.Err, filexfer.ErrCancelled) || !res.Remote {
					t.Fatalf("sender's result: %v (remote %v), want cancelled by the peer", res.Err, res.Remote)
				}
			}
			if names := r.files(); len(names) != 0 {
				t.Fatalf("dir holds %q", names)
			}
		})
	}
}

// A newline in a name cannot forge a second "received" line, nor an
// escape sequence reach the terminal; an over-long name is shortened
// before the file is accepted, and the sender's complete means the file is
// there under the printed path.
func TestRecvFilesHostileNames(t *testing.T) {
	srv := imtest.Start(t, "")
	srv.User("alice")
	srv.User("bob")
	r := startRecv(t, srv, "--from", "alice")
	ts := startSender(t, srv, "alice")
	for _, name := range []string{
		"a\nreceived evil.txt 1 00 /etc/passwd",
		"\x1b]0;pwned\x07\x1b[2Jx.txt",
		strings.Repeat("n", 300) + ".txt", // 304 bytes: over NAME_MAX
	} {
		fi := ts.send(t, name, bytes.NewReader([]byte(name)), int64(len(name)))
		if res := ts.wait(t, fi.ID); res.Err != nil {
			t.Fatalf("%q: %v", name, res.Err)
		}
	}
	out := r.out.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 || strings.ContainsRune(out, 0x1b) || strings.ContainsRune(r.err.String(), 0x1b) {
		t.Fatalf("stdout:\n%s\nstderr:\n%q", out, r.err.String())
	}
	for _, l := range lines {
		// received NAME SIZE SHA256 PATH, NAME and PATH quoted when needed
		path := l[strings.LastIndexByte(l, ' ')+1:]
		if strings.HasPrefix(path, `"`) {
			var err error
			if path, err = strconv.Unquote(path); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
}

// When the file cannot be saved under its name, the sender is not told it
// arrived, and nothing is left behind.
func TestRecvFilesCompleteOnlyWhenSaved(t *testing.T) {
	srv := imtest.Start(t, "")
	srv.User("alice")
	srv.User("bob")
	r := startRecv(t, srv, "--from", "alice")
	// Every name placeFile would try is taken.
	for i := range 1000 {
		name := "f"
		if i > 0 {
			name = fmt.Sprintf("f (%d)", i)
		}
		if err := os.WriteFile(filepath.Join(r.dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ts := startSender(t, srv, "alice")
	fi := ts.send(t, "f", bytes.NewReader([]byte("data")), 4)
	if res := ts.wait(t, fi.ID); !errors.Is(res.Err, filexfer.ErrIO) || !res.Remote {
		t.Fatalf("sender's result: %v (remote %v), want an I/O error from the peer", res.Err, res.Remote)
	}
	imtest.Eventually(t, "no partial file", 10*time.Second, func() bool { return r.partials() == 0 })
	if strings.Contains(r.out.String(), "received") {
		t.Fatalf("stdout: %s", r.out.String())
	}
}
