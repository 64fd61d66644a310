package bench

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Workload names accepted by --workload.
var workloads = []string{"1to1", "fanout", "connect", "backlog", "idle", "history"}

// options is the whole run configuration; --quick and the defaults fill it.
type options struct {
	quick     bool
	only      map[string]bool
	bin       string
	data      string
	baseline  bool
	pairs     int
	rates     []float64
	fanSizes  []int
	fanRates  []float64 // deliveries per second (members x messages)
	senders   int
	duration  time.Duration
	drain     time.Duration
	reps      int
	body      int
	ws        bool
	maxP99    time.Duration
	backlogN  int
	backlogM  int
	connectN  int
	idleSteps []int
	idleTime  time.Duration
	idleNets  []string // "ws", "tcp"
	idleProf  string   // dir for the platform's heap and goroutine profiles
	histSize  int
	histTime  time.Duration
	nodes     int // platform nodes: 1, or a cluster
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bench: bad number %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	quick := fs.Bool("quick", false, "smoke run under a minute: 1:1 and fan-out at one rate, both servers")
	only := fs.String("workload", "all", "comma-separated: "+strings.Join(workloads, ",")+" or all")
	fs.StringVar(&o.bin, "bin", "", "mqim binary to benchmark (default: this executable)")
	fs.StringVar(&o.data, "data", "", "platform data dir kept across runs (users and tokens are reused); default: a temporary dir")
	fs.BoolVar(&o.baseline, "baseline", true, "also run mosquitto, the baseline (/usr/sbin/mosquitto; scripts/bench installs it)")
	pairs := fs.Int("pairs", 0, "1:1 pairs (default 1000; quick 50)")
	rates := fs.String("rates", "", "1:1 message rates to step through, msgs/s (default 500,1000,2000,4000,6000,8000,10000,12000,15000,20000)")
	fanRates := fs.String("fan-rates", "", "fan-out delivery rates to step through, deliveries/s")
	fanSizes := fs.String("fan-sizes", "", "group sizes (default 100,1000; quick 100)")
	dur := fs.Duration("duration", 0, "publishing window per run (default 6s; quick 3s)")
	reps := fs.Int("reps", 2, "runs per server and step, alternating (A B A B)")
	fs.IntVar(&o.body, "body", 100, "message body bytes")
	fs.IntVar(&o.nodes, "nodes", 1, "platform nodes: 1, or a local cluster of 3 or 5 (replicas = nodes; workloads 1to1 and fanout only); device i connects to node i mod nodes")
	fs.BoolVar(&o.ws, "ws", false, "1:1 and fan-out over WebSocket instead of TCP")
	fs.DurationVar(&o.maxP99, "max-p99", 100*time.Millisecond, "stop stepping a server once its p99 exceeds this (or it loses a message)")
	fs.IntVar(&o.histSize, "history-size", 10_000_000, "messages in the large history store (building stops at --history-time)")
	fs.DurationVar(&o.histTime, "history-time", 3*time.Minute, "time budget for building the history store")
	idle := fs.String("idle", "10000,50000", "idle connection counts")
	idleNets := fs.String("idle-net", "ws,tcp", "idle: transports to measure, comma-separated: ws, tcp")
	fs.StringVar(&o.idleProf, "idle-profile", "", "idle: save the platform's heap and goroutine profiles at each count in this dir")
	backlogUsers := fs.Int("backlog-users", 100, "backlog: devices with a persistent session (and as many senders)")
	backlogMsgs := fs.Int("backlog-msgs", 1000, "backlog: messages queued for each device while it is offline")
	fs.DurationVar(&o.idleTime, "idle-time", 3*time.Minute, "time budget per server for opening idle connections")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	o.quick = *quick
	o.only = map[string]bool{}
	for _, w := range strings.Split(*only, ",") {
		w = strings.TrimSpace(w)
		if w == "all" {
			for _, x := range workloads {
				o.only[x] = true
			}
			continue
		}
		ok := false
		for _, x := range workloads {
			ok = ok || x == w
		}
		if !ok {
			return nil, fmt.Errorf("bench: unknown workload %q (want %s or all)", w, strings.Join(workloads, ","))
		}
		o.only[w] = true
	}
	if o.nodes != 1 && o.nodes != 3 && o.nodes != 5 {
		return nil, fmt.Errorf("bench: --nodes %d: want 1, 3 or 5", o.nodes)
	}
	for w := range o.only {
		if o.nodes > 1 && w != "1to1" && w != "fanout" && *only != "all" {
			return nil, fmt.Errorf("bench: --nodes %d runs only the 1to1 and fanout workloads, not %s", o.nodes, w)
		}
	}
	o.reps = max(*reps, 1)
	o.senders = 10
	o.drain = 10 * time.Second
	o.backlogN, o.backlogM = max(*backlogUsers, 1), max(*backlogMsgs, 1)
	o.connectN = 2000
	if o.nodes > 1 && *only == "all" && !o.quick {
		o.only = map[string]bool{"1to1": true, "fanout": true}
	}
	if o.quick {
		if *only == "all" {
			o.only = map[string]bool{"1to1": true, "fanout": true}
		}
		// 100 users in all (registration is argon2id, slow on purpose), at
		// about half of what the platform sustains on one loaded CPU.
		o.pairs, o.duration, o.drain = 50, 3*time.Second, 5*time.Second
		o.rates, o.fanSizes, o.fanRates = []float64{1000}, []int{100}, []float64{5000}
	} else {
		o.pairs, o.duration = 1000, 6*time.Second
		o.rates = []float64{500, 1000, 2000, 4000, 6000, 8000, 10000, 12000, 15000, 20000}
		o.fanSizes = []int{100, 1000}
		o.fanRates = []float64{2000, 5000, 10000, 20000, 40000, 60000}
	}
	var err error
	if *pairs > 0 {
		o.pairs = *pairs
	}
	if *dur > 0 {
		o.duration = *dur
	}
	if *rates != "" {
		if o.rates, err = parseFloats(*rates); err != nil {
			return nil, err
		}
	}
	if *fanRates != "" {
		if o.fanRates, err = parseFloats(*fanRates); err != nil {
			return nil, err
		}
	}
	if *fanSizes != "" {
		f, err := parseFloats(*fanSizes)
		if err != nil {
			return nil, err
		}
		o.fanSizes = nil
		for _, v := range f {
			o.fanSizes = append(o.fanSizes, int(v))
		}
	}
	for _, n := range strings.Split(*idleNets, ",") {
		switch n = strings.TrimSpace(n); n {
		case "ws", "tcp":
			o.idleNets = append(o.idleNets, n)
		case "":
		default:
			return nil, fmt.Errorf("bench: unknown --idle-net %q (want ws, tcp)", n)
		}
	}
	f, err := parseFloats(*idle)
	if err != nil {
		return nil, err
	}
	for _, v := range f {
		o.idleSteps = append(o.idleSteps, int(v))
	}
	return o, nil
}

