package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/kvstore"
)

// historyStore is a history.Badger over its own Badger database in dir.
type historyStore struct {
	*history.Badger
	close func()
}

func openHistory(dir string, fsync bool) (*historyStore, error) {
	db, err := kvstore.Open(dir, kvstore.Options{SyncWrites: fsync}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	s, err := history.OpenBadger(db, history.BadgerOptions{})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &historyStore{Badger: s, close: func() { s.Close(); db.Close() }}, nil
}

// histConvs is how many 1:1 conversations the large store spreads over;
// pages are read from conversation 0, which gets a 1/histConvs share.
const histConvs = 1000

func histReq(i int, body string) history.AppendRequest {
	c := i % histConvs
	a, b := fmt.Sprintf("h%04da", c), fmt.Sprintf("h%04db", c)
	return history.AppendRequest{Conv: history.DM(a, b),
		Msg:        envelope.Message{From: a, To: b, Type: "text", Body: body},
		Recipients: []string{b, a}}
}

// ingest appends with 64 concurrent publishers until n messages or the
// deadline (or ctx's end), and returns how many it appended.
func ingest(ctx context.Context, s *historyStore, start, n int, until time.Time, body string) (int, error) {
	var done atomic.Int64
	var firstErr firstError
	// In order until n, the deadline, ctx's end or the first error (the
	// clock and ctx are read every 256 messages).
	jobs := func(yield func(int) bool) {
		for i := start; i < start+n; i++ {
			if i%256 == 0 && (time.Now().After(until) || ctx.Err() != nil || firstErr.get() != nil) {
				return
			}
			if !yield(i) {
				return
			}
		}
	}
	pool(64, jobs, func(i int) {
		if _, err := s.Append(ctx, histReq(i, body)); err != nil {
			firstErr.set(err)
			return
		}
		done.Add(1)
	})
	return int(done.Load()), firstErr.get()
}

// historyResult is what the in-process history run measured.
type historyResult struct {
	stored                              int
	buildTime                           time.Duration
	ingestNoSync                        float64 // msgs/s while building (durability none)
	ingestFsync                         float64 // msgs/s with fsync per group commit
	convLen                             int
	pageP50, pageP99, pageP999, pageMax time.Duration
	pages                               int
}

const histBody = "a history benchmark message of about sixty bytes, like a chat line"

// runHistory builds a store of up to target messages within budget, then
// reads random pages of 50 from one conversation, then measures durable
// ingest on a fresh store for ingestFor.
func runHistory(ctx context.Context, dir string, target int, budget, ingestFor time.Duration, pages int) (*historyResult, error) {
	res := &historyResult{}
	s, err := openHistory(dir+"/large", false)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	n, err := ingest(ctx, s, 0, target, t0.Add(budget), histBody)
	res.buildTime = time.Since(t0)
	res.stored = n
	res.ingestNoSync = float64(n) / res.buildTime.Seconds()
	if err != nil {
		s.close()
		return nil, err
	}
	res.convLen = (n + histConvs - 1) / histConvs
	h := &hist{}
	conv := histReq(0, "").Conv
	rng := rand.New(rand.NewPCG(1, 2))
	var maxD time.Duration
	for i := 0; i < pages && ctx.Err() == nil; i++ {
		before := uint64(1 + rng.IntN(res.convLen+1))
		t := time.Now()
		if _, _, err := s.Page(ctx, conv, before, 50); err != nil {
			s.close()
			return nil, err
		}
		d := time.Since(t)
		h.record(d)
		maxD = max(maxD, d)
	}
	res.pages = pages
	res.pageP50, res.pageP99, res.pageP999, res.pageMax = h.quantile(0.5), h.quantile(0.99), h.quantile(0.999), maxD
	s.close()

	d, err := openHistory(dir+"/durable", true)
	if err != nil {
		return nil, err
	}
	defer d.close()
	t1 := time.Now()
	m, err := ingest(ctx, d, 0, 1<<30, t1.Add(ingestFor), histBody)
	res.ingestFsync = float64(m) / time.Since(t1).Seconds()
	return res, err
}
