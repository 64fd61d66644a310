package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Idle connections are raw MQTT 3.1.1 over WebSocket (CONNECT, SUBSCRIBE,
// then nothing): a paho client per connection would cost the generator far
// more memory than the server and limit how many fit.

func appendStr(b []byte, s string) []byte {
	return append(append(b, byte(len(s)>>8), byte(len(s))), s...)
}

func appendRemLen(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// connectPacket encodes an MQTT 3.1.1 CONNECT.
func connectPacket(id, user, password string, clean bool, keepalive uint16) []byte {
	var vh []byte
	vh = appendStr(vh, "MQTT")
	flags := byte(0)
	if clean {
		flags |= 0x02
	}
	if user != "" {
		flags |= 0xC0
	}
	vh = append(vh, 4, flags, byte(keepalive>>8), byte(keepalive))
	vh = appendStr(vh, id)
	if user != "" {
		vh = appendStr(vh, user)
		vh = appendStr(vh, password)
	}
	return append(appendRemLen([]byte{0x10}, len(vh)), vh...)
}

// subscribePacket encodes a SUBSCRIBE of one filter at QoS 1.
func subscribePacket(pid uint16, filter string) []byte {
	vh := []byte{byte(pid >> 8), byte(pid)}
	vh = appendStr(vh, filter)
	vh = append(vh, 1)
	return append(appendRemLen([]byte{0x82}, len(vh)), vh...)
}

// idleDevice opens one idle MQTT device (over WebSocket when path is not
// empty, else over TCP) and returns its connection.
func idleDevice(addr, path, id, user, password, filter string) (net.Conn, error) {
	var c net.Conn
	var err error
	if path != "" {
		c, err = dialWS(addr, path, 256)
	} else {
		nd := net.Dialer{LocalAddr: nextSrc(), Timeout: 20 * time.Second}
		c, err = nd.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	// CONNACK: 0x20, length, flags, reason 0; SUBACK: 0x90, length, packet
	// id, granted QoS 0-2.
	err = exchange(c, connectPacket(id, user, password, true, 600), 4, "connect", func(b []byte) bool { return b[0] == 0x20 && b[3] == 0 })
	if err == nil {
		err = exchange(c, subscribePacket(1, filter), 5, "subscribe", func(b []byte) bool { return b[0] == 0x90 && b[4] <= 2 })
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// exchange writes pkt and reads an answer of n bytes that ok must accept.
func exchange(c net.Conn, pkt []byte, n int, what string, ok func([]byte) bool) error {
	if _, err := c.Write(pkt); err != nil {
		return err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		return fmt.Errorf("bench: %s: reading the answer: %w", what, err)
	}
	if !ok(b) {
		return fmt.Errorf("bench: %s refused: % x", what, b)
	}
	return nil
}

// idlePoint is the server's footprint at one connection count.
type idlePoint struct {
	conns      int
	rss        int64 // bytes, total
	rssPerConn float64
	goroutines int // platform only; -1 when unknown
	gorPerConn float64
	connectDur time.Duration
	// rssGC is RSS after three forced collections (profiling runs only, else
	// 0): the collector shrinks goroutine stacks grown while connecting
	// only as it runs, by half a collection, so this is nearer what a
	// server holds once it has been idle for a few minutes.
	rssGC        int64
	rssGCPerConn float64
}

// idleResult is one server's idle-connection run.
type idleResult struct {
	server   Kind
	baseRSS  int64
	baseGor  int
	points   []idlePoint
	stopNote string // why it stopped before the last step, if it did
}

// saveURL writes the body of a GET of url to file.
func saveURL(url, file string) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// raiseNoFile lifts RLIMIT_NOFILE (children inherit it).
func raiseNoFile(n uint64) (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur >= n {
		return r.Cur, nil
	}
	want := r
	want.Cur = n
	if want.Max < n {
		want.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		// Without privilege only the soft limit can move, up to the hard one.
		want.Max = r.Max
		want.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return r.Cur, err
		}
		return r.Max, nil
	}
	return n, nil
}

// runIdle opens idle devices (WebSocket, or TCP when tcp is set) up to each
// step count, measuring the server's RSS and goroutines at each, within
// budget. With profDir set it saves the platform's heap (after a GC) and
// goroutine profiles and its /metrics at each step there.
func runIdle(s *server, tcp bool, steps []int, users int, budget time.Duration, profDir string) *idleResult {
	res := &idleResult{server: s.kind}
	addr, path := s.ws, "/mqtt"
	if s.kind == Platform {
		addr = s.http
	}
	if tcp {
		addr, path = s.mqtt, ""
	}
	settle := func() {
		// Let the runtime return freed memory and connections finish setup.
		time.Sleep(3 * time.Second)
	}
	settle()
	res.baseRSS = s.RSS()
	res.baseGor = -1
	if s.kind == Platform {
		res.baseGor = s.goroutines()
	}
	var conns []net.Conn
	var mu sync.Mutex
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	deadline := time.Now().Add(budget)
	t0 := time.Now()
	issued := 0
	for _, target := range steps {
		var failed atomic.Int64
		var firstErr firstError
		// Issued in order, while the failures and the time budget allow.
		jobs := func(yield func(int) bool) {
			for ; issued < target && failed.Load() < 100 && time.Now().Before(deadline); issued++ {
				if !yield(issued) {
					return
				}
			}
		}
		pool(64, jobs, func(i int) {
			u := userName(i % users)
			var c net.Conn
			var err error
			if s.kind == Platform {
				c, err = idleDevice(addr, path, fmt.Sprintf("%s:idle%d", u, i), u, s.tokens[u], "im/u/"+u+"/#")
			} else {
				c, err = idleDevice(addr, path, fmt.Sprintf("%s:idle%d", u, i), "", "", "im/u/"+u+"/#")
			}
			if err != nil {
				failed.Add(1)
				firstErr.set(err)
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		})
		if len(conns) < target {
			e := firstErr.get()
			if e == nil {
				e = errors.New("time budget spent")
			}
			res.stopNote = fmt.Sprintf("stopped at %d of %d connections: %v", len(conns), target, e)
			if len(conns) == 0 {
				return res
			}
		}
		elapsed := time.Since(t0)
		settle()
		p := idlePoint{conns: len(conns), rss: s.RSS(), goroutines: -1, connectDur: elapsed}
		p.rssPerConn = float64(p.rss-res.baseRSS) / float64(p.conns)
		if s.kind == Platform {
			p.goroutines = s.goroutines()
			p.gorPerConn = float64(p.goroutines-res.baseGor) / float64(p.conns)
			if profDir != "" && s.pprof != "" {
				net := map[bool]string{false: "ws", true: "tcp"}[tcp]
				for _, prof := range []string{"heap", "goroutine"} {
					file := filepath.Join(profDir, fmt.Sprintf("%s-%s-%d.pb.gz", prof, net, p.conns))
					if err := saveURL("http://"+s.pprof+"/debug/pprof/"+prof+"?gc=1", file); err != nil {
						res.stopNote = fmt.Sprintf("profile: %v", err)
					}
				}
				for range 2 { // with the heap profile's: three collections
					_ = saveURL("http://"+s.pprof+"/debug/pprof/heap?gc=1", os.DevNull)
				}
				settle()
				p.rssGC = s.RSS()
				p.rssGCPerConn = float64(p.rssGC-res.baseRSS) / float64(p.conns)
				// The Go runtime's own account (stacks, heap) beside the profiles.
				if err := saveURL("http://"+s.http+"/metrics", filepath.Join(profDir, fmt.Sprintf("metrics-%s-%d.txt", net, p.conns))); err != nil {
					res.stopNote = fmt.Sprintf("metrics: %v", err)
				}
			}
		}
		res.points = append(res.points, p)
		if res.stopNote != "" {
			return res
		}
	}
	return res
}