// usersNeeded is how many platform accounts the selected workloads use.
func (o *options) usersNeeded() int {
	n := 0
	if o.only["1to1"] {
		n = max(n, 2*o.pairs)
	}
	if o.only["fanout"] {
		for _, s := range o.fanSizes {
			n = max(n, s)
		}
	}
	if o.only["backlog"] {
		n = max(n, 2*o.backlogN)
	}
	if o.only["connect"] || o.only["idle"] {
		n = max(n, min(o.connectN, 2000))
	}
	return n
}

// Main runs `mqim bench` with args (after the subcommand name).
func Main(args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	return runAll(o, stdout, stderr)
}

// session holds the servers of one benchmark invocation.
type session struct {
	ctx      context.Context // cancelled by SIGINT or SIGTERM
	o        *options
	log      io.Writer
	out      io.Writer
	dir      string
	platform *server
	mosq     *server
	genCPUs  float64
	mu       sync.Mutex
	stopped  bool
}

func (s *session) servers() []*server {
	if s.mosq != nil {
		return []*server{s.platform, s.mosq}
	}
	return []*server{s.platform}
}

func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	if s.platform != nil {
		s.platform.stop(20 * time.Second)
	}
	if s.mosq != nil {
		s.mosq.stop(5 * time.Second)
	}
	os.RemoveAll(s.dir)
}

// ErrInterrupted is runAll's answer to SIGINT or SIGTERM (mqim exits 130).
var ErrInterrupted = errors.New("bench: interrupted")

