package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Shape is the traffic pattern of a run.
type Shape int

const (
	// OneToOne: users 2k and 2k+1 are a pair; each sends to the other on
	// im/u/{peer}/dm/{me}. The platform also sends the sender a carbon.
	OneToOne Shape = iota
	// FanOut: a few members publish on im/g/{gid}; every member, the sender
	// included, gets each message.
	FanOut
)

// runSpec describes one run of the generator against one server.
type runSpec struct {
	shape    Shape
	users    int           // 1:1: 2 x pairs; fan-out: members
	senders  int           // fan-out: how many members publish (round robin)
	rate     float64       // messages published per second, all senders together
	duration time.Duration // publishing window
	drain    time.Duration // how long to wait for stragglers after the window
	body     int           // body size in bytes
	ws       bool          // MQTT over WebSocket instead of TCP
	gid      string
}

// result is what one run measured.
type result struct {
	server     Kind
	spec       runSpec
	published  int64 // publishes handed to paho
	acked      int64
	pubErrors  int64
	delivered  int64 // copies to recipients (1:1: the peer; fan-out: every member)
	carbons    int64 // platform 1:1 carbons to the sender
	expected   int64 // recipient copies expected
	lost       int64 // expected recipient copies (and carbons) never received
	dups       int64
	stale      int64 // copies of earlier runs' messages (resumed sessions)
	dropped    int64 // devices whose connection the server closed during the run
	lat        *hist // recipient copies, from the scheduled send time
	window     time.Duration
	ackSpan    time.Duration
	serverCPU  time.Duration
	genCPU     time.Duration
	genCPUs    float64 // CPUs the generator may use
	connectErr error
}

func (r *result) deliveredPerSec() float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(r.delivered) / r.window.Seconds()
}

func (r *result) acksPerSec() float64 {
	if r.ackSpan <= 0 {
		return 0
	}
	return float64(r.acked) / r.ackSpan.Seconds()
}

// cpuPer100k is server CPU-seconds per 100k recipient copies.
func (r *result) cpuPer100k() float64 {
	if r.delivered == 0 {
		return 0
	}
	return r.serverCPU.Seconds() / float64(r.delivered) * 1e5
}

// genLimited reports whether the generator used nearly all its CPUs.
func (r *result) genLimited() bool {
	return r.window > 0 && r.genCPU.Seconds()/r.window.Seconds() > 0.85*r.genCPUs
}

func selfCPU() time.Duration { return procCPU(os.Getpid()) }

var runCounter atomic.Int64

// firstError keeps the first error reported by concurrent workers.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// payloadFor builds the body: "b<run>:<msg>:<sender>:<sched unix ns>:" then
// padding to size. It has no characters JSON would escape.
func payloadFor(buf []byte, run int64, msg, sender int, sched int64, size int) []byte {
	buf = buf[:0]
	buf = append(buf, 'b')
	buf = strconv.AppendInt(buf, run, 10)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, int64(msg), 10)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, int64(sender), 10)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, sched, 10)
	buf = append(buf, ':')
	for len(buf) < size {
		buf = append(buf, 'x')
	}
	return buf
}

// parseBody finds the body in a delivered payload (the platform's JSON
// envelope, or mosquitto's raw bytes) and decodes its header.
func parseBody(p []byte) (run int64, msg, sender int, sched int64, ok bool) {
	if len(p) > 0 && p[0] == '{' {
		i := bytes.Index(p, []byte(`"body":"`))
		if i < 0 {
			return
		}
		p = p[i+8:]
	}
	if len(p) == 0 || p[0] != 'b' {
		return
	}
	p = p[1:]
	var f [4]int64
	for k := range f {
		j := bytes.IndexByte(p, ':')
		if j < 0 {
			return
		}
		v, err := strconv.ParseInt(string(p[:j]), 10, 64)
		if err != nil {
			return
		}
		f[k] = v
		p = p[j+1:]
	}
	return f[0], int(f[1]), int(f[2]), f[3], true
}

