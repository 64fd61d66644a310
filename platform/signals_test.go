package platform_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

func TestReceiptsMoveReadMarkerAndUnread(t *testing.T) {
	s := imtest.Start(t, "")
	atok := s.User("alice")
	btok := s.User("bob")
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	for i := 1; i <= 4; i++ {
		alice.Publish("im/u/bob/dm/alice", 1, fmt.Sprintf("m%d", i))
	}
	bob.WaitFor("im/u/bob/dm/alice", 4)
	type conv struct {
		ID     string
		Unread uint64
		Read   uint64
		Last   *envelope.Message
	}
	var cs struct{ Conversations []conv }
	s.MustAPI(200, "GET", "/api/v1/conversations", btok, nil, &cs)
	if len(cs.Conversations) != 1 || cs.Conversations[0].ID != "dm:alice" || cs.Conversations[0].Unread != 4 || cs.Conversations[0].Last.Body != "m4" {
		t.Fatalf("bob's conversations: %+v", cs)
	}
	s.MustAPI(200, "GET", "/api/v1/conversations", atok, nil, &cs)
	if cs.Conversations[0].Unread != 0 {
		t.Fatalf("sender's own messages count as unread: %+v", cs)
	}

	bob.Publish("im/u/alice/receipt/bob", 1, `{"type":"read","seq":3}`)
	got := alice.WaitFor("im/u/alice/receipt/bob", 1)
	var rc envelope.Receipt
	json.Unmarshal(got[0].Payload, &rc)
	if rc.Type != "read" || rc.Seq != 3 || rc.From != "bob" || rc.TS == 0 {
		t.Fatalf("receipt delivered as %+v", rc)
	}
	bob.Publish("im/u/alice/receipt/bob", 1, `{"type":"read","seq":2}`) // never moves back
	alice.WaitFor("im/u/alice/receipt/bob", 2)
	s.MustAPI(200, "GET", "/api/v1/conversations", btok, nil, &cs)
	if cs.Conversations[0].Unread != 1 || cs.Conversations[0].Read != 3 {
		t.Fatalf("after read receipt: %+v", cs)
	}
}

func TestTypingAndSignalsAreNeverQueued(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	s.User("bob")
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	bob := s.MustConnect("bob", imtest.ClientOpts{})

	alice.Publish("im/u/bob/typing/alice", 0, `{"state":"typing"}`)
	got := bob.WaitFor("im/u/bob/typing/alice", 1)
	var ty envelope.Typing
	json.Unmarshal(got[0].Payload, &ty)
	if ty.From != "alice" || ty.State != "typing" {
		t.Fatalf("typing: %+v", ty)
	}

	offer := `{"type":"OFFER","from":"mallory","to":"bob","sessionID":"s1","sdp":"v=0..."}`
	alice.Publish("im/u/bob/signal/alice", 1, offer)
	sig := bob.WaitFor("im/u/bob/signal/alice", 1)
	var m map[string]any
	json.Unmarshal(sig[0].Payload, &m)
	if m["from"] != "alice" || m["to"] != "bob" || m["sdp"] != "v=0..." || m["sessionID"] != "s1" {
		t.Fatalf("relayed signal: %v", m)
	}

	// bob goes offline (persistent session): a signal is answered at once
	// with ERROR OFFLINE and is not waiting for him when he returns.
	bob.Disconnect(100)
	imtest.Eventually(t, "bob offline", 5*time.Second, func() bool { return !s.Platform.IM.Online("bob") })
	alice.Publish("im/u/bob/signal/alice", 1, `{"type":"OFFER","sessionID":"s2","sdp":"v=0"}`)
	alice.Publish("im/u/bob/typing/alice", 1, `{"state":"typing"}`)
	back := alice.WaitFor("im/u/alice/signal/bob", 1)
	json.Unmarshal(back[0].Payload, &m)
	if m["type"] != "ERROR" || m["errorType"] != "OFFLINE" || m["sessionID"] != "s2" || m["from"] != "bob" {
		t.Fatalf("offline answer: %v", m)
	}
	alice.Publish("im/u/bob/dm/alice", 1, "marker")
	bob2 := s.MustConnect("bob", imtest.ClientOpts{NoSub: true})
	bob2.WaitFor("im/u/bob/dm/alice", 1)
	if n := len(bob2.Messages("im/u/bob/signal/")) + len(bob2.Messages("im/u/bob/typing/")); n != 0 {
		t.Fatalf("%d signals/typing waited in the offline queue", n)
	}
}