// runAll starts the servers, runs the selected workloads and prints the tables.
func runAll(o *options, stdout, stderr io.Writer) error {
	if o.bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find mqim binary: %w (pass --bin)", err)
		}
		o.bin = exe
	}
	if lim, err := raiseNoFile(200_000); err != nil || lim < 120_000 {
		fmt.Fprintf(stderr, "bench: open-file limit %d (%v): idle connection counts will be capped\n", lim, err)
	}
	if o.idleProf != "" {
		if err := os.MkdirAll(o.idleProf, 0o755); err != nil {
			return err
		}
		// The platform inherits this and prints where it serves profiles.
		os.Setenv("MQIM_PPROF", "127.0.0.1:0")
	}
	dir, err := os.MkdirTemp("", "mqim-bench-")
	if err != nil {
		return err
	}
	// SIGINT or SIGTERM cancels ctx: the servers stop at once (a workload
	// under way fails fast against them), no further workload starts, and
	// runAll returns ErrInterrupted through the usual deferred clean-up.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s := &session{ctx: ctx, o: o, log: stderr, out: stdout, dir: dir}
	defer s.close()
	defer context.AfterFunc(ctx, func() {
		fmt.Fprintln(stderr, "bench: interrupted, stopping servers")
		s.close()
	})()

	// The generator's heap is mostly long-lived clients; collect less often
	// so that GC on its single CPU stays out of the latency tail.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	needNet := o.only["1to1"] || o.only["fanout"] || o.only["connect"] || o.only["backlog"] || o.only["idle"]
	srvCPU, genCPU := pinning()
	s.genCPUs = float64(runtime.NumCPU())
	if genCPU != "" {
		s.genCPUs = float64(runtime.NumCPU() - 1)
	}
	fmt.Fprintf(stdout, "# mqim bench %s\n\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(stdout, "- started %s on %d CPUs, %s\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), loadavg())
	if srvCPU != "" {
		fmt.Fprintf(stdout, "- servers pinned to CPU %s, generator to CPU %s (taskset)\n", srvCPU, genCPU)
	} else {
		fmt.Fprintln(stdout, "- no CPU pinning (one CPU or no taskset): server and generator share CPUs")
	}
	if needNet {
		if o.baseline {
			if err := requireMosquitto(); err != nil {
				return err
			}
		}
		fmt.Fprintln(stderr, "bench: starting mqim serve")
		if s.platform, err = startPlatform(o.bin, cmp.Or(o.data, dir+"/mqim"), o.nodes, stderr); err != nil {
			return err
		}
		n := o.usersNeeded()
		t := time.Now()
		fmt.Fprintf(stderr, "bench: registering %d users and logging them in (argon2id, ~50 ms each)\n", n)
		if err := s.platform.ensureUsers(n); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: %d users ready in %v\n", n, time.Since(t).Round(time.Second))
		if o.only["fanout"] {
			for _, size := range o.fanSizes {
				if err := s.platform.ensureGroup(fmt.Sprintf("fan%d", size), size); err != nil {
					return err
				}
			}
		}
		if o.baseline {
			if err := os.MkdirAll(dir+"/mosquitto", 0o755); err != nil {
				return err
			}
			if s.mosq, err = startMosquitto(dir+"/mosquitto", stderr); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "- baseline:", mosquittoVersion())
		}
		for _, sv := range s.servers() {
			sv.cpu = srvCPU
			if err := sv.pinAll(srvCPU); err != nil {
				return err
			}
		}
		if err := pin(os.Getpid(), genCPU); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "- platform: %s serve (durability batch: fsync per group commit), MQTT 3.1.1 QoS 1, persistent sessions, %d-byte bodies, %s\n",
			o.bin, o.body, map[bool]string{false: "TCP", true: "WebSocket"}[o.ws])
		if o.nodes > 1 {
			fmt.Fprintf(stdout, "- platform: a local cluster of %d nodes (embedded NATS JetStream, replicas %d, every node fsyncs each log write before it is acknowledged); device i on node i mod %d, so each 1:1 pair spans two nodes; server CPU is the sum of the nodes'\n", o.nodes, o.nodes, o.nodes)
		}
	}
	var summary table
	summary.title = "Summary"
	summary.head = []string{"metric", "mqim", "mosquitto", "mqim/mosquitto"}

	// The workloads in order; each starts only if no signal came.
	var work []func() error
	if o.only["1to1"] {
		work = append(work, func() error { return s.oneToOne(&summary) })
	}
	if o.only["fanout"] {
		for _, size := range o.fanSizes {
			work = append(work, func() error { return s.fanOut(size, &summary) })
		}
	}
	if o.only["connect"] {
		work = append(work, func() error { s.connectRate(&summary); return nil })
	}
	if o.only["backlog"] {
		work = append(work, func() error { s.backlog(&summary); return nil })
	}
	if o.only["idle"] {
		work = append(work, func() error { s.idle(&summary); return nil })
	}
	if needNet {
		work = append(work, func() error { s.close(); return nil })
	}
	if o.only["history"] {
		work = append(work, func() error { return s.history(&summary) })
	}
	for _, w := range work {
		if ctx.Err() != nil {
			return ErrInterrupted
		}
		if err := w(); err != nil {
			if ctx.Err() != nil {
				return errors.Join(ErrInterrupted, err)
			}
			return err
		}
	}
	if ctx.Err() != nil {
		return ErrInterrupted // the tables would be of cut-short runs
	}
	summary.print(stdout)
	fmt.Fprintf(stdout, "\nfinished %s, %s\n", time.Now().UTC().Format(time.RFC3339), loadavg())
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average " + strings.Join(f[:3], " ")
}

