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
	cmd := exec.Command(Binary(t), append([]string{"serve"}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if os.Getenv("MQIM_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	for p.HTTP == "" || p.MQTT == "" {
		select {
		case l, ok := <-lines:
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
			cmd.Process.Kill()
			t.Fatal("mqim serve did not print its addresses")
		}
	}
	go func() {
		for range lines {
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return p
}
