package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kind tells the two servers apart.
type Kind int

const (
	// Platform is `mqim serve`: auth, ACL, stamping, durable history.
	Platform Kind = iota
	// Mosquitto is the baseline: plain pub/sub, no persistence.
	Mosquitto
)

func (k Kind) String() string {
	if k == Platform {
		return "mqim"
	}
	return "mosquitto"
}

// mosquittoBin is where Debian installs the broker.
const mosquittoBin = "/usr/sbin/mosquitto"

// server is one running broker subprocess.
type server struct {
	kind   Kind
	cmd    *exec.Cmd
	exited chan struct{}
	mqtt   string // host:port of MQTT over TCP
	http   string // host:port of the platform's HTTP API and /mqtt (platform only)
	ws     string // host:port of mosquitto's WebSocket listener
	pprof  string // host:port of the platform's pprof endpoints, when MQIM_PPROF is set
	dir    string // platform data dir / mosquitto config dir
	bin    string // platform binary
	cpu    string // CPU list for taskset, "" when not pinning
	// others are the other nodes of a platform cluster (--nodes): they
	// start, stop and count (CPU, RSS) with this one.
	others  []*server
	tokens  map[string]string
	expires map[string]int64 // token expiry, unix ms
	stderrW io.Writer
}

// procStat reads utime+stime of pid.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may contain spaces; fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	// USER_HZ is 100 on every Linux that Go supports.
	return time.Duration(ut+st) * (time.Second / 100)
}

// procRSS reads VmRSS of pid in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// pid is the server's process id; a server without a subprocess runs in
// this process (the in-process profiling benchmark).
func (s *server) pid() int {
	if s.cmd == nil {
		return os.Getpid()
	}
	return s.cmd.Process.Pid
}

// CPU returns the server's CPU time so far (a cluster's: every node's).
func (s *server) CPU() time.Duration {
	d := procCPU(s.pid())
	for _, o := range s.others {
		d += o.CPU()
	}
	return d
}

// RSS returns the server's resident set size in bytes (a cluster's: the sum).
func (s *server) RSS() int64 {
	n := procRSS(s.pid())
	for _, o := range s.others {
		n += o.RSS()
	}
	return n
}

// pinAll pins the server (every node of a cluster) to cpus.
func (s *server) pinAll(cpus string) error {
	for _, sv := range append([]*server{s}, s.others...) {
		if err := pin(sv.pid(), cpus); err != nil {
			return err
		}
	}
	return nil
}

// node is the server device i connects to: node i mod nodes of a cluster.
func (s *server) node(i int) *server {
	if len(s.others) == 0 || s.kind != Platform {
		return s
	}
	if k := i % (len(s.others) + 1); k > 0 {
		return s.others[k-1]
	}
	return s
}

// pin moves every thread of pid to cpus (no-op when cpus is "").
func pin(pid int, cpus string) error {
	if cpus == "" {
		return nil
	}
	out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bench: taskset %d: %v: %s", pid, err, out)
	}
	return nil
}

// pinning returns the CPU lists for servers and generator, or "" when the
// machine has one CPU or no taskset.
func pinning() (srv, gen string) {
	if runtime.NumCPU() < 2 {
		return "", ""
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return "", ""
	}
	return "0", "1-" + strconv.Itoa(runtime.NumCPU()-1)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *server) start() error {
	s.exited = make(chan struct{})
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	return nil
}

