package cli_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqim/mqim/cli"
	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/internal/imtest"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// cliCase is one run of the command line and what it must answer.
type cliCase struct {
	name  string
	stdin string
	args  []string
	code  int
	msg   string // in stdout or stderr
}

func runCases(t *testing.T, cases []cliCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := run(t, c.stdin, c.args...)
			if code != c.code || !strings.Contains(out+errs, c.msg) {
				t.Fatalf("exit %d, out %q, err %q; want %d containing %q", code, out, errs, c.code, c.msg)
			}
		})
	}
}

func TestUserAndGroupCommands(t *testing.T) {
	dir := t.TempDir()
	if code, out, _ := run(t, "rabbit-hole-42\n", "user", "add", "--data", dir, "alice"); code != 0 || !strings.Contains(out, "created user alice") {
		t.Fatalf("user add: %d %q", code, out)
	}
	run(t, "builder-yes-we-can\n", "user", "add", "--data", dir, "bob")
	runCases(t, []cliCase{
		{"duplicate user", "x-password\n", []string{"user", "add", "--data", dir, "alice"}, 1, "user exists"},
		{"bad user id", "x-password\n", []string{"user", "add", "--data", dir, "Bad Name"}, 1, "invalid user id"},
		{"short password", "short\n", []string{"user", "add", "--data", dir, "carol"}, 1, "8-256 bytes"},
		{"group with unknown member", "", []string{"group", "create", "--data", dir, "--owner", "alice", "g1", "zed"}, 1, `no such user "zed"`},
		{"group create", "", []string{"group", "create", "--data", dir, "--owner", "alice", "--name", "Team", "team", "bob"}, 0, "created group team with members alice,bob"},
		{"group id taken", "", []string{"group", "create", "--data", dir, "--owner", "bob", "team"}, 1, "taken"},
		{"unknown command", "", []string{"frobnicate"}, 2, "unknown command"},
		{"version", "", []string{"version"}, 0, "mqim " + cli.Version},
	})
	// The server sees what the CLI wrote.
	s := imtest.Start(t, dir)
	var g struct{ Members []string }
	s.MustAPI(200, "GET", "/api/v1/groups/team", loginAs(t, s, "bob", "builder-yes-we-can"), nil, &g)
	if strings.Join(g.Members, ",") != "alice,bob" {
		t.Fatalf("members %v", g.Members)
	}
}

func loginAs(t *testing.T, s *imtest.Server, user, pw string) string {
	var out struct{ Token string }
	s.MustAPI(200, "POST", "/api/v1/login", "", map[string]string{"user": user, "password": pw}, &out)
	return out.Token
}

func TestConfigPrecedence(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(f, []byte("http: 127.0.0.1:9000\nmqtt: 127.0.0.1:9001\nbody_limit: 100\n"), 0o600)
	t.Setenv("MQIM_MQTT", "127.0.0.1:9002")
	c, err := config.Load([]string{"--config", f, "--data", "/tmp/x"})
	if err != nil || c.HTTP != "127.0.0.1:9000" || c.MQTT != "127.0.0.1:9002" || c.Data != "/tmp/x" || c.BodyLimit != 100 {
		t.Fatalf("%+v %v", c, err)
	}
	os.WriteFile(f, []byte("htp: typo\n"), 0o600)
	if _, err := config.Load([]string{"--config", f}); err == nil {
		t.Fatal("unknown YAML key accepted")
	}
	t.Setenv("MQIM_DURABILITY", "sometimes")
	if _, err := config.Load(nil); err == nil {
		t.Fatal("bad durability accepted")
	}
}

// TestServeSubprocessGracefulShutdown runs the real binary: it prints its
// addresses, serves /healthz and /metrics, and on SIGTERM exits 0 after
// closing the stores cleanly (a restart finds the data).
func TestServeSubprocessGracefulShutdown(t *testing.T) {
	bin := imtest.Binary(t)
	dir := t.TempDir()
	start := func() (*exec.Cmd, string) {
		cmd := exec.Command(bin, "serve", "--data", dir, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0")
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		httpAddr := ""
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "http listening on "); ok {
				httpAddr = a
			}
			if strings.HasPrefix(sc.Text(), "mqtt listening on ") {
				break
			}
		}
		go io.Copy(io.Discard, stdout)
		if httpAddr == "" {
			cmd.Process.Kill()
			t.Fatal("serve did not print its addresses")
		}
		return cmd, "http://" + httpAddr
	}
	cmd, base := start()
	resp, err := http.Post(base+"/api/v1/register", "application/json", strings.NewReader(`{"user":"alice","password":"rabbit-hole-42"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("register: %v %v", err, resp)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, err, resp)
		}
		body, _ := io.ReadAll(resp.Body)
		if path == "/metrics" && !bytes.Contains(body, []byte("mqim_http_requests_total")) {
			t.Fatalf("metrics lack mqim_ series:\n%.500s", body)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("serve did not exit after SIGTERM")
	}
	cmd, base = start()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	resp, err = http.Post(base+"/api/v1/login", "application/json", strings.NewReader(`{"user":"alice","password":"rabbit-hole-42"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("login after restart: %v %v", err, resp)
	}
}
