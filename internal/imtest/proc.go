package imtest

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// Binary builds the mqim binary once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mqim-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mqim")
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = root
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build mqim: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Proc is a `mqim serve` subprocess.
type Proc struct {
	Cmd  *exec.Cmd
	HTTP string // http://host:port
	MQTT string // tcp://host:port
}

// StartProc runs `mqim serve` with args and waits for its address lines.
func StartProc(t testing.TB, args ...string) *Proc {
	t.Helper()
	return StartProcs(t, args)[0]
}

// StartProcs starts one `mqim serve` per argument list, all at once (the
// nodes of a cluster wait for each other before they listen), then waits
// for each one's address lines.
func StartProcs(t testing.TB, args ...[]string) []*Proc {
	t.Helper()
	type started struct {
		p     *Proc
		lines chan string
	}
	var all []started
	for _, a := range args {
		cmd := exec.Command(Binary(t), append([]string{"serve"}, a...)...)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = io.Discard
		if os.Getenv("MQIM_TEST_LOG") != "" {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		all = append(all, started{&Proc{Cmd: cmd}, lines})
	}
	deadline := time.After(60 * time.Second)
	var out []*Proc
	for _, s := range all {
		p := s.p
		for p.HTTP == "" || p.MQTT == "" {
			select {
			case l, ok := <-s.lines:
				if !ok {
					t.Fatal("mqim serve exited before listening")
				}
				if a, ok := strings.CutPrefix(l, "http listening on "); ok {
					p.HTTP = "http://" + a
				}
				if a, ok := strings.CutPrefix(l, "mqtt listening on "); ok {
					p.MQTT = "tcp://" + a
				}
			case <-deadline:
				t.Fatal("mqim serve did not print its addresses")
			}
		}
		go func() {
			for range s.lines {
			}
		}()
		out = append(out, p)
	}
	return out
}
