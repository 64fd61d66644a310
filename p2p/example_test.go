package p2p_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/mqim/mqim/filexfer"
	"github.com/mqim/mqim/p2p"
)

// Two users on one machine: alice sends bob a file. In production the
// Signaller publishes on im/u/{to}/signal/{from} over MQTT and the browser
// side runs webclient/src/transfer; here an in-memory hub stands in.
func Example() {
	hub := p2p.NewMemorySignalling()
	defer hub.Close()
	settings := p2p.LoopbackSettings() // both peers on loopback only

	received := make(chan string, 1)
	var sink filexfer.MemSink
	bob := p2p.NewPeer(p2p.Config{
		Self:      "bob",
		Signaller: hub.For("bob"),
		Settings:  &settings,
		Transfer: func(s *p2p.Session) filexfer.Config {
			return filexfer.Config{
				// Ask the user; here: accept everything into memory.
				OnOffer: func(fi filexfer.FileInfo) { go s.Engine().Accept(fi.ID, &sink) },
				OnDone: func(r filexfer.Result) {
					received <- fmt.Sprintf("%s %s (%d bytes): %v", r.Dir, r.File.Name, r.File.Size, r.Err)
				},
			}
		},
	})
	defer bob.Close()
	hub.Register("bob", bob.HandleSignal)

	alice := p2p.NewPeer(p2p.Config{Self: "alice", Signaller: hub.For("alice"), Settings: &settings})
	defer alice.Close()
	hub.Register("alice", alice.HandleSignal)

	s, err := alice.Dial(context.Background(), "bob")
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	body := "hello world\n"
	if _, err := s.Engine().SendFile("hello.txt", "text/plain", strings.NewReader(body), int64(len(body))); err != nil {
		fmt.Println("send:", err)
		return
	}
	fmt.Println(<-received)
	fmt.Printf("%q\n", sink.Bytes())
	// Output:
	// receiving hello.txt (12 bytes): <nil>
	// "hello world\n"
}