func mosquittoVersion() string {
	b, _ := os.ReadFile("/var/lib/dpkg/status")
	st := string(b)
	if i := strings.Index(st, "Package: mosquitto\n"); i >= 0 {
		rest := st[i:]
		if j := strings.Index(rest, "\nVersion: "); j >= 0 {
			v := rest[j+10:]
			if k := strings.IndexByte(v, '\n'); k >= 0 {
				return "Debian mosquitto " + v[:k] + " (persistence off)"
			}
		}
	}
	return "mosquitto (persistence off)"
}

// merge folds the repetitions of one step into one result.
func merge(rs []*result) *result {
	if len(rs) == 0 {
		return nil
	}
	m := &result{server: rs[0].server, spec: rs[0].spec, lat: &hist{}, genCPUs: rs[0].genCPUs}
	for _, r := range rs {
		m.published += r.published
		m.acked += r.acked
		m.pubErrors += r.pubErrors
		m.delivered += r.delivered
		m.carbons += r.carbons
		m.expected += r.expected
		m.lost += r.lost
		m.dups += r.dups
		m.stale += r.stale
		m.dropped += r.dropped
		m.lat.merge(r.lat)
		m.window += r.window
		m.ackSpan += r.ackSpan
		m.serverCPU += r.serverCPU
		m.genCPU += r.genCPU
		if r.connectErr != nil {
			m.connectErr = r.connectErr
		}
	}
	return m
}

// keepsUp is the fan-out bar (its target is throughput): no loss, and at
// least 95% of the offered deliveries per second delivered.
func (o *options) keepsUp(r *result) bool {
	return r != nil && r.connectErr == nil && r.lost == 0 && r.pubErrors == 0 &&
		r.deliveredPerSec() >= 0.95*r.spec.rate*float64(r.spec.users)
}

// ok is the 1:1 bar of the issue: p99 within --max-p99 and no loss.
func (o *options) ok(r *result) bool {
	return r != nil && r.connectErr == nil && r.lost == 0 && r.pubErrors == 0 && r.lat.quantile(0.99) <= o.maxP99
}

// stepped runs spec(rate) for every rate, both servers alternately, reps
// times each, until a server fails the bar; it returns per-rate merged
// results and each server's last passing result.
func (s *session) stepped(name string, rates []float64, spec func(rate float64) runSpec, pass1 func(*result) bool) (rows [][]*result, best map[Kind]*result) {
	best = map[Kind]*result{}
	failed := map[Kind]bool{}
	for _, rate := range rates {
		if s.ctx.Err() != nil {
			break
		}
		per := map[Kind][]*result{}
		// A step passes when most of its repetitions pass on their own; a
		// tie (one load spike on a shared machine) is decided by one more
		// repetition of the tied servers.
		votes := func(k Kind) (pass, fail int) {
			for _, r := range per[k] {
				if pass1(r) {
					pass++
				} else {
					fail++
				}
			}
			return
		}
		for rep := 0; rep < s.o.reps+1; rep++ {
			for _, sv := range s.servers() {
				if failed[sv.kind] {
					continue
				}
				if rep == s.o.reps {
					if p, f := votes(sv.kind); p != f {
						continue
					}
				}
				if s.ctx.Err() != nil {
					break
				}
				r := run(s.ctx, sv, spec(rate))
				r.genCPUs = s.genCPUs
				fmt.Fprintf(s.log, "bench: %s %s\n", name, r)
				if r.connectErr != nil {
					fmt.Fprintf(s.log, "bench: %s: %v\n", sv.kind, r.connectErr)
				}
				per[sv.kind] = append(per[sv.kind], r)
			}
		}
		row := make([]*result, 2)
		for _, sv := range s.servers() {
			m := merge(per[sv.kind])
			if m == nil {
				continue
			}
			row[sv.kind] = m
			// Spikes are outvoted; a lost message never is.
			if p, f := votes(sv.kind); p > f && m.lost == 0 && m.connectErr == nil {
				best[sv.kind] = m
			} else {
				failed[sv.kind] = true
			}
		}
		rows = append(rows, row)
		if failed[Platform] && (s.mosq == nil || failed[Mosquitto]) {
			break
		}
	}
	return rows, best
}

