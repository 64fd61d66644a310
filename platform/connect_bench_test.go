package platform_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/internal/imtest"
)

// BenchmarkConnectLatency measures how long an MQTT 5 CONNECT takes to be
// answered (dial to CONNACK) while many clients connect at once: 16
// workers, each its own user, reconnecting 10 times in a row, with the
// default KDF gate (one slot per CPU, a queue of 4 per CPU, 2 s wait).
// Modes: the password with the verified-password cache off (every CONNECT
// runs argon2id), with it on (the default; the first CONNECT of each user
// runs it, while the others' first ones load the CPU), with it on and
// every user logged in once before (all hits), and an access token (the
// baseline: no KDF). CONNACKs that say
// "busy" (0x89: the gate's queue was full) are counted apart. Run with
//
//	go test ./platform/ -run '^$' -bench BenchmarkConnectLatency -benchtime 1x
func BenchmarkConnectLatency(b *testing.B) {
	for _, mode := range []string{"password, no cache", "password, cache", "password, warm cache", "token"} {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				measureConnects(b, mode)
			}
		})
	}
}

func measureConnects(b *testing.B, mode string) {
	const workers, rounds = 16, 10
	def := config.Default().Limits
	s := imtest.Start(b, "", func(c *imtestConfig) {
		c.Limits.KDFSlots, c.Limits.KDFQueue, c.Limits.KDFWait = def.KDFSlots, def.KDFQueue, def.KDFWait
		if mode != "password, no cache" {
			c.Limits.PasswordCacheTTL, c.Limits.PasswordCacheSize = def.PasswordCacheTTL, def.PasswordCacheSize
		}
	})
	creds := make([]string, workers)
	for w := range creds {
		user := fmt.Sprintf("u%d", w)
		creds[w] = s.User(user)
		if mode != "token" {
			creds[w] = imtest.Password
			// Registration and login verified the password: forget it,
			// so each user's first CONNECT pays the KDF.
			if err := s.Accounts.RevokeAll(user); err != nil {
				b.Fatal(err)
			}
		}
	}
	if mode == "password, warm cache" {
		// Every user logged in once before the load: all of it is hits.
		for w := range creds {
			c, code, err := imtest.DialRaw(s.MQTT, 5, "warm", fmt.Sprintf("u%d", w), creds[w])
			if err != nil || code != 0 {
				b.Fatalf("warm-up: %#x %v", code, err)
			}
			c.Disconnect()
		}
	}
	var mu sync.Mutex
	var first, again []time.Duration // a user's first accepted CONNECT; those after it
	busy := 0
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			user := fmt.Sprintf("u%d", w)
			accepted := false
			for r := 0; r < rounds; r++ {
				start := time.Now()
				c, code, err := imtest.DialRaw(s.MQTT, 5, "bench", user, creds[w])
				d := time.Since(start)
				if err != nil {
					b.Error(err)
					return
				}
				c.Disconnect()
				mu.Lock()
				switch {
				case code == 0 && accepted:
					again = append(again, d)
				case code == 0:
					first, accepted = append(first, d), true
				case code == 0x89:
					busy++
				default:
					b.Errorf("%s: CONNACK %#x", user, code)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(quantile(first, 0.5)), "first_p50_ms")
	b.ReportMetric(ms(quantile(again, 0.5)), "again_p50_ms")
	b.ReportMetric(ms(quantile(again, 0.99)), "again_p99_ms")
	b.ReportMetric(float64(busy), "busy")
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	b.Logf("%-18s %d workers x %d CONNECTs: %d busy (0x89); first accepted per user: p50 %v p99 %v; reconnects (%d): p50 %v p99 %v max %v",
		mode, workers, rounds, busy, r(quantile(first, 0.5)), r(quantile(first, 0.99)),
		len(again), r(quantile(again, 0.5)), r(quantile(again, 0.99)), r(quantile(again, 1)))
}

// quantile is the q-quantile of ds (sorting it); 0 when empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}
