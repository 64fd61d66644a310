package platform_test

import (
	"encoding/json"
	"testing"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

func TestReadReceiptReachesReadersOtherDevices(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	s.User("bob")
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	bobPhone := s.MustConnect("bob", imtest.ClientOpts{Device: "phone"})
	bobLaptop := s.MustConnect("bob", imtest.ClientOpts{Device: "laptop"})
	alice.Publish("im/u/bob/dm/alice", 1, "hi")
	bobPhone.WaitFor("im/u/bob/dm/alice", 1)
	bobPhone.Publish("im/u/alice/receipt/bob", 1, `{"type":"read","seq":1}`)
	got := bobLaptop.WaitFor("im/u/bob/receipt/bob", 1)
	var rc envelope.Receipt
	json.Unmarshal(got[0].Payload, &rc)
	if rc.Type != "read" || rc.Seq != 1 || rc.Peer != "alice" || rc.From != "bob" {
		t.Fatalf("self copy %+v", rc)
	}
	alice.WaitFor("im/u/alice/receipt/bob", 1)
	if len(alice.Messages("im/u/alice/receipt/alice")) != 0 {
		t.Fatal("the peer got the reader's self copy")
	}
}

func TestGroupTyping(t *testing.T) {
	s := imtest.Start(t, "")
	tok := s.User("alice")
	s.User("bob")
	s.User("carol")
	s.MustAPI(201, "POST", "/api/v1/groups", tok, map[string]any{"id": "g", "members": []string{"bob"}}, nil)
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	carol := s.MustConnect("carol", imtest.ClientOpts{})
	alice.Publish("im/g/g/typing", 0, `{"state":"typing"}`)
	got := bob.WaitFor("im/u/bob/typing/alice", 1)
	var ty envelope.Typing
	json.Unmarshal(got[0].Payload, &ty)
	if ty.Group != "g" || ty.From != "alice" || ty.State != "typing" {
		t.Fatalf("group typing %+v", ty)
	}
	carol.Publish("im/g/g/typing", 1, `{"state":"typing"}`)
	carol.WaitFor("im/u/carol/error", 1)
	if len(alice.Messages("im/u/alice/typing/")) != 0 {
		t.Fatal("typing echoed to its sender or leaked from a non-member")
	}
}

func TestSyncFromNow(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	tok := s.User("bob")
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	alice.Publish("im/u/bob/dm/alice", 1, "old")
	bob.WaitFor("im/u/bob/dm/alice", 1)
	var head struct {
		Messages []envelope.Message
		Cursor   string
	}
	s.MustAPI(200, "GET", "/api/v1/sync?since=now", tok, nil, &head)
	if len(head.Messages) != 0 || head.Cursor == "" {
		t.Fatalf("since=now: %+v", head)
	}
	alice.Publish("im/u/bob/dm/alice", 1, "new")
	bob.WaitFor("im/u/bob/dm/alice", 2)
	var page struct{ Messages []envelope.Message }
	s.MustAPI(200, "GET", "/api/v1/sync?since="+head.Cursor, tok, nil, &page)
	if len(page.Messages) != 1 || page.Messages[0].Body != "new" {
		t.Fatalf("after now: %+v", page.Messages)
	}
}