func stepTable(title, rateHead string, rows [][]*result, rateOf func(*result) float64, carbonNote bool) *table {
	t := &table{title: title, head: []string{rateHead, "server", "delivered msg/s", "acks/s", "p50", "p99", "p99.9", "lost", "dup", "CPU-s/100k msgs", "gen CPU"}}
	for _, row := range rows {
		for _, r := range row {
			if r == nil {
				continue
			}
			name := r.server.String()
			if carbonNote && r.server == Platform {
				name += " (+carbons)"
			}
			gen := fmt.Sprintf("%.0f%%", 100*r.genCPU.Seconds()/max(r.window.Seconds(), 1e-9))
			if r.genLimited() {
				gen += " LIMIT"
			}
			lost := strconv.FormatInt(r.lost, 10)
			if r.dropped > 0 {
				lost += fmt.Sprintf(" (%d devices dropped)", r.dropped)
			}
			if r.connectErr != nil {
				lost = "connect failed"
			}
			t.add(fnum(rateOf(r)), name, fnum(r.deliveredPerSec()), fnum(r.acksPerSec()), fdur(r.lat.quantile(0.5)), fdur(r.lat.quantile(0.99)),
				fdur(r.lat.quantile(0.999)), lost, strconv.FormatInt(r.dups, 10), fnum(r.cpuPer100k()), gen)
		}
		if row[0] != nil && len(row) > 1 && row[1] != nil {
			a, b := row[0], row[1]
			t.add("", "ratio", ratio(a.deliveredPerSec(), b.deliveredPerSec()), ratio(a.acksPerSec(), b.acksPerSec()),
				ratio(float64(a.lat.quantile(0.5)), float64(b.lat.quantile(0.5))), ratio(float64(a.lat.quantile(0.99)), float64(b.lat.quantile(0.99))),
				ratio(float64(a.lat.quantile(0.999)), float64(b.lat.quantile(0.999))), "", "", ratio(a.cpuPer100k(), b.cpuPer100k()), "")
		}
	}
	return t
}

func bestRate(best map[Kind]*result, k Kind) float64 {
	if r := best[k]; r != nil {
		return r.spec.rate
	}
	return 0
}