// stop ends the server (and a cluster's other nodes): SIGTERM, then
// SIGKILL after a grace period.
func (s *server) stop(grace time.Duration) {
	for _, o := range s.others {
		defer o.stop(grace)
	}
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(grace):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// startPlatform runs `bin serve` on a data dir with ephemeral ports.
// The abuse limits (per-IP connections, connect rate and login throttle,
// per-user publish rate) are off: the generator is one host simulating
// thousands of users (it registers them all), and the backlog workload
// publishes as fast as acknowledgements allow. The KDF bound stays: setup
// runs 2 logins per CPU at once, within its queue.
const platformConfig = `log_level: warn
limits:
  publish_rate: 0
  publish_burst: 0
  conns_per_ip: 0
  connect_rate: 0
  connect_burst: 0
  login_ip_rate: 0
  login_backoff_max: 0s
  login_account_rate: 0
`

// startPlatform runs one node, or a local cluster of nodes (each with
// its own data dir under dir/nN and the log replicated to all of them);
// the server returned is node 1, the HTTP API the benchmark calls.
func startPlatform(bin, dir string, nodes int, stderr io.Writer) (*server, error) {
	if nodes <= 1 {
		s, err := preparePlatform(bin, dir, platformConfig, stderr)
		if err != nil {
			return nil, err
		}
		return s, s.launch()
	}
	routes := make([]string, nodes)
	for i := range routes {
		var err error
		if routes[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	all := make([]*server, nodes)
	for i := range all {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, strconv.Quote(r))
			}
		}
		cfg := platformConfig + fmt.Sprintf("cluster:\n  name: bench\n  node: n%d\n  listen: %q\n  peers: [%s]\n  replicas: %d\n",
			i+1, routes[i], strings.Join(peers, ", "), nodes)
		s, err := preparePlatform(bin, filepath.Join(dir, fmt.Sprintf("n%d", i+1)), cfg, stderr)
		if err != nil {
			return nil, err
		}
		all[i] = s
	}
	all[0].others = all[1:]
	// Together: each node waits at start for a quorum of them.
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i, s := range all {
		wg.Go(func() { errs[i] = s.launch() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		all[0].stop(5 * time.Second)
		return nil, err
	}
	return all[0], nil
}

// preparePlatform writes a node's config into dir and loads the cached tokens.
func preparePlatform(bin, dir, cfg string, stderr io.Writer) (*server, error) {
	s := &server{kind: Platform, bin: bin, dir: dir, stderrW: stderr, tokens: map[string]string{}, expires: map[string]int64{}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.yaml"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	s.loadTokens()
	return s, nil
}

// tokenFile caches login tokens beside the data, so a rerun on the same
// --data skips registration and login (argon2id, ~50 ms each).
func (s *server) tokenFile() string { return filepath.Join(s.dir, "bench-tokens.json") }

type cachedToken struct {
	Token   string `json:"token"`
	Expires int64  `json:"expires"`
}

func (s *server) loadTokens() {
	b, err := os.ReadFile(s.tokenFile())
	if err != nil {
		return
	}
	var m map[string]cachedToken
	if json.Unmarshal(b, &m) != nil {
		return
	}
	soon := time.Now().Add(2 * time.Hour).UnixMilli()
	for u, t := range m {
		if t.Expires > soon {
			s.tokens[u] = t.Token
			s.expires[u] = t.Expires
		}
	}
}

func (s *server) saveTokens() error {
	m := map[string]cachedToken{}
	for u, t := range s.tokens {
		m[u] = cachedToken{Token: t, Expires: s.expires[u]}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(s.tokenFile(), b, 0o600)
}

func (s *server) launch() error {
	s.cmd = exec.Command(s.bin, "serve", "--data", s.dir, "--config", filepath.Join(s.dir, "bench.yaml"), "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0")
	s.cmd.Env = append(os.Environ(), "MQIM_LOG_LEVEL=warn")
	s.cmd.Stderr = s.stderrW
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := s.start(); err != nil {
		return fmt.Errorf("bench: start platform: %w", err)
	}
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	s.http, s.mqtt = "", ""
	deadline := time.After(60 * time.Second)
	for s.http == "" || s.mqtt == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				return errors.New("bench: mqim serve exited before listening")
			}
			if a, ok := strings.CutPrefix(l, "http listening on "); ok {
				s.http = a
			}
			if a, ok := strings.CutPrefix(l, "mqtt listening on "); ok {
				s.mqtt = a
			}
			if a, ok := strings.CutPrefix(l, "pprof listening on "); ok {
				s.pprof = a
			}
		case <-deadline:
			s.cmd.Process.Kill()
			return errors.New("bench: mqim serve did not print its addresses in 60 s")
		}
	}
	return pin(s.pid(), s.cpu)
}

// restart stops the platform gracefully and starts it again on the same data.
func (s *server) restart() error {
	s.stop(20 * time.Second)
	return s.launch()
}

// startMosquitto writes a minimal config (TCP and WebSocket listeners on
// loopback, anonymous, no persistence) and runs the broker.
func startMosquitto(dir string, stderr io.Writer) (*server, error) {
	if _, err := os.Stat(mosquittoBin); err != nil {
		return nil, fmt.Errorf("bench: %s missing", mosquittoBin)
	}
	tcp, err := freePort()
	if err != nil {
		return nil, err
	}
	ws, err := freePort()
	if err != nil {
		return nil, err
	}
	_, tport, _ := net.SplitHostPort(tcp)
	_, wport, _ := net.SplitHostPort(ws)
	// set_tcp_nodelay: Go sets TCP_NODELAY on every socket, so the platform
	// never waits for Nagle; mosquitto must not either for fair latencies.
	// max_queued_messages: the backlog workload queues 1000 per session.
	// As root, mosquitto drops to its own user by default, which clears the
	// parent-death signal that kills it if the benchmark dies; stay root.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root\n"
	}
	conf := user + fmt.Sprintf(`listener %s 127.0.0.1
listener %s 127.0.0.1
protocol websockets
allow_anonymous true
persistence false
set_tcp_nodelay true
max_queued_messages 100000
max_inflight_messages 0
log_dest stderr
log_type error
`, tport, wport)
	cfg := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	s := &server{kind: Mosquitto, dir: dir, mqtt: tcp, ws: ws, stderrW: stderr}
	s.cmd = exec.Command(mosquittoBin, "-c", cfg)
	s.cmd.Stderr = stderr
	if err := s.start(); err != nil {
		return nil, fmt.Errorf("bench: start mosquitto: %w", err)
	}
	// Poll until it accepts connections.
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", tcp, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-s.exited:
			return nil, errors.New("bench: mosquitto exited at start (see its stderr)")
		default:
		}
		if time.Now().After(deadline) {
			s.stop(time.Second)
			return nil, fmt.Errorf("bench: mosquitto not listening on %s: %w", tcp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s, nil
}

// restart for mosquitto: same config, fresh process (persistence is off, so
// every queued message is gone: that is the baseline's semantics).
func (s *server) restartMosquitto() error {
	s.stop(10 * time.Second)
	cmd := exec.Command(mosquittoBin, "-c", filepath.Join(s.dir, "mosquitto.conf"))
	cmd.Stderr = s.stderrW
	s.cmd = cmd
	if err := s.start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", s.mqtt, time.Second); err == nil {
			c.Close()
			return pin(s.pid(), s.cpu)
		}
	}
	return errors.New("bench: mosquitto did not come back")
}

