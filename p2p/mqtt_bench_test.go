package p2p

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/imtest"
)

// BenchmarkOfferToOpenMQTT measures offer-to-open (Dial: OFFER through the
// server, ANSWER, OK, trickled candidates, ICE, DTLS, SCTP, data channel
// open) between two pion peers signalling over a real in-process server,
// while 10, 100 and 500 other users sit connected and idle (inbox and
// presence subscriptions, as browsers have). It reports p50 and p99 over
// b.N sessions; flat numbers mean signalling cost does not grow with the
// number of users online.
//
//	go test -run '^$' -bench OfferToOpenMQTT -benchtime 100x ./p2p/
func BenchmarkOfferToOpenMQTT(b *testing.B) {
	// One server for every step: a sub-benchmark runs more than once, and
	// each idle account costs a password KDF to create.
	srv := imtest.Start(b, "")
	srv.User("alice")
	srv.User("bob")
	mqttPeer(b, srv, "bob", 10*time.Second)
	alice := mqttPeer(b, srv, "alice", 10*time.Second)
	dial(b, alice.endpoint, "bob").Close() // warm up
	online := 0
	for _, idle := range []int{10, 100, 500} {
		idleUsers(b, srv, online, idle)
		online = idle
		b.Run(fmt.Sprintf("idle=%d", idle), func(b *testing.B) {
			opens := make([]time.Duration, 0, b.N)
			for range b.N {
				start := time.Now()
				s := dial(b, alice.endpoint, "bob")
				opens = append(opens, time.Since(start))
				s.Close()
			}
			sort.Slice(opens, func(i, j int) bool { return opens[i] < opens[j] })
			pct := func(p float64) float64 {
				return float64(opens[min(len(opens)-1, int(p*float64(len(opens))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "ms-open-p50")
			b.ReportMetric(pct(0.99), "ms-open-p99")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// idleUsers creates users from..to-1 and connects one device each (token
// auth, so only the account creation pays the password KDF).
func idleUsers(b *testing.B, srv *imtest.Server, from, to int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, to-from)
	sem := make(chan struct{}, 8)
	for i := from; i < to; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			u := fmt.Sprintf("idle%04d", i)
			if err := srv.Platform.Accounts.Create(u, imtest.Password); err != nil {
				errs <- err
				return
			}
			tok, err := srv.Platform.Accounts.IssueToken(u)
			if err != nil {
				errs <- err
				return
			}
			c, err := srv.Connect(u, imtest.ClientOpts{Password: tok.Token, Clean: true})
			if err != nil {
				errs <- err
				return
			}
			b.Cleanup(func() { c.Disconnect(0) })
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
