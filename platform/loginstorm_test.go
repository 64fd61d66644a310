package platform_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/imtest"
)

// BenchmarkLoginStorm is the measurement behind issue 12's closing note (the
// regression tests are TestLoginKDFBusy and TestLoginThrottle): it runs `mqim serve` as a subprocess with its default
// limits, lets 100 concurrent attackers send wrong-password MQTT 5 CONNECTs in
// a loop, and logs the server's resident memory (VmRSS sampled every 20 ms,
// and VmHWM) and how long a legitimate login from another loopback address
// takes meanwhile (HTTP /login and an MQTT CONNECT, retried as Retry-After
// says). Run it with
//
//	go test ./platform/ -run '^$' -bench BenchmarkLoginStorm -benchtime 1x
//
// (one storm per scenario whatever b.N; the numbers are reported as metrics
// and logged).
//
// Scenarios: all attackers on one IP against the victim's account; 100
// attacker IPs (127.0.1.1-100) against the victim; 100 IPs against unknown
// random users (only the KDF bound helps there).
func BenchmarkLoginStorm(b *testing.B) {
	for _, sc := range []struct {
		name   string
		ips    int
		target string
	}{
		{"one IP, victim account", 1, "alice"},
		{"100 IPs, victim account", 100, "alice"},
		{"100 IPs, random users", 100, ""},
	} {
		b.Run(sc.name, func(b *testing.B) { measureStorm(b, sc.ips, sc.target) })
	}
}

func measureStorm(t *testing.B, ips int, target string) {
	p := imtest.StartProc(t, "--data", t.TempDir(), "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0")
	mqttAddr := strings.TrimPrefix(p.MQTT, "tcp://")
	resp, err := http.Post(p.HTTP+"/api/v1/register", "application/json",
		strings.NewReader(fmt.Sprintf(`{"user":"alice","password":%q}`, imtest.Password)))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()
	pid := p.Cmd.Process.Pid
	base := procStatusKB(pid, "VmRSS")

	var peak atomic.Int64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if v := procStatusKB(pid, "VmRSS"); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stopSample:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var attempts atomic.Int64
	var mu sync.Mutex
	codes := map[string]int{}
	for i := 0; i < 100; i++ {
		src := net.IPv4(127, 0, 0, 1)
		if ips > 1 {
			src = net.IPv4(127, 0, 1, byte(1+i%ips))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				user := target
				if user == "" {
					user = fmt.Sprintf("nobody%d-%d", i, n)
				}
				a, err := connectFrom(src, mqttAddr, 5, user+":storm", user, "wrong-password")
				attempts.Add(1)
				key := fmt.Sprintf("%#x", a.code)
				if err != nil {
					key = "error"
				}
				mu.Lock()
				codes[key]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second) // let the storm build up
	during := procStatusKB(pid, "VmRSS")
	owner := net.IPv4(127, 0, 0, 2)
	httpTook, httpTries := timeHTTPLogin(t, p.HTTP, owner)
	mqttTook, mqttTries := timeMQTTLogin(t, mqttAddr, owner)
	cancel()
	wg.Wait()
	close(stopSample)
	<-sampled
	t.Logf("RSS before %d MB, 1 s into the storm %d MB, peak sampled %d MB, VmHWM %d MB",
		base>>10, during>>10, peak.Load()>>10, procStatusKB(pid, "VmHWM")>>10)
	t.Logf("legitimate login during the storm: HTTP /login %v (%d tries), MQTT CONNECT %v (%d tries)",
		httpTook.Round(time.Millisecond), httpTries, mqttTook.Round(time.Millisecond), mqttTries)
	t.Logf("attacker CONNECTs answered: %d, by CONNACK code: %v", attempts.Load(), codes)
	t.ReportMetric(float64(peak.Load()>>10), "peak-RSS-MB")
	t.ReportMetric(httpTook.Seconds(), "login-http-s")
	t.ReportMetric(mqttTook.Seconds(), "login-mqtt-s")
}

// procStatusKB reads one "kB" field of /proc/PID/status.
func procStatusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// timeHTTPLogin logs in from src until it succeeds, waiting as Retry-After says.
func timeHTTPLogin(t testing.TB, base string, src net.IP) (time.Duration, int) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
	cl := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 120 * time.Second}
	start := time.Now()
	for tries := 1; ; tries++ {
		resp, err := cl.Post(base+"/api/v1/login", "application/json",
			strings.NewReader(fmt.Sprintf(`{"user":"alice","password":%q}`, imtest.Password)))
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return time.Since(start), tries
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("login still answered %d after 2 minutes", resp.StatusCode)
		}
		wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		time.Sleep(time.Duration(max(wait, 1)) * time.Second)
	}
}

// timeMQTTLogin connects with the password from src until CONNACK is success.
func timeMQTTLogin(t testing.TB, addr string, src net.IP) (time.Duration, int) {
	start := time.Now()
	for tries := 1; ; tries++ {
		a, err := connectFrom(src, addr, 5, "alice:owner", "alice", imtest.Password)
		if err == nil && a.code == 0 {
			a.conn.Close()
			return time.Since(start), tries
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("MQTT login still refused (code %#x, %v) after 2 minutes", a.code, err)
		}
		time.Sleep(time.Second)
	}
}