// requireMosquitto checks that the baseline broker is installed. The
// benchmark never installs software itself: scripts/bench does (apt-get),
// as scripts/test does for the tests.
func requireMosquitto() error {
	if _, err := os.Stat(mosquittoBin); err != nil {
		return fmt.Errorf("bench: the baseline broker %s is missing: install Debian's mosquitto (scripts/bench does), or run with --baseline=false", mosquittoBin)
	}
	return nil
}

// api calls the platform's HTTP API.
func (s *server) api(method, path, token string, body, out any) (int, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, "http://"+s.http+path, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(rb, out); err != nil {
			return resp.StatusCode, fmt.Errorf("bench: %s %s: %w", method, path, err)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("bench: %s %s: %d %s", method, path, resp.StatusCode, rb)
	}
	return resp.StatusCode, nil
}

var httpClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

const benchPassword = "bench-password-1"

// userName is the i-th simulated user.
func userName(i int) string { return fmt.Sprintf("u%05d", i) }

// ensureUsers registers users [0,n) that do not exist yet and logs each in
// once; the tokens are MQTT passwords afterwards (no KDF per connect).
// Registration and login run argon2id (~50 ms each), so this runs before the
// server is pinned, on every CPU.
func (s *server) ensureUsers(n int) error {
	if s.kind != Platform {
		return nil
	}
	var mu sync.Mutex // guards s.tokens, s.expires
	var firstErr firstError
	// The users without a token yet, until a registration fails.
	jobs := func(yield func(int) bool) {
		for i := 0; i < n && firstErr.get() == nil; i++ {
			mu.Lock()
			_, ok := s.tokens[userName(i)]
			mu.Unlock()
			if !ok && !yield(i) {
				return
			}
		}
	}
	pool(2*runtime.NumCPU(), jobs, func(i int) {
		u := userName(i)
		code, err := s.api("POST", "/api/v1/register", "", map[string]string{"user": u, "password": benchPassword}, nil)
		if err != nil && code != http.StatusConflict {
			firstErr.set(err)
			return
		}
		var tok struct {
			Token   string
			Expires int64
		}
		if _, err := s.api("POST", "/api/v1/login", "", map[string]string{"user": u, "password": benchPassword}, &tok); err != nil {
			firstErr.set(err)
			return
		}
		mu.Lock()
		s.tokens[u] = tok.Token
		s.expires[u] = tok.Expires
		mu.Unlock()
	})
	if err := firstErr.get(); err != nil {
		return err
	}
	return s.saveTokens()
}

// ensureGroup creates group gid with members [0,n) (owner user 0).
func (s *server) ensureGroup(gid string, n int) error {
	if s.kind != Platform {
		return nil
	}
	members := make([]string, n)
	for i := range members {
		members[i] = userName(i)
	}
	code, err := s.api("POST", "/api/v1/groups", s.tokens[userName(0)], map[string]any{"id": gid, "name": gid, "members": members}, nil)
	if code == http.StatusConflict {
		return nil
	}
	return err
}

// goroutines reads go_goroutines from the platform's /metrics.
func (s *server) goroutines() int {
	resp, err := httpClient.Get("http://" + s.http + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f)
		}
	}
	return -1
}