func (s *session) oneToOne(sum *table) error {
	o := s.o
	spec := func(rate float64) runSpec {
		return runSpec{shape: OneToOne, users: 2 * o.pairs, rate: rate, duration: o.duration, drain: o.drain, body: o.body, ws: o.ws}
	}
	rows, best := s.stepped("1to1", o.rates, spec, o.ok)
	t := stepTable(fmt.Sprintf("1:1 chat, %d pairs (each user sends to its peer; open loop)", o.pairs), "offered msg/s", rows,
		func(r *result) float64 { return r.spec.rate }, true)
	t.print(s.out)
	fmt.Fprintln(s.out, "\ndelivered msg/s counts the peer's copy; the platform also delivers a carbon of every message to the sender (2 deliveries per message; carbons are checked for loss/dups but not counted). Latency: scheduled send time to the peer's receipt. CPU-s/100k msgs: server CPU-seconds per 100k messages delivered to peers.")
	pm, mm := bestRate(best, Platform), bestRate(best, Mosquitto)
	sum.add("1:1 max offered rate with p99 <= "+fdur(o.maxP99)+" and no loss (msg/s)", fnum(pm), fnum(mm), ratio(pm, mm))
	if best[Platform] != nil {
		mc := 0.0
		if best[Mosquitto] != nil {
			mc = best[Mosquitto].cpuPer100k()
		}
		sum.add("1:1 server CPU-s per 100k msgs at its max rate", fnum(best[Platform].cpuPer100k()), fnum(mc), ratio(best[Platform].cpuPer100k(), mc))
	}
	// The latency target: at half of mosquitto's maximum rate.
	if s.mosq != nil && mm > 0 && !o.quick {
		half := mm / 2
		rows, _ := s.stepped("1to1-half", []float64{half}, spec, o.ok)
		t := stepTable("1:1 at half of mosquitto's maximum rate", "offered msg/s", rows, func(r *result) float64 { return r.spec.rate }, true)
		t.print(s.out)
		if len(rows) > 0 && rows[0][0] != nil && rows[0][1] != nil {
			a, b := rows[0][0], rows[0][1]
			sum.add(fmt.Sprintf("1:1 p99 at %s msg/s (half mosquitto's max)", fnum(half)), fdur(a.lat.quantile(0.99)), fdur(b.lat.quantile(0.99)),
				ratio(float64(a.lat.quantile(0.99)), float64(b.lat.quantile(0.99))))
			sum.add(fmt.Sprintf("1:1 CPU-s/100k msgs at %s msg/s", fnum(half)), fnum(a.cpuPer100k()), fnum(b.cpuPer100k()), ratio(a.cpuPer100k(), b.cpuPer100k()))
		}
	}
	if o.quick && len(rows) > 0 && rows[0][0] != nil {
		a, b := rows[0][0], rows[0][1]
		if b == nil {
			b = &result{lat: &hist{}}
		}
		sum.add(fmt.Sprintf("1:1 delivered msg/s at %s offered", fnum(o.rates[0])), fnum(a.deliveredPerSec()), fnum(b.deliveredPerSec()), ratio(a.deliveredPerSec(), b.deliveredPerSec()))
		sum.add("1:1 p99", fdur(a.lat.quantile(0.99)), fdur(b.lat.quantile(0.99)), ratio(float64(a.lat.quantile(0.99)), float64(b.lat.quantile(0.99))))
		sum.add("1:1 CPU-s/100k msgs", fnum(a.cpuPer100k()), fnum(b.cpuPer100k()), ratio(a.cpuPer100k(), b.cpuPer100k()))
		if a.lost+a.dups+b.lost+b.dups > 0 || a.connectErr != nil {
			return fmt.Errorf("bench: 1:1 smoke run lost or duplicated messages (mqim lost %d dup %d, mosquitto lost %d dup %d)", a.lost, a.dups, b.lost, b.dups)
		}
	}
	return nil
}

func (s *session) fanOut(size int, sum *table) error {
	o := s.o
	gid := fmt.Sprintf("fan%d", size)
	spec := func(deliveries float64) runSpec {
		return runSpec{shape: FanOut, users: size, senders: o.senders, rate: deliveries / float64(size), duration: o.duration,
			drain: o.drain, body: o.body, ws: o.ws, gid: gid}
	}
	rows, best := s.stepped("fanout"+strconv.Itoa(size), o.fanRates, spec, o.keepsUp)
	t := stepTable(fmt.Sprintf("Group fan-out to %d members (%d senders; every member, the sender included, gets each message)", size, o.senders),
		"offered deliveries/s", rows, func(r *result) float64 { return r.spec.rate * float64(size) }, false)
	t.print(s.out)
	get := func(k Kind) float64 {
		if r := best[k]; r != nil {
			return r.deliveredPerSec()
		}
		return 0
	}
	sum.add(fmt.Sprintf("fan-out to %d: max delivered/s keeping up (>= 95%% of offered, no loss)", size), fnum(get(Platform)), fnum(get(Mosquitto)), ratio(get(Platform), get(Mosquitto)))
	if best[Platform] != nil && best[Mosquitto] != nil {
		a, b := best[Platform].lat.quantile(0.99), best[Mosquitto].lat.quantile(0.99)
		sum.add(fmt.Sprintf("fan-out to %d: p99 at that rate", size), fdur(a), fdur(b), ratio(float64(a), float64(b)))
	}
	if best[Platform] != nil && best[Mosquitto] != nil {
		a, b := best[Platform], best[Mosquitto]
		sum.add(fmt.Sprintf("fan-out to %d: CPU-s per 100k deliveries at max", size), fnum(a.cpuPer100k()), fnum(b.cpuPer100k()), ratio(a.cpuPer100k(), b.cpuPer100k()))
	}
	if o.quick && len(rows) > 0 && rows[0][0] != nil {
		a := rows[0][0]
		if a.lost+a.dups > 0 || a.connectErr != nil {
			return fmt.Errorf("bench: fan-out smoke run lost or duplicated messages (mqim lost %d dup %d)", a.lost, a.dups)
		}
	}
	return nil
}

