package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a lock-free log-linear latency histogram in microseconds: exact
// below 64 µs, then 32 buckets per power of two (error under 3.2%).
type hist struct {
	b [64 * 48]atomic.Uint64
	n atomic.Uint64
}

const subBits = 5

func bucketOf(us uint64) int {
	if us < 64 {
		return int(us)
	}
	e := bits.Len64(us) - subBits - 1 // us >> e is in [32, 64)
	return 64 + (e-1)*32 + int(us>>e) - 32
}

func bucketValue(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	e := (i-64)/32 + 1
	m := uint64((i-64)%32 + 32)
	// Middle of the bucket.
	return m<<e + (1<<e)/2
}

func (h *hist) record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	i := bucketOf(uint64(us))
	if i >= len(h.b) {
		i = len(h.b) - 1
	}
	h.b[i].Add(1)
	h.n.Add(1)
}

// quantile returns the q-quantile (0 < q <= 1); 0 when empty.
func (h *hist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	want := uint64(q*float64(n) + 0.5)
	if want < 1 {
		want = 1
	}
	var seen uint64
	for i := range h.b {
		seen += h.b[i].Load()
		if seen >= want {
			return time.Duration(bucketValue(i)) * time.Microsecond
		}
	}
	return time.Duration(bucketValue(len(h.b)-1)) * time.Microsecond
}

func (h *hist) merge(o *hist) {
	for i := range o.b {
		if v := o.b[i].Load(); v != 0 {
			h.b[i].Add(v)
		}
	}
	h.n.Add(o.n.Load())
}
