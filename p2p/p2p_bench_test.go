package p2p

import (
	"bytes"
	"io"
	"net"
	"sort"
	"testing"
	"time"
)

// benchSize is what each benchmark iteration moves.
const benchSize = 32 << 20

// BenchmarkTransferPion moves benchSize bytes from one pion peer to another
// over loopback through the whole stack (filexfer requests, SCTP, DTLS,
// SHA-256 on both ends), one file per iteration, and reports the
// offer-to-open time of new sessions (ms-open-p50, ms-open-max) measured
// before the timed part.
//
//	go test -run '^$' -bench . -benchtime 4x ./p2p/
func BenchmarkTransferPion(b *testing.B) {
	n := newTestNet(b, netOptions{})
	var opens []time.Duration
	for range 10 {
		start := time.Now()
		s := dial(b, n.alice, "bob")
		opens = append(opens, time.Since(start))
		s.Close()
	}
	sort.Slice(opens, func(i, j int) bool { return opens[i] < opens[j] })
	s := dial(b, n.alice, "bob")
	data := randomBytes(benchSize, 9)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		info, err := s.Engine().SendFile("bench", "", bytes.NewReader(data), benchSize)
		if err != nil {
			b.Fatal(err)
		}
		waitDone(b, 60*time.Second, n.alice, n.bob, info.ID, nil)
	}
	b.StopTimer()
	b.ReportMetric(float64(opens[len(opens)/2].Microseconds())/1000, "ms-open-p50")
	b.ReportMetric(float64(opens[len(opens)-1].Microseconds())/1000, "ms-open-max")
}

// BenchmarkTCPBaseline copies the same bytes over a loopback TCP socket:
// the ceiling a transport on this machine could reach.
func BenchmarkTCPBaseline(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(io.Discard, c)
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	data := randomBytes(benchSize, 9)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
