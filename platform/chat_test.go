package platform_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

func ids(ms []envelope.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func bySeq(ms []envelope.Message) []envelope.Message {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Seq < ms[j].Seq })
	return ms
}

func TestDirectChatTCPAndWebSocketWithCarbons(t *testing.T) {
	s := imtest.Start(t, "")
	for _, u := range []string{"alice", "bob", "carol"} {
		s.User(u)
	}
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	alice2 := s.MustConnect("alice", imtest.ClientOpts{Device: "phone"})
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	carol := s.MustConnect("carol", imtest.ClientOpts{URL: s.WS})

	alice.Publish("im/u/bob/dm/alice", 1, `{"cid":"c-1","body":"hi bob","from":"mallory"}`)
	got := bob.WaitFor("im/u/bob/dm/alice", 1)
	var m envelope.Message
	if err := json.Unmarshal(got[0].Payload, &m); err != nil {
		t.Fatalf("bob got %q: %v", got[0].Payload, err)
	}
	if m.From != "alice" || m.To != "bob" || m.Body != "hi bob" || m.Seq != 1 || m.ID == "" || m.TS == 0 || m.CID != "c-1" || m.Type != "text" {
		t.Fatalf("stamped envelope wrong: %+v", m)
	}
	// Carbons: both of alice's devices see the stamped copy of what she sent.
	for _, c := range []*imtest.Client{alice, alice2} {
		carbon := c.WaitFor("im/u/alice/dm/bob", 1)
		var cm envelope.Message
		json.Unmarshal(carbon[0].Payload, &cm)
		if cm.ID != m.ID {
			t.Fatalf("carbon %+v differs from delivered %+v", cm, m)
		}
	}

	bob.Publish("im/u/alice/dm/bob", 0, "plain text reply")
	reply := alice.WaitFor("im/u/alice/dm/bob", 2)
	var r envelope.Message
	json.Unmarshal(reply[1].Payload, &r)
	if r.From != "bob" || r.Seq != 2 || r.Body != "plain text reply" {
		t.Fatalf("reply wrong: %+v", r)
	}

	// WebSocket client both ways.
	carol.Publish("im/u/alice/dm/carol", 1, `{"body":"from the browser side"}`)
	alice.WaitFor("im/u/alice/dm/carol", 1)
	alice.Publish("im/u/carol/dm/alice", 1, `{"body":"back to you"}`)
	cm := carol.WaitFor("im/u/carol/dm/alice", 2) // carol's own carbon + alice's message
	if len(cm) != 2 {
		t.Fatalf("carol got %d messages", len(cm))
	}

	// History over REST equals what was delivered, newest first.
	tok := s.Login("bob")
	var page struct {
		Messages []envelope.Message
		More     bool
	}
	s.MustAPI(200, "GET", "/api/v1/history/dm/alice", tok, nil, &page)
	delivered := bySeq(append(bob.Envelopes("im/u/bob/dm/alice"), alice.Envelopes("im/u/alice/dm/bob")[1]))
	want := ids(delivered)
	gotIDs := ids(page.Messages)
	if len(gotIDs) != 2 || gotIDs[0] != want[1] || gotIDs[1] != want[0] || page.More {
		t.Fatalf("history %v (more=%v), delivered %v", gotIDs, page.More, want)
	}
}

func TestGroupOfflineMemberGetsMessagesOnReconnect(t *testing.T) {
	s := imtest.Start(t, "")
	tok := s.User("alice")
	s.User("bob")
	s.User("carol")
	var g struct{ ID string }
	s.MustAPI(201, "POST", "/api/v1/groups", tok, map[string]any{"id": "team", "name": "Team", "members": []string{"bob", "carol"}}, &g)

	alice := s.MustConnect("alice", imtest.ClientOpts{})
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	carol, err := s.Connect("carol", imtest.ClientOpts{})
	if err != nil {
		t.Fatal(err)
	}
	carol.Disconnect(100) // persistent session stays

	for i := 1; i <= 5; i++ {
		alice.Publish("im/g/team", 1, fmt.Sprintf(`{"body":"msg %d"}`, i))
	}
	if n := len(bob.WaitFor("im/u/bob/g/team", 5)); n != 5 {
		t.Fatalf("bob got %d", n)
	}
	alice.WaitFor("im/u/alice/g/team", 5) // the sender's carbon

	carol = s.MustConnect("carol", imtest.ClientOpts{NoSub: true}) // session resumes its subscription
	got := bySeq(carol.Envelopes("im/u/carol/g/team"))
	imtest.Eventually(t, "carol's queued group messages", 10*time.Second, func() bool {
		got = bySeq(carol.Envelopes("im/u/carol/g/team"))
		return len(got) >= 5
	})
	for i, m := range got {
		if m.Seq != uint64(i+1) || m.Group != "team" || m.From != "alice" || m.Body != fmt.Sprintf("msg %d", i+1) {
			t.Fatalf("carol message %d: %+v", i, m)
		}
	}

	var page struct{ Messages []envelope.Message }
	s.MustAPI(200, "GET", "/api/v1/history/g/team?limit=3", s.Login("carol"), nil, &page)
	if len(page.Messages) != 3 || page.Messages[0].Seq != 5 || page.Messages[2].Seq != 3 {
		t.Fatalf("group history page: %+v", page.Messages)
	}
}
