package bench

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/internal/imtest"
)

// BenchmarkPlatform1to1 drives an in-process platform (durability batch)
// with the 1:1 workload, so that a CPU profile shows the server's hot path:
//
//	MQIM_BENCH_PROFILE=/tmp/p go test -run '^$' -bench Platform1to1 -benchtime 1x -o /tmp/bench.test ./bench
//	go tool pprof -top /tmp/bench.test /tmp/p.cpu   (also /tmp/p.mutex, /tmp/p.block)
//
// The profiles cover only the load, not the set-up (registration runs
// argon2id, which would swamp them). The generator runs in the same process;
// pprof's -focus/-ignore separate the two. MQIM_BENCH_RATE and
// MQIM_BENCH_PAIRS change the load.
func BenchmarkPlatform1to1(b *testing.B) {
	srv := imtest.Start(b, "", func(c *config.Config) {
		c.Durability = "batch"
		c.Limits = config.Limits{} // as in mqim bench: one host simulates every user
	})
	s := &server{kind: Platform, dir: b.TempDir(), http: srv.HTTPAddr.String(), mqtt: srv.MQTTAddr.String(),
		tokens: map[string]string{}, expires: map[string]int64{}}
	pairs, rate := envInt("MQIM_BENCH_PAIRS", 100), envInt("MQIM_BENCH_RATE", 2000)
	if err := s.ensureUsers(2 * pairs); err != nil {
		b.Fatal(err)
	}
	if p := os.Getenv("MQIM_BENCH_PROFILE"); p != "" {
		f, err := os.Create(p + ".cpu")
		if err != nil {
			b.Fatal(err)
		}
		runtime.SetMutexProfileFraction(10)
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		pprof.StartCPUProfile(f)
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
			for _, name := range []string{"mutex", "block"} {
				if f, err := os.Create(p + "." + name); err == nil {
					pprof.Lookup(name).WriteTo(f, 0)
					f.Close()
				}
			}
		}()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := run(b.Context(), s, runSpec{shape: OneToOne, users: 2 * pairs, rate: float64(rate), duration: 10 * time.Second, drain: 10 * time.Second, body: 100})
		if r.connectErr != nil {
			b.Fatal(r.connectErr)
		}
		b.ReportMetric(r.deliveredPerSec(), "msgs/s")
		b.ReportMetric(float64(r.lat.quantile(0.99).Microseconds()), "p99-µs")
		b.ReportMetric(float64(r.lost), "lost")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkHistoryPage50 reads a page of 50 from one conversation of a store
// holding MQIM_BENCH_HISTORY messages (default 200k) over 1000
// conversations. `mqim bench --workload history` builds a larger store.
func BenchmarkHistoryPage50(b *testing.B) {
	s, err := openHistory(b.TempDir(), false)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	n := envInt("MQIM_BENCH_HISTORY", 200_000)
	got, err := ingest(b.Context(), s, 0, n, time.Now().Add(time.Hour), histBody)
	if err != nil || got != n {
		b.Fatalf("built %d of %d: %v", got, n, err)
	}
	conv := histReq(0, "").Conv
	convLen := n / histConvs
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := uint64(1 + (i*7919)%(convLen+1))
		if _, _, err := s.Page(ctx, conv, before, 50); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHistoryIngest appends with 64 concurrent publishers, with fsync
// per group commit (the platform's default durability) and without.
func BenchmarkHistoryIngest(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run("fsync="+strconv.FormatBool(fsync), func(b *testing.B) {
			s, err := openHistory(b.TempDir(), fsync)
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			b.ResetTimer()
			if _, err := ingest(b.Context(), s, 0, b.N, time.Now().Add(time.Hour), histBody); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