// run drives one run against one server; a cancelled ctx ends its
// publishing and its drain early (a cut-short result).
func run(ctx context.Context, s *server, spec runSpec) *result {
	res := &result{server: s.kind, spec: spec, lat: &hist{}}
	runID := runCounter.Add(1) + time.Now().Unix()%1000*1000
	nMsgs := int(spec.rate * spec.duration.Seconds())
	slots := 2 // 1:1: the peer's copy and the sender's carbon
	if spec.shape == FanOut {
		slots = spec.users
	}
	counts := make([]atomic.Uint32, nMsgs*slots)
	var delivered, carbons, dups, stale, dropped atomic.Int64
	var droppedErr firstError
	var lastDelivery atomic.Int64

	handler := func(me int) paho.MessageHandler {
		return func(_ paho.Client, m paho.Message) {
			now := time.Now().UnixNano()
			r, msg, sender, sched, ok := parseBody(m.Payload())
			if !ok || r != runID || msg < 0 || msg >= nMsgs {
				stale.Add(1)
				return
			}
			slot := 0
			switch {
			case spec.shape == FanOut:
				slot = me
			case me == sender:
				slot = 1
			}
			if counts[msg*slots+slot].Add(1) > 1 {
				dups.Add(1)
				return
			}
			if spec.shape == OneToOne && slot == 1 {
				carbons.Add(1)
			} else {
				delivered.Add(1)
				res.lat.record(time.Duration(now - sched))
			}
			lastDelivery.Store(now)
		}
	}

	// Connect every device with a persistent session and subscribe it.
	clients := make([]paho.Client, spec.users)
	var cerr firstError
	pool(32, upTo(spec.users), func(i int) {
		u := userName(i)
		nd := s.node(i)
		o := clientOpts{addr: nd.mqtt, id: u + ":bench", clean: false, handler: handler(i), ws: spec.ws, wsPath: "/mqtt",
			onLost: func(err error) { dropped.Add(1); droppedErr.set(fmt.Errorf("%s: %w", u, err)) }}
		if spec.ws {
			o.addr = nd.ws
			if s.kind == Platform {
				o.addr = nd.http
			}
		}
		if s.kind == Platform {
			o.user, o.password = u, s.tokens[u]
		}
		c, err := connect(o)
		if err == nil {
			filter := "im/u/" + u + "/#"
			if spec.shape == FanOut && s.kind == Mosquitto {
				filter = "im/g/" + spec.gid
			}
			err = subscribe(c, filter)
		}
		if err != nil {
			cerr.set(err)
		}
		clients[i] = c // each worker its own i
	})
	defer disconnectAll(clients)
	if err := cerr.get(); err != nil {
		res.connectErr = err
		return res
	}
	// Let resumed sessions flush what earlier runs left queued (counted as
	// stale): wait until half a second passes without any, at most 60 s.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		before := stale.Load()
		time.Sleep(500 * time.Millisecond)
		if stale.Load() == before {
			break
		}
	}

	// One publishing goroutine and one acknowledgement waiter per sender,
	// fed by a dispatcher that releases message i at start + i/rate.
	nSenders := spec.users
	if spec.shape == FanOut {
		nSenders = min(spec.senders, spec.users)
	}
	type job struct {
		msg   int
		sched int64
	}
	type pending struct {
		tok paho.Token
	}
	var published, acked, pubErrors atomic.Int64
	var lastAck atomic.Int64
	queues := make([]chan job, nSenders)
	var sw sync.WaitGroup
	for i := range queues {
		// Small per-sender buffers: with thousands of senders, big channels
		// of pointers make the generator's GC scan hundreds of MB on its one
		// CPU, and its pauses would show up as the server's tail latency.
		queues[i] = make(chan job, 256)
		acks := make(chan paho.Token, 1024)
		c := clients[i]
		me := userName(i)
		var topic string
		if spec.shape == OneToOne {
			topic = "im/u/" + userName(i^1) + "/dm/" + me
		} else {
			topic = "im/g/" + spec.gid
		}
		sw.Add(2)
		go func() {
			defer sw.Done()
			defer close(acks)
			buf := make([]byte, 0, spec.body+64)
			out := make([]byte, 0, spec.body+128)
			for j := range queues[i] {
				buf = payloadFor(buf, runID, j.msg, i, j.sched, spec.body)
				p := buf
				if s.kind == Platform {
					out = append(out[:0], `{"cid":"`...)
					out = strconv.AppendInt(out, runID, 10)
					out = append(out, '-')
					out = strconv.AppendInt(out, int64(j.msg), 10)
					out = append(out, `","body":"`...)
					out = append(out, buf...)
					out = append(out, `"}`...)
					p = out
				}
				// paho keeps the slice until written: give it its own copy.
				acks <- c.Publish(topic, 1, false, append([]byte(nil), p...))
				published.Add(1)
			}
		}()
		go func() {
			defer sw.Done()
			for t := range acks {
				if !t.WaitTimeout(spec.duration + spec.drain + 10*time.Second) {
					pubErrors.Add(1)
					continue
				}
				if t.Error() != nil {
					pubErrors.Add(1)
					continue
				}
				acked.Add(1)
				lastAck.Store(time.Now().UnixNano())
			}
		}()
	}

	cpu0, gen0 := s.CPU(), selfCPU()
	start := time.Now().Add(20 * time.Millisecond)
	startNs := start.UnixNano()
	interval := float64(time.Second) / spec.rate
	for i := 0; i < nMsgs && ctx.Err() == nil; {
		now := time.Now()
		due := int(float64(now.Sub(start))/interval) + 1
		if due > nMsgs {
			due = nMsgs
		}
		for ; i < due; i++ {
			sched := startNs + int64(float64(i)*interval)
			queues[i%nSenders] <- job{msg: i, sched: sched}
		}
		if i < nMsgs {
			next := start.Add(time.Duration(float64(i) * interval))
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
	}
	for _, q := range queues {
		close(q)
	}
	end := start.Add(spec.duration)

	// Wait for every expected copy, or the drain deadline.
	expected := int64(nMsgs)
	if spec.shape == FanOut {
		expected = int64(nMsgs * spec.users)
	}
	deadline := end.Add(spec.drain)
	for time.Now().Before(deadline) && delivered.Load() < expected && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if spec.shape == OneToOne && s.kind == Platform {
		for time.Now().Before(deadline) && carbons.Load() < expected && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	sw.Wait()
	res.serverCPU = s.CPU() - cpu0
	res.genCPU = selfCPU() - gen0
	res.genCPUs = float64(runtime.GOMAXPROCS(0))

	res.published, res.acked, res.pubErrors = published.Load(), acked.Load(), pubErrors.Load()
	res.delivered, res.carbons, res.dups, res.stale = delivered.Load(), carbons.Load(), dups.Load(), stale.Load()
	res.expected = expected
	res.dropped = dropped.Load()
	if e := droppedErr.get(); e != nil {
		fmt.Fprintf(os.Stderr, "bench: %s dropped %d devices during the run, first: %v\n", s.kind, res.dropped, e)
	}
	res.lost = expected - res.delivered
	if spec.shape == OneToOne && s.kind == Platform {
		res.lost += expected - res.carbons
	}
	if l := lastDelivery.Load(); l > 0 {
		res.window = time.Duration(max(l-startNs, int64(spec.duration)))
	}
	if l := lastAck.Load(); l > 0 {
		res.ackSpan = time.Duration(max(l-startNs, int64(spec.duration)))
	}
	return res
}

func (r *result) String() string {
	return fmt.Sprintf("%s rate=%.0f delivered/s=%.0f acks/s=%.0f p50=%v p99=%v p99.9=%v lost=%d dup=%d dropped=%d cpu/100k=%.2fs gen=%.0f%%",
		r.server, r.spec.rate, r.deliveredPerSec(), r.acksPerSec(), r.lat.quantile(0.5), r.lat.quantile(0.99), r.lat.quantile(0.999),
		r.lost, r.dups, r.dropped, r.cpuPer100k(), 100*r.genCPU.Seconds()/max(r.window.Seconds(), 1e-9))
}

// disconnectAll disconnects the connected clients in parallel.
func disconnectAll(clients []paho.Client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.Disconnect(50) }()
		}
	}
	wg.Wait()
}
