package platform_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/internal/checkfor"
	"github.com/mqim/mqim/internal/imtest"
)

// TestGroupFanOutUnderLoad: ten members publish to a group of forty as fast
// as pipelining allows, each also receiving; every member gets every
// message (no device session stalls with its window full).
func TestGroupFanOutUnderLoad(t *testing.T) {
	s := imtest.Start(t, "")
	const members, senders, each = 40, 10, 60
	var names []string
	for i := 0; i < members; i++ {
		names = append(names, fmt.Sprintf("m%02d", i))
	}
	tok := s.User(names[0])
	for _, n := range names[1:] {
		s.User(n)
	}
	s.MustAPI(201, "POST", "/api/v1/groups", tok, map[string]any{"id": "load", "members": names[1:]}, nil)
	var mu sync.Mutex
	got := map[string]int{}
	clients := map[string]*imtest.Client{}
	for _, n := range names {
		c := s.MustConnect(n, imtest.ClientOpts{Clean: true, NoSub: true})
		n := n
		if tok := c.Subscribe("im/u/"+n+"/g/load", 1, func(_ paho.Client, m paho.Message) {
			mu.Lock()
			got[n]++
			mu.Unlock()
		}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		clients[n] = c
	}
	var wg sync.WaitGroup
	for i := 0; i < senders; i++ {
		c := clients[names[i]]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var toks []paho.Token
			for k := 0; k < each; k++ {
				toks = append(toks, c.Client.Publish("im/g/load", 1, false, fmt.Sprintf(`{"body":"%d"}`, k)))
			}
			for _, tk := range toks {
				tk.WaitTimeout(10 * time.Second)
			}
		}()
	}
	wg.Wait()
	defer func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("received per member: %v", got)
			mu.Unlock()
		}
	}()
	checkfor.True(t, 20*time.Second, "every member gets every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range names {
			if got[n] < senders*each {
				return false
			}
		}
		return true
	})
}