func (s *session) connectRate(sum *table) {
	t := &table{title: fmt.Sprintf("Connect rate: %d devices, 16 at a time, token auth (platform), CONNECT..SUBACK then disconnect", s.o.connectN),
		head: []string{"server", "connects/s", "p50", "p99", "failed", "server CPU-ms per 1000"}}
	res := map[Kind][]*connectResult{}
	for rep := 0; rep < s.o.reps; rep++ {
		for _, sv := range s.servers() {
			r := runConnect(sv, s.o.connectN, min(s.o.connectN, 2000), 16)
			fmt.Fprintf(s.log, "bench: connect %s %.0f/s failed %d %v\n", sv.kind, r.perSec(), r.failed, r.firstErr)
			res[sv.kind] = append(res[sv.kind], r)
		}
	}
	agg := map[Kind]*connectResult{}
	for k, rs := range res {
		a := &connectResult{server: k, lat: &hist{}}
		for _, r := range rs {
			a.n += r.n
			a.failed += r.failed
			a.elapsed += r.elapsed
			a.serverCPU += r.serverCPU
			a.lat.merge(r.lat)
		}
		agg[k] = a
		t.add(k.String(), fnum(a.perSec()), fdur(a.lat.quantile(0.5)), fdur(a.lat.quantile(0.99)), strconv.Itoa(a.failed), fnum(a.cpuPer1k()))
	}
	t.print(s.out)
	if a, b := agg[Platform], agg[Mosquitto]; a != nil {
		bv, bc := 0.0, 0.0
		if b != nil {
			bv, bc = b.perSec(), b.cpuPer1k()
		}
		sum.add("connects/s (token auth + subscribe)", fnum(a.perSec()), fnum(bv), ratio(a.perSec(), bv))
		sum.add("server CPU-ms per 1000 connects", fnum(a.cpuPer1k()), fnum(bc), ratio(a.cpuPer1k(), bc))
	}
}

func (s *session) backlog(sum *table) {
	o := s.o
	t := &table{title: fmt.Sprintf("Offline backlog: %d users with persistent sessions, %d messages each queued while offline, then reconnect and drain", o.backlogN, o.backlogM),
		head: []string{"server", "restart", "ingest msg/s (acked)", "drain time", "drain msg/s", "lost", "dup", "out of order", "server CPU-s in drain", "note"}}
	get := map[string]float64{}
	for _, restart := range []bool{false, true} {
		for _, sv := range s.servers() {
			if restart && sv.kind == Mosquitto {
				t.add(sv.kind.String(), "yes", "-", "-", "-", "-", "-", "-", "-", "n/a: persistence off, a restart loses every queued message by design")
				continue
			}
			r := runBacklog(sv, o.backlogN, o.backlogM, restart, 120*time.Second)
			ing := float64(r.acked) / max(r.ingest.Seconds(), 1e-9)
			dr := float64(r.delivered) / max(r.drain.Seconds(), 1e-9)
			fmt.Fprintf(s.log, "bench: backlog %s restart=%v ingest %.0f/s drain %v lost %d dup %d out of order %d %s\n", sv.kind, restart, ing, r.drain, r.lost, r.dups, r.outOfOrder, r.note)
			note := r.note
			if restart {
				note = strings.TrimSpace(note + " restart took " + fdur(r.restartTime))
			}
			t.add(sv.kind.String(), yesNo(restart), fnum(ing), fdur(r.drain), fnum(dr), strconv.FormatInt(r.lost, 10), strconv.FormatInt(r.dups, 10), strconv.FormatInt(r.outOfOrder, 10), fnum(r.serverCPU.Seconds()), note)
			key := fmt.Sprintf("%v-%v", sv.kind, restart)
			get[key+"-ing"], get[key+"-dr"] = ing, dr
		}
	}
	t.print(s.out)
	fmt.Fprintln(s.out, "\nThe platform stores each message durably before the PUBACK and delivers it from history to each device session's cursor (also a carbon to the sender's own feed).")
	sum.add("backlog ingest msg/s (100 publishers, 100 in flight each)", fnum(get["mqim-false-ing"]), fnum(get["mosquitto-false-ing"]), ratio(get["mqim-false-ing"], get["mosquitto-false-ing"]))
	sum.add("backlog drain msg/s, no restart", fnum(get["mqim-false-dr"]), fnum(get["mosquitto-false-dr"]), ratio(get["mqim-false-dr"], get["mosquitto-false-dr"]))
	sum.add("backlog drain msg/s after a restart", fnum(get["mqim-true-dr"]), "n/a", "-")
}