func TestRetriedPublishIsStoredAndDeliveredOnce(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	s.User("bob")
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	phone := s.MustConnect("alice", imtest.ClientOpts{Device: "phone"})
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	alice.Publish("im/u/bob/dm/alice", 1, `{"cid":"same-1","body":"once"}`)
	alice.Publish("im/u/bob/dm/alice", 1, `{"cid":"same-1","body":"once"}`)
	phone.Publish("im/u/bob/dm/alice", 1, `{"cid":"same-1","body":"once"}`) // another device retrying
	alice.Publish("im/u/bob/dm/alice", 1, `{"cid":"other","body":"twice"}`)
	bob.WaitFor("im/u/bob/dm/alice", 2)
	alice.Publish("im/u/bob/dm/alice", 1, `{"cid":"fence","body":"fence"}`)
	bob.WaitFor("im/u/bob/dm/alice", 3)
	if got := bySeq(bob.Envelopes("im/u/bob/dm/alice")); len(got) != 3 || got[0].Body != "once" || got[1].Seq != 2 {
		t.Fatalf("bob got %+v", got)
	}
	var page struct{ Messages []envelope.Message }
	s.MustAPI(200, "GET", "/api/v1/history/dm/alice", s.Login("bob"), nil, &page)
	if len(page.Messages) != 3 {
		t.Fatalf("history holds %d messages", len(page.Messages))
	}
}

// A receipt is about a conversation, and acl decides who may read one: an
// outsider's receipt for a group, or one for a group that does not exist,
// is refused with the error notice and reaches nobody.
func TestReceiptsNeedTheConversation(t *testing.T) {
	s := imtest.Start(t, "")
	for _, u := range []string{"bob", "mallory"} {
		s.User(u)
	}
	s.MustAPI(201, "POST", "/api/v1/groups", s.User("alice"), map[string]any{"id": "team", "members": []string{"bob"}}, nil)
	alice, mallory := s.MustConnect("alice", imtest.ClientOpts{}), s.MustConnect("mallory", imtest.ClientOpts{})
	for _, c := range []struct{ payload, code string }{
		{`{"type":"read","seq":1,"group":"team"}`, "forbidden"},
		{`{"type":"read","seq":1,"group":"nosuch"}`, "not_found"},
	} {
		before := len(mallory.Messages("im/u/mallory/error"))
		mallory.Publish("im/u/alice/receipt/mallory", 1, c.payload)
		got := mallory.WaitFor("im/u/mallory/error", before+1)
		var n envelope.Notice
		json.Unmarshal(got[before].Payload, &n)
		if string(n.Code) != c.code {
			t.Errorf("receipt %s: notice %+v, want %s", c.payload, n, c.code)
		}
	}
	// A receipt that is allowed goes after them on the same path; alice
	// gets it and nothing of the refused two.
	bob := s.MustConnect("bob", imtest.ClientOpts{})
	bob.Publish("im/u/alice/receipt/bob", 1, `{"type":"delivered","seq":1,"group":"team"}`)
	alice.WaitFor("im/u/alice/receipt/bob", 1)
	if got := alice.Messages("im/u/alice/receipt/mallory"); len(got) != 0 {
		t.Fatalf("refused receipts delivered: %v", got)
	}
}
