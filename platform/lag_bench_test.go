package platform_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// BenchmarkGroupLagWithStalledMember measures how late a healthy group member
// receives messages while another member's device has stopped reading,
// against the same run without the stalled device (the baseline).
//
//	go test -run '^$' -bench GroupLag -benchtime 2000x ./platform/
func BenchmarkGroupLagWithStalledMember(b *testing.B) {
	for _, stalled := range []bool{false, true} {
		b.Run(fmt.Sprintf("stalled=%v", stalled), func(b *testing.B) {
			s := imtest.Start(b, "")
			tok := s.User("alice")
			s.User("bob")
			s.User("carol")
			s.MustAPI(201, "POST", "/api/v1/groups", tok, map[string]any{"id": "g", "members": []string{"bob", "carol"}}, nil)
			if stalled {
				raw, code, err := imtest.DialRaw5(s.MQTT, "bob:stalled", "bob", imtest.Password)
				if err != nil || code != 0 {
					b.Fatalf("%#x %v", code, err)
				}
				defer raw.Close()
				raw.Subscribe("im/u/bob/#") // and never reads again
			}
			var mu sync.Mutex
			var lags []time.Duration
			carol := s.MustConnect("carol", imtest.ClientOpts{NoSub: true})
			carol.Subscribe("im/u/carol/#", 1, func(_ paho.Client, m paho.Message) {
				var e envelope.Message
				if json.Unmarshal(m.Payload(), &e) == nil && e.Seq > 0 {
					var sent int64
					fmt.Sscan(e.Body, &sent)
					mu.Lock()
					lags = append(lags, time.Since(time.Unix(0, sent)))
					mu.Unlock()
				}
			}).Wait()
			alice := s.MustConnect("alice", imtest.ClientOpts{NoSub: true})
			pad := strings.Repeat("x", 4<<10)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				alice.Publish("im/g/g", 1, fmt.Sprintf(`{"body":"%d %s"}`, time.Now().UnixNano(), pad))
			}
			imtest.Eventually(b, "all deliveries", 60*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(lags) >= b.N
			})
			b.StopTimer()
			sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
			q := func(p float64) float64 { return float64(lags[int(p*float64(len(lags)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(1), "max-ms")
		})
	}
}
