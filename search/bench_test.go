package search

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/kvstore"
)

// BenchmarkSearch1M (docs/benchmarks.md, "Search"): one history of
// MQIM_SEARCH_BENCH_N messages (default 1,000,000) in 100 groups and 900
// DMs, indexed; then the latency of two-word queries by a user who reads
// every group (p50/p99 printed), and the cost of appending with the index
// following beside appending without one, in the same run. Building the
// index takes minutes, so it runs only as a benchmark:
//
//	go test -run '^$' -bench BenchmarkSearch1M -benchtime 1x -timeout 60m ./search/
func BenchmarkSearch1M(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("MQIM_SEARCH_BENCH_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	dir := b.TempDir()
	c := newCorpus()
	h, closeH := benchHistory(b, filepath.Join(dir, "im"), false, nil)
	start := time.Now()
	fill(b, h, c, n, 64)
	b.Logf("history: %d messages appended in %s", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	x, err := Open(filepath.Join(dir, "search"), h, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := x.CatchUp(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("index: %d messages indexed in %s", n, time.Since(start).Round(time.Millisecond))

	groups := make([]string, 100)
	for i := range groups {
		groups[i] = fmt.Sprint("g", i)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var lat []time.Duration
	hits := 0
	b.ResetTimer()
	for range b.N {
		lat = lat[:0]
		for range 500 {
			q := Query{Words: c.word(rng) + " " + c.word(rng), User: "u0", Groups: groups, Limit: 20}
			t0 := time.Now()
			ms, _, err := x.Search(ctx, q)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			hits += len(ms)
		}
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	b.Logf("two-word queries over %d messages: p50 %s, p99 %s, max %s (%d queries, %.1f hits per page)",
		n, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), len(lat), float64(hits)/float64(len(lat)))
	b.StopTimer()
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	x.Close()
	closeH()

	// Appending: fsync'd group commits (durability: batch), 32 appenders,
	// with the index following (the time until it caught up included)
	// and without.
	const appends = 20000
	for _, withIndex := range []bool{false, true, false, true} {
		sub := filepath.Join(dir, fmt.Sprint("append-", withIndex, "-", time.Now().UnixNano()))
		var wake atomic.Pointer[Index]
		h, closeH := benchHistory(b, filepath.Join(sub, "im"), true, func([]history.Appended) {
			if x := wake.Load(); x != nil {
				x.Wake()
			}
		})
		var x *Index
		if withIndex {
			x, err = Open(filepath.Join(sub, "search"), h, Options{Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			wake.Store(x)
		}
		t0 := time.Now()
		fill(b, h, c, appends, 32)
		if x != nil {
			if err := x.CatchUp(ctx); err != nil {
				b.Fatal(err)
			}
		}
		d := time.Since(t0)
		b.Logf("append %d messages, 32 appenders, fsync per group commit, index %v: %.1f µs per message", appends, withIndex, float64(d.Microseconds())/appends)
		if x != nil {
			x.Close()
		}
		closeH()
	}
}

func benchHistory(b *testing.B, dir string, sync bool, committed func([]history.Appended)) (*history.Badger, func()) {
	db, err := kvstore.Open(dir, kvstore.Options{SyncWrites: sync}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	h, err := history.OpenBadger(db, history.BadgerOptions{Committed: committed})
	if err != nil {
		b.Fatal(err)
	}
	return h, func() { h.Close(); db.Close() }
}

// fill appends n messages of the corpus from workers appenders.
func fill(b *testing.B, h *history.Badger, c *corpus, n, workers int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	per := n / workers
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			count := per
			if w == workers-1 {
				count = n - per*(workers-1)
			}
			for range count {
				req := c.message(rng)
				if _, err := h.Append(context.Background(), req); err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
}

// corpus makes chat-like messages: 6-14 words drawn from a vocabulary of
// 20,000 (Zipf-distributed, as words are), one in ten in Chinese.
type corpus struct {
	words []string
	han   []rune
}

func newCorpus() *corpus {
	rng := rand.New(rand.NewPCG(1, 2))
	c := &corpus{}
	seen := map[string]bool{}
	for len(c.words) < 20000 {
		l := 3 + rng.IntN(7)
		w := make([]byte, l)
		for i := range w {
			w[i] = byte('a' + rng.IntN(26))
		}
		if !seen[string(w)] {
			seen[string(w)] = true
			c.words = append(c.words, string(w))
		}
	}
	for r := rune(0x4E00); r < 0x4E00+3000; r++ {
		c.han = append(c.han, r)
	}
	return c
}

// zipf picks an index below n, small ones far more often.
func zipf(rng *rand.Rand, n int) int {
	for {
		// Inverse of a continuous power law with exponent ~1.
		i := int(float64(n) * (rng.Float64() * rng.Float64() * rng.Float64()))
		if i < n {
			return i
		}
	}
}

// word is a query word: one from the 2,000 most common.
func (c *corpus) word(rng *rand.Rand) string { return c.words[zipf(rng, 2000)] }

func (c *corpus) message(rng *rand.Rand) history.AppendRequest {
	var body []byte
	if rng.IntN(10) == 0 {
		for range 8 + rng.IntN(20) {
			body = append(body, string(c.han[zipf(rng, len(c.han))])...)
		}
	} else {
		for i := range 6 + rng.IntN(9) {
			if i > 0 {
				body = append(body, ' ')
			}
			body = append(body, c.words[zipf(rng, len(c.words))]...)
		}
	}
	from := fmt.Sprint("u", rng.IntN(100))
	m := envelope.Message{From: from, Type: "text", Body: string(body)}
	var conv history.ConvID
	if rng.IntN(10) < 8 {
		m.Group = fmt.Sprint("g", rng.IntN(100))
		conv = history.Group(m.Group)
	} else {
		m.To = fmt.Sprint("u", 100+rng.IntN(9))
		conv = history.DM(from, m.To)
	}
	return history.AppendRequest{Conv: conv, Msg: m, Recipients: []string{from}}
}
