package p2p

import (
	"bytes"
	"io"
	"net"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/mqim/mqim/filexfer"
)

// benchSize is what each benchmark iteration moves.
const benchSize = 32 << 20

// BenchmarkTransferPion moves benchSize bytes from one pion peer to another
// over loopback through the whole stack (filexfer requests, SCTP, DTLS,
// SHA-256 on both ends), one file per iteration, and reports the
// offer-to-open time of new sessions (ms-open-p50, ms-open-max) measured
// before the timed part. It runs with TuneGC, as the CLI does.
//
//	go test -run '^$' -bench . -benchtime 4x ./p2p/
func BenchmarkTransferPion(b *testing.B) {
	defer TuneGC()()
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

// BenchmarkRawDataChannel moves benchSize bytes per iteration over one pion
// data channel between two peer connections on loopback, with the same
// Settings, message size and backpressure as a transfer but no protocol:
// no requests, no SHA-256, no sink. It is the ceiling BenchmarkTransferPion
// can reach on this machine, next to the TCP baseline. Both run with
// TuneGC, as the CLI does.
func BenchmarkRawDataChannel(b *testing.B) {
	defer TuneGC()()
	s := LoopbackSettings()
	s.fill()
	api := s.api()
	a, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	z, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	defer z.Close()
	// In-process signalling: candidates go straight across.
	a.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = z.AddICECandidate(c.ToJSON())
		}
	})
	z.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = a.AddICECandidate(c.ToJSON())
		}
	})
	// The receiver only counts; it wakes the benchmark once per iteration.
	var got atomic.Int64
	iterDone := make(chan struct{}, 1)
	z.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			if n := got.Add(int64(len(m.Data))); n >= benchSize {
				got.Add(-benchSize)
				iterDone <- struct{}{}
			}
		})
	})
	dc, err := a.CreateDataChannel("raw", nil)
	if err != nil {
		b.Fatal(err)
	}
	open := make(chan struct{})
	dc.OnOpen(func() { close(open) })
	offer, err := a.CreateOffer(nil)
	if err != nil {
		b.Fatal(err)
	}
	must(b, a.SetLocalDescription(offer))
	must(b, z.SetRemoteDescription(offer))
	answer, err := z.CreateAnswer(nil)
	if err != nil {
		b.Fatal(err)
	}
	must(b, z.SetLocalDescription(answer))
	must(b, a.SetRemoteDescription(answer))
	select {
	case <-open:
	case <-time.After(10 * time.Second):
		b.Fatal("data channel did not open")
	}
	ch := newDataChannel(dc, s)
	msg := make([]byte, filexfer.DefaultChunkSize)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		go func() {
			for sent := 0; sent < benchSize; sent += len(msg) {
				if err := ch.Send(msg); err != nil {
					b.Error(err)
					return
				}
			}
		}()
		select {
		case <-iterDone:
		case <-time.After(60 * time.Second):
			b.Fatalf("stalled after %d bytes", got.Load())
		}
	}
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