func (s *session) idle(sum *table) {
	for _, n := range s.o.idleNets {
		s.idleNet(sum, n == "tcp")
	}
}

// idleNet measures idle connections over one transport.
func (s *session) idleNet(sum *table, tcp bool) {
	name := map[bool]string{false: "WebSocket", true: "TCP"}[tcp]
	t := &table{title: "Idle " + name + " connections (MQTT 3.1.1 CONNECT + SUBSCRIBE to the inbox, then silent; sources spread over 127.0.0.2-9)",
		head: []string{"server", "connections", "RSS", "RSS per connection", "after 3 GCs", "goroutines", "goroutines per connection", "time to open"}}
	// Each connection costs one descriptor in the generator and one in the
	// server, and both inherit this process's limit.
	steps := s.o.idleSteps
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && len(steps) > 0 {
		capN := int(rl.Cur) - 1500
		var capped []int
		for _, n := range steps {
			if n > capN {
				fmt.Fprintf(s.out, "\nidle: %d connections do not fit the open-file limit %d (raising it needs CAP_SYS_RESOURCE); measuring %d instead\n", n, rl.Cur, capN)
				capped = append(capped, capN)
				break
			}
			capped = append(capped, n)
		}
		steps = capped
	}
	per := map[Kind]map[int]float64{}
	for _, sv := range s.servers() {
		r := runIdle(sv, tcp, steps, min(s.o.connectN, 2000), s.o.idleTime, s.o.idleProf)
		per[sv.kind] = map[int]float64{}
		t.add(sv.kind.String(), "0", fbytes(float64(r.baseRSS)), "", "", strconv.Itoa(r.baseGor), "", "")
		for _, p := range r.points {
			g, gp := "-", "-"
			if p.goroutines >= 0 {
				g, gp = strconv.Itoa(p.goroutines), fnum(p.gorPerConn)
			}
			gc := "-"
			if p.rssGC > 0 {
				gc = fbytes(p.rssGCPerConn)
			}
			t.add(sv.kind.String(), strconv.Itoa(p.conns), fbytes(float64(p.rss)), fbytes(p.rssPerConn), gc, g, gp, fdur(p.connectDur))
			per[sv.kind][p.conns] = p.rssPerConn
		}
		if r.stopNote != "" {
			fmt.Fprintf(s.out, "\n%s: %s\n", sv.kind, r.stopNote)
		}
		// Give the server a moment to reap the closed connections.
		time.Sleep(2 * time.Second)
	}
	t.print(s.out)
	for _, n := range steps {
		a, b := per[Platform][n], per[Mosquitto][n]
		if a == 0 && b == 0 {
			continue
		}
		sum.add(fmt.Sprintf("idle %s RSS per connection at %d", name, n), fbytes(a), fbytes(b), ratio(a, b))
	}
}

func (s *session) history(sum *table) error {
	o := s.o
	fmt.Fprintf(s.log, "bench: history: building a store of up to %d messages for at most %v\n", o.histSize, o.histTime)
	dir, err := os.MkdirTemp("", "mqim-bench-history-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r, err := runHistory(s.ctx, dir, o.histSize, o.histTime, 20*time.Second, 5000)
	if err != nil {
		return errors.Join(errors.New("bench: history"), err)
	}
	t := &table{title: "History store (in process, history.Badger over kvstore; 64 concurrent appenders)",
		head: []string{"stored messages", "build time", "ingest msg/s, no fsync", "ingest msg/s, fsync per batch", "conversation length", "page of 50 p50", "p99", "p99.9", "max"}}
	t.add(strconv.Itoa(r.stored), fdur(r.buildTime), fnum(r.ingestNoSync), fnum(r.ingestFsync), strconv.Itoa(r.convLen),
		fdur(r.pageP50), fdur(r.pageP99), fdur(r.pageP999), fdur(r.pageMax))
	t.print(s.out)
	if r.stored < o.histSize {
		fmt.Fprintf(s.out, "\nThe store reached %d of the %d messages asked for within %v.\n", r.stored, o.histSize, o.histTime)
	}
	sum.add(fmt.Sprintf("history page of 50, p99, store of %d msgs", r.stored), fdur(r.pageP99), "n/a", "-")
	sum.add("history ingest msg/s (fsync per group commit)", fnum(r.ingestFsync), "n/a", "-")
	return nil
}
