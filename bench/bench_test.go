package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/checkfor"
	"github.com/mqim/mqim/internal/imtest"
)

// TestSmoke runs a tiny 1:1 and fan-out configuration against the platform
// (always) and mosquitto (when installed) and checks that the generator
// counted every message exactly once. No timing assertions.
func TestSmoke(t *testing.T) {
	const users = 10
	p := smokePlatform(t, 1, users)
	servers := []*server{p}
	if _, err := os.Stat(mosquittoBin); err == nil {
		m, err := startMosquitto(t.TempDir(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.stop(5 * time.Second) })
		servers = append(servers, m)
	} else {
		t.Logf("%s not installed: platform only", mosquittoBin)
	}
	specs := map[string]runSpec{
		"1to1":       {shape: OneToOne, users: users, rate: 200, duration: 2 * time.Second, drain: 10 * time.Second, body: 100},
		"1to1-ws":    {shape: OneToOne, users: users, rate: 100, duration: time.Second, drain: 10 * time.Second, body: 100, ws: true},
		"fanout":     {shape: FanOut, users: users, senders: 3, rate: 20, duration: time.Second, drain: 10 * time.Second, body: 100, gid: "smoke"},
		"1to1-again": {shape: OneToOne, users: users, rate: 200, duration: time.Second, drain: 10 * time.Second, body: 50},
	}
	for _, name := range []string{"1to1", "1to1-ws", "fanout", "1to1-again"} {
		for _, s := range servers {
			t.Run(name+"/"+s.kind.String(), func(t *testing.T) { checkRun(t, s, specs[name]) })
		}
	}
	// The idle workload's raw MQTT device: CONNECT and SUBSCRIBE over TCP
	// and WebSocket answered as expected, and a refusal said as one.
	u := userName(0)
	for _, c := range []struct{ name, addr, path string }{{"tcp", p.mqtt, ""}, {"ws", p.http, "/mqtt"}} {
		conn, err := idleDevice(c.addr, c.path, u+":idle-"+c.name, u, p.tokens[u], "im/u/"+u+"/#")
		if err != nil {
			t.Fatalf("idle device over %s: %v", c.name, err)
		}
		conn.Close()
	}
	if _, err := idleDevice(p.mqtt, "", u+":idle-bad", u, "wrong", "im/u/"+u+"/#"); err == nil || !strings.Contains(err.Error(), "connect refused") {
		t.Errorf("idle device with a wrong password: %v, want connect refused", err)
	}
}

func TestHist(t *testing.T) {
	h := &hist{}
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.04 || d < -0.04 {
			t.Errorf("q%.2f = %v, want about %v", c.q, got, c.want)
		}
	}
	for _, us := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 123456, 1 << 40} {
		if v := bucketValue(bucketOf(us)); float64(v) < float64(us)*0.96 || float64(v) > float64(us)*1.04+1 {
			t.Errorf("bucket of %d is worth %d", us, v)
		}
	}
}

func TestParseBody(t *testing.T) {
	b := payloadFor(nil, 7, 42, 3, 123456789, 60)
	for _, p := range [][]byte{b, []byte(`{"id":"x","seq":1,"body":"` + string(b) + `","cid":"c"}`)} {
		run, msg, sender, sched, ok := parseBody(p)
		if !ok || run != 7 || msg != 42 || sender != 3 || sched != 123456789 {
			t.Errorf("parseBody(%s) = %d %d %d %d %v", p, run, msg, sender, sched, ok)
		}
	}
	if _, _, _, _, ok := parseBody([]byte("hello")); ok {
		t.Error("parsed a foreign payload")
	}
}

// TestInterrupt: SIGINT during a workload cancels the run instead of
// exiting the process: Main returns ErrInterrupted (mqim exits 130) after
// its clean-up, and this test process is still here to check it.
func TestInterrupt(t *testing.T) {
	var stderr imtest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Main([]string{"--workload", "history", "--history-size", "2000000000", "--history-time", "1h", "--bin", os.Args[0]}, io.Discard, &stderr)
	}()
	checkfor.Err(t, time.Minute, func() error {
		select {
		case err := <-done:
			t.Fatalf("Main returned before any signal: %v\n%s", err, stderr.String())
		default:
		}
		if !strings.Contains(stderr.String(), "bench: history: building") {
			return fmt.Errorf("the history workload has not started; stderr: %q", stderr.String())
		}
		return nil
	})
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("Main after SIGINT: %v, want ErrInterrupted\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("Main still running a minute after SIGINT\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "bench: interrupted") {
		t.Errorf("no word of the interruption on stderr:\n%s", stderr.String())
	}
}

// checkRun runs spec against s and checks that every message was published,
// acknowledged and delivered exactly once to every expected device.
func checkRun(t *testing.T, s *server, spec runSpec) {
	t.Helper()
	r := run(t.Context(), s, spec)
	if r.connectErr != nil {
		t.Fatal(r.connectErr)
	}
	msgs := int64(spec.rate * spec.duration.Seconds())
	want := msgs
	if spec.shape == FanOut {
		want = msgs * int64(spec.users)
	}
	if r.published != msgs || r.acked != msgs || r.pubErrors != 0 {
		t.Errorf("published %d acked %d errors %d, want %d acked", r.published, r.acked, r.pubErrors, msgs)
	}
	if r.expected != want || r.delivered != want || r.lost != 0 || r.dups != 0 {
		t.Errorf("delivered %d of %d, lost %d, dup %d", r.delivered, want, r.lost, r.dups)
	}
	if spec.shape == OneToOne && s.kind == Platform && r.carbons != msgs {
		t.Errorf("carbons %d, want %d", r.carbons, msgs)
	}
	if r.dropped != 0 {
		t.Errorf("%d devices lost their connection", r.dropped)
	}
	if r.lat.n.Load() != uint64(want) {
		t.Errorf("latency samples %d, want %d", r.lat.n.Load(), want)
	}
}

// TestSmokeCluster: the same counting against a local 3-node cluster
// (--nodes 3), where each 1:1 pair's devices are on two different nodes
// and a group's members on all three.
func TestSmokeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	const users = 12
	p := smokePlatform(t, 3, users)
	t.Run("1to1", func(t *testing.T) {
		checkRun(t, p, runSpec{shape: OneToOne, users: users, rate: 200, duration: 2 * time.Second, drain: 10 * time.Second, body: 100})
	})
	t.Run("fanout", func(t *testing.T) {
		checkRun(t, p, runSpec{shape: FanOut, users: users, senders: 3, rate: 20, duration: time.Second, drain: 10 * time.Second, body: 100, gid: "smoke"})
	})
}

// smokePlatform starts the platform on nodes nodes with users users, all
// members of group "smoke".
func smokePlatform(t *testing.T, nodes, users int) *server {
	t.Helper()
	p, err := startPlatform(imtest.Binary(t), t.TempDir(), nodes, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(10 * time.Second) })
	if err := p.ensureUsers(users); err != nil {
		t.Fatal(err)
	}
	if err := p.ensureGroup("smoke", users); err != nil {
		t.Fatal(err)
	}
	return p
}
