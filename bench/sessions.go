package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// connectResult is the connect-rate run: connect with a token, subscribe to
// the inbox, disconnect, n times with a fixed number of workers.
type connectResult struct {
	server    Kind
	n, failed int
	elapsed   time.Duration
	lat       *hist // CONNECT..SUBACK
	serverCPU time.Duration
	firstErr  error
}

func (r *connectResult) perSec() float64 { return float64(r.n-r.failed) / r.elapsed.Seconds() }

// cpuPer1k is server CPU-milliseconds per 1000 connections.
func (r *connectResult) cpuPer1k() float64 {
	if r.n == r.failed {
		return 0
	}
	return r.serverCPU.Seconds() * 1000 / float64(r.n-r.failed) * 1000
}

func runConnect(s *server, n, users, workers int) *connectResult {
	res := &connectResult{server: s.kind, n: n, lat: &hist{}}
	var failed atomic.Int64
	var mu sync.Mutex
	cpu0 := s.CPU()
	t0 := time.Now()
	pool(workers, upTo(n), func(i int) {
		u := userName(i % users)
		o := clientOpts{addr: s.mqtt, id: fmt.Sprintf("%s:conn%d", u, i), clean: true, handler: func(paho.Client, paho.Message) {}}
		if s.kind == Platform {
			o.user, o.password = u, s.tokens[u]
		}
		t := time.Now()
		c, err := connect(o)
		if err == nil {
			err = subscribe(c, "im/u/"+u+"/#")
		}
		if err == nil {
			res.lat.record(time.Since(t))
		} else {
			failed.Add(1)
			mu.Lock()
			if res.firstErr == nil {
				res.firstErr = err
			}
			mu.Unlock()
		}
		if c != nil {
			c.Disconnect(0)
		}
	})
	res.elapsed = time.Since(t0)
	res.serverCPU = s.CPU() - cpu0
	res.failed = int(failed.Load())
	return res
}

// backlogResult is the offline-backlog run.
type backlogResult struct {
	server      Kind
	restart     bool
	users, per  int
	ingest      time.Duration // publishing all messages until the last PUBACK
	acked       int64
	drain       time.Duration // reconnect until every message arrived (or timeout)
	delivered   int64
	lost, dups  int64
	outOfOrder  int64         // arrived after a later message of the same conversation
	serverCPU   time.Duration // during the drain
	note        string
	restartTime time.Duration
}

// runBacklog: users [0,n) get a persistent session and go offline; users
// [n,2n) each send per messages to user i-n as fast as acknowledgements allow
// (100 in flight each); optionally the server restarts; then the n devices
// come back and drain.
func runBacklog(s *server, n, per int, restart bool, timeout time.Duration) *backlogResult {
	res := &backlogResult{server: s.kind, restart: restart, users: n, per: per}
	runID := runCounter.Add(1) + time.Now().Unix()%1000*1000
	counts := make([]atomic.Uint32, n*per)
	var delivered, dups, outOfOrder atomic.Int64
	// Each recipient has one conversation, sent in message order; paho calls
	// a client's handler in arrival order.
	last := make([]atomic.Int64, n)
	for i := range last {
		last[i].Store(-1)
	}
	handler := func(paho.Client, paho.Message) {}
	recv := func(_ paho.Client, m paho.Message) {
		r, msg, _, _, ok := parseBody(m.Payload())
		if !ok || r != runID || msg < 0 || msg >= n*per {
			return
		}
		if counts[msg].Add(1) > 1 {
			dups.Add(1)
			return
		}
		if l := &last[msg/per]; int64(msg) < l.Load() {
			outOfOrder.Add(1)
		} else {
			l.Store(int64(msg))
		}
		delivered.Add(1)
	}
	opts := func(i int, h paho.MessageHandler) clientOpts {
		u := userName(i)
		o := clientOpts{addr: s.mqtt, id: u + ":bench", clean: false, handler: h}
		if s.kind == Platform {
			o.user, o.password = u, s.tokens[u]
		}
		return o
	}
	parallel := func(count int, f func(i int) error) error { return forEach(count, 32, f) }
	// 1. Sessions for the recipients, then offline.
	err := parallel(n, func(i int) error {
		c, err := connect(opts(i, handler))
		if err != nil {
			return err
		}
		defer c.Disconnect(50)
		return subscribe(c, "im/u/"+userName(i)+"/#")
	})
	if err != nil {
		res.note = err.Error()
		return res
	}
	// 2. Publishers (plain devices, no session), 100 publishes in flight each.
	var acked atomic.Int64
	t0 := time.Now()
	err = parallel(n, func(i int) error {
		o := opts(n+i, handler)
		o.id, o.clean = userName(n+i)+":pub", true
		c, err := connect(o)
		if err != nil {
			return err
		}
		defer c.Disconnect(50)
		topic := "im/u/" + userName(i) + "/dm/" + userName(n+i)
		window := make(chan paho.Token, 100)
		done := make(chan error, 1)
		go func() {
			var e error
			for t := range window {
				if !t.WaitTimeout(timeout) {
					e = fmt.Errorf("bench: puback timeout")
				} else if t.Error() != nil {
					e = t.Error()
				} else {
					acked.Add(1)
				}
			}
			done <- e
		}()
		buf := make([]byte, 0, 256)
		for k := 0; k < per; k++ {
			msg := i*per + k
			buf = payloadFor(buf, runID, msg, n+i, time.Now().UnixNano(), 100)
			p := buf
			if s.kind == Platform {
				p = []byte(fmt.Sprintf(`{"cid":"%d-%d","body":"%s"}`, runID, msg, buf))
			}
			window <- c.Publish(topic, 1, false, append([]byte(nil), p...))
		}
		close(window)
		return <-done
	})
	res.ingest = time.Since(t0)
	res.acked = acked.Load()
	if err != nil {
		res.note = "publish: " + err.Error()
	}
	// 3. Optional restart.
	if restart {
		t := time.Now()
		var rerr error
		if s.kind == Platform {
			rerr = s.restart()
		} else {
			rerr = s.restartMosquitto()
		}
		res.restartTime = time.Since(t)
		if rerr != nil {
			res.note = "restart: " + rerr.Error()
			return res
		}
	}
	// 4. Reconnect and drain.
	clients := make([]paho.Client, n)
	cpu0 := s.CPU()
	t1 := time.Now()
	err = parallel(n, func(i int) error {
		c, err := connect(opts(i, recv))
		if err != nil {
			return err
		}
		clients[i] = c
		return subscribe(c, "im/u/"+userName(i)+"/#")
	})
	if err != nil && res.note == "" {
		res.note = "reconnect: " + err.Error()
	}
	want := int64(n * per)
	deadline := t1.Add(timeout)
	for time.Now().Before(deadline) && delivered.Load() < want {
		time.Sleep(5 * time.Millisecond)
	}
	res.drain = time.Since(t1)
	// Duplicates arrive late; give them a moment.
	time.Sleep(500 * time.Millisecond)
	res.serverCPU = s.CPU() - cpu0
	res.delivered, res.dups, res.outOfOrder = delivered.Load(), dups.Load(), outOfOrder.Load()
	res.lost = want - res.delivered
	disconnectAll(clients)
	return res
}
