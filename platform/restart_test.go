package platform_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// TestRestartKeepsEverything: users, groups, history, sessions and retained
// presence survive a restart on the same data dir, and messages queued for an
// offline device before the restart arrive after it.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s1 := imtest.Start(t, dir)
	tok := s1.User("alice")
	s1.User("bob")
	s1.MustAPI(201, "POST", "/api/v1/groups", tok, map[string]any{"id": "pair", "members": []string{"bob"}}, nil)

	bob, err := s1.Connect("bob", imtest.ClientOpts{})
	if err != nil {
		t.Fatal(err)
	}
	bob.Disconnect(100)
	alice, err := s1.Connect("alice", imtest.ClientOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		alice.Publish("im/u/bob/dm/alice", 1, fmt.Sprintf("dm %d", i))
		alice.Publish("im/g/pair", 1, fmt.Sprintf("group %d", i))
	}
	alice.Publish("im/presence/alice", 1, `{"status":"away","text":"lunch"}`)
	alice.WaitFor("im/presence/alice", 2) // online, then away
	alice.Disconnect(100)
	s1.Close()

	s2 := imtest.Start(t, dir)
	// Users and tokens (the signing key persists).
	s2.MustAPI(200, "GET", "/api/v1/me", tok, nil, nil)
	var groups struct{ Groups []struct{ ID string } }
	s2.MustAPI(200, "GET", "/api/v1/groups", s2.Login("bob"), nil, &groups)
	if len(groups.Groups) != 1 || groups.Groups[0].ID != "pair" {
		t.Fatalf("groups after restart: %+v", groups)
	}
	// The offline session's queue survives: bob resumes without resubscribing.
	bob = s2.MustConnect("bob", imtest.ClientOpts{NoSub: true})
	imtest.Eventually(t, "queued messages after restart", 10*time.Second, func() bool {
		return len(bob.Envelopes("im/u/bob/dm/alice")) >= 3 && len(bob.Envelopes("im/u/bob/g/pair")) >= 3
	})
	got := bySeq(bob.Envelopes("im/u/bob/dm/alice"))
	for i, m := range got[:3] {
		if m.Body != fmt.Sprintf("dm %d", i+1) {
			t.Fatalf("dm %d after restart: %+v", i, m)
		}
	}
	// History and sequence continue where they stopped.
	var page struct{ Messages []envelope.Message }
	s2.MustAPI(200, "GET", "/api/v1/history/dm/bob", tok, nil, &page)
	if len(page.Messages) != 3 || page.Messages[0].Seq != 3 {
		t.Fatalf("history after restart: %+v", page.Messages)
	}
	alice = s2.MustConnect("alice", imtest.ClientOpts{})
	alice.Publish("im/u/bob/dm/alice", 1, "dm 4")
	imtest.Eventually(t, "dm 4", 5*time.Second, func() bool { return len(bob.Envelopes("im/u/bob/dm/alice")) >= 4 })
	if m := bySeq(bob.Envelopes("im/u/bob/dm/alice"))[3]; m.Seq != 4 {
		t.Fatalf("seq after restart: %+v", m)
	}
	// Retained presence is there for a newcomer, with alice's current state.
	watcher := s2.MustConnect("bob", imtest.ClientOpts{Device: "watch", Clean: true})
	imtest.Eventually(t, "retained presence of alice", 5*time.Second, func() bool {
		for _, m := range watcher.Messages("im/presence/alice") {
			var p envelope.Presence
			if json.Unmarshal(m.Payload, &p) == nil && p.Status == "online" {
				return true
			}
		}
		return false
	})
}

func TestPresenceAcrossDevices(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	s.User("bob")
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	last := func() envelope.Presence {
		ms := bob.Messages("im/presence/alice")
		var p envelope.Presence
		if len(ms) > 0 {
			json.Unmarshal(ms[len(ms)-1].Payload, &p)
		}
		return p
	}
	waitStatus := func(want string) {
		t.Helper()
		imtest.Eventually(t, "alice "+want, 5*time.Second, func() bool { return last().Status == want })
	}
	phone, err := s.Connect("alice", imtest.ClientOpts{Device: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus("online")
	laptop, err := s.Connect("alice", imtest.ClientOpts{Device: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	laptop.Publish("im/presence/alice", 1, `{"status":"away","text":"in a meeting"}`)
	waitStatus("away")
	if p := last(); p.Text != "in a meeting" || p.User != "alice" {
		t.Fatalf("away presence: %+v", p)
	}
	n := len(bob.Messages("im/presence/alice"))
	phone.Disconnect(100) // one device left: still not offline
	laptop.Publish("im/presence/alice", 1, `{"status":"online"}`)
	waitStatus("online")
	if got := bob.Messages("im/presence/alice")[n:]; len(got) != 1 {
		t.Fatalf("presence changes after one device left: %d", len(got))
	}
	// An abrupt disconnect of the last device (no DISCONNECT packet) is offline.
	for _, cl := range s.Broker.Server.Clients.GetAll() {
		if cl.ID == "alice:laptop" {
			cl.Net.Conn.Close()
		}
	}
	waitStatus("offline")
	var pr struct{ Presence map[string]envelope.Presence }
	s.MustAPI(200, "GET", "/api/v1/presence?users=alice,bob,nobody", s.Login("bob"), nil, &pr)
	if pr.Presence["alice"].Status != "offline" || pr.Presence["bob"].Status != "online" {
		t.Fatalf("GET /presence: %+v", pr)
	}
}
