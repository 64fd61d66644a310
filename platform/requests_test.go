package platform_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/internal/imtest"
	"github.com/mqim/mqim/requests"
)

type requestList struct{ Requests []requests.Request }

// requestEvents decodes what c got on its requests topic.
func requestEvents(t *testing.T, c *imtest.Client, user string, n int) []im.RequestEvent {
	t.Helper()
	var out []im.RequestEvent
	for _, m := range c.WaitFor("im/u/"+user+"/requests", n) {
		var ev im.RequestEvent
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			t.Fatalf("request event %s: %v", m.Payload, err)
		}
		out = append(out, ev)
	}
	return out
}

// messagesAt GETs path (history or sync) as the token's user.
func messagesAt(t *testing.T, s *imtest.Server, tok, path string) []envelope.Message {
	t.Helper()
	var page struct{ Messages []envelope.Message }
	s.MustAPI(200, "GET", path, tok, nil, &page)
	return page.Messages
}

// TestMessageRequestsHeld: under dm_policy contacts a stranger's DMs are
// a held request (stored, the sender gets its copy, nothing reaches the
// recipient's inbox or sync; the recipient reads them from history), its
// typing and signals are refused, its group invitations do not make the
// recipient a member; accepting makes the stranger a contact (its DMs then
// arrive) and joins the group; refusing drops a request.
func TestMessageRequestsHeld(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.DMPolicy = "contacts" })
	dtok := s.User("dave")
	etok := s.User("eve")
	btok := s.User("bob")
	ctok := s.User("carol")
	s.MustAPI(200, "POST", "/api/v1/contacts", dtok, map[string]string{"user": "bob"}, nil)
	dave := s.MustConnect("dave", imtest.ClientOpts{})
	eve := s.MustConnect("eve", imtest.ClientOpts{})
	bob := s.MustConnect("bob", imtest.ClientOpts{})

	// Two DMs, over MQTT and HTTP: one request, stored, not delivered.
	eve.Publish("im/u/dave/dm/eve", 1, `{"cid":"e1","body":"hi, stranger here"}`)
	eve.WaitFor("im/u/eve/dm/dave", 1)
	if evs := requestEvents(t, dave, "dave", 1); evs[0].Event != "new" || evs[0].Request.ID != "dm:eve" || !evs[0].Request.Held {
		t.Fatalf("first event %+v", evs[0])
	}
	var sent envelope.Message
	s.MustAPI(200, "POST", "/api/v1/publish", etok, map[string]any{"topic": "im/u/dave/dm/eve", "payload": "second"}, &sent)
	if evs := requestEvents(t, dave, "dave", 2); evs[1].Event != "updated" || evs[1].Request.Count != 2 || evs[1].Request.Preview != "second" {
		t.Fatalf("second event %+v", evs[1])
	}
	var list requestList
	s.MustAPI(200, "GET", "/api/v1/requests", dtok, nil, &list)
	if len(list.Requests) != 1 || list.Requests[0].From != "eve" || list.Requests[0].Kind != "dm" || list.Requests[0].Count != 2 {
		t.Fatalf("dave's requests %+v", list)
	}
	if h, f := messagesAt(t, s, dtok, "/api/v1/history/dm/eve"), messagesAt(t, s, dtok, "/api/v1/sync"); len(h) != 2 || len(f) != 0 {
		t.Fatalf("the held DMs: %d in dave's history (want 2), %d in his sync (want 0)", len(h), len(f))
	}

	// Typing and signals from the stranger: forbidden, MQTT and HTTP.
	var e apiErr
	eve.Publish("im/u/dave/typing/eve", 1, `{"state":"typing"}`)
	var n envelope.Notice
	json.Unmarshal(eve.WaitFor("im/u/eve/error", 1)[0].Payload, &n)
	if n.Code != "forbidden" {
		t.Fatalf("typing notice %+v", n)
	}
	if code, _ := s.API("POST", "/api/v1/publish", etok, map[string]any{"topic": "im/u/dave/signal/eve", "payload": map[string]string{"type": "OFFER", "sessionID": "s"}}, &e); code != 403 {
		t.Fatalf("HTTP signal from a stranger: %d", code)
	}

	// A group invitation: dave is invited, not added; bob, who has eve
	// as a contact, is added.
	s.MustAPI(200, "POST", "/api/v1/contacts", btok, map[string]string{"user": "eve"}, nil)
	var created struct {
		Members []string
		Invited []string
	}
	s.MustAPI(201, "POST", "/api/v1/groups", etok, map[string]any{"id": "g1", "name": "Eve's", "members": []string{"dave", "bob"}}, &created)
	if fmt.Sprint(created.Members) != "[bob eve]" || fmt.Sprint(created.Invited) != "[dave]" {
		t.Fatalf("created %+v", created)
	}
	s.MustAPI(202, "POST", "/api/v1/groups/g1/members", etok, map[string]string{"user": "dave"}, nil)
	if evs := requestEvents(t, dave, "dave", 4); evs[2].Request.ID != "g:g1" || evs[2].Event != "new" || evs[3].Event != "updated" || evs[2].Request.GroupName != "Eve's" {
		t.Fatalf("invitation events %+v", evs[2:])
	}
	eve.Publish("im/g/g1", 1, "before dave")
	bob.WaitFor("im/u/bob/g/g1", 1)

	// bob, a contact, is not a request.
	bob.Publish("im/u/dave/dm/bob", 1, "from a contact")
	dave.WaitFor("im/u/dave/dm/bob", 1)
	if n := len(dave.Messages("im/u/dave/dm/eve")) + len(dave.Messages("im/u/dave/typing/eve")) + len(dave.Messages("im/u/dave/g/g1")); n != 0 {
		t.Fatalf("dave got %d messages of a held request", n)
	}

	// Accept the DM: eve is a contact, her DMs arrive.
	var acc struct {
		Request requests.Request
		Contact bool
	}
	s.MustAPI(200, "POST", "/api/v1/requests/dm:eve/accept", dtok, nil, &acc)
	if !acc.Contact || acc.Request.From != "eve" {
		t.Fatalf("accept %+v", acc)
	}
	if evs := requestEvents(t, dave, "dave", 5); evs[4].Event != "accepted" {
		t.Fatalf("accept event %+v", evs[4])
	}
	eve.Publish("im/u/dave/dm/eve", 1, "now?")
	dave.WaitFor("im/u/dave/dm/eve", 1)
	var contacts struct{ Contacts []struct{ User string } }
	s.MustAPI(200, "GET", "/api/v1/contacts", dtok, nil, &contacts)
	if fmt.Sprint(contacts.Contacts) != "[{bob} {eve}]" {
		t.Fatalf("dave's contacts %+v", contacts)
	}

	// Accept the invitation: dave joins (and is told, as any new member).
	s.MustAPI(200, "POST", "/api/v1/requests/g:g1/accept", dtok, nil, nil)
	dave.WaitFor("im/u/dave/groups", 1)
	eve.Publish("im/g/g1", 1, "welcome")
	dave.WaitFor("im/u/dave/g/g1", 1)

	// carol's request, refused, is gone; refusing twice is 404.
	s.MustAPI(200, "POST", "/api/v1/publish", ctok, map[string]any{"topic": "im/u/dave/dm/carol", "payload": "hello"}, nil)
	requestEvents(t, dave, "dave", 7)
	s.MustAPI(200, "POST", "/api/v1/requests/dm:carol/refuse", dtok, nil, nil)
	if evs := requestEvents(t, dave, "dave", 8); evs[7].Event != "refused" {
		t.Fatalf("refuse event %+v", evs[7])
	}
	for _, path := range []string{"/api/v1/requests/dm:carol/refuse", "/api/v1/requests/dm:carol/accept", "/api/v1/requests/nonsense/accept"} {
		if code, _ := s.API("POST", path, dtok, nil, &e); code != 404 || e.Error.Code != "not_found" {
			t.Errorf("%s: %d %q", path, code, e.Error.Code)
		}
	}
	s.MustAPI(200, "GET", "/api/v1/requests", dtok, nil, &list)
	if len(list.Requests) != 0 {
		t.Fatalf("left: %+v", list)
	}
	// Another user's request is not the caller's to answer.
	s.MustAPI(200, "POST", "/api/v1/publish", ctok, map[string]any{"topic": "im/u/dave/dm/carol", "payload": "again"}, nil)
	requestEvents(t, dave, "dave", 9)
	if code, _ := s.API("POST", "/api/v1/requests/dm:carol/accept", etok, nil, &e); code != 404 {
		t.Fatalf("eve accepts dave's request: %d", code)
	}
	// Blocking the sender drops its requests.
	s.MustAPI(200, "POST", "/api/v1/blocks", dtok, map[string]string{"user": "carol"}, nil)
	s.MustAPI(200, "GET", "/api/v1/requests", dtok, nil, &list)
	if len(list.Requests) != 0 {
		t.Fatalf("after the block: %+v", list)
	}
}

// TestMessageRequestsAnyone: under dm_policy anyone a stranger's DM is
// delivered and is also a request (for clients to show apart); writing back
// accepts it and makes the stranger a contact; the first writer's contact
// list holds the one it wrote to, so the answer is no request for it. A
// stranger's group add makes the user a member, and refusing the request
// leaves the group.
func TestMessageRequestsAnyone(t *testing.T) {
	s := imtest.Start(t, "")
	atok, btok := s.User("alice"), s.User("bob")
	alice, bob := s.MustConnect("alice", imtest.ClientOpts{}), s.MustConnect("bob", imtest.ClientOpts{})
	alice.Publish("im/u/bob/dm/alice", 1, "hi bob")
	bob.WaitFor("im/u/bob/dm/alice", 1)
	if evs := requestEvents(t, bob, "bob", 1); evs[0].Event != "new" || evs[0].Request.Held {
		t.Fatalf("event %+v", evs[0])
	}
	bob.Publish("im/u/alice/dm/bob", 1, "hi alice")
	alice.WaitFor("im/u/alice/dm/bob", 1)
	if evs := requestEvents(t, bob, "bob", 2); evs[1].Event != "accepted" {
		t.Fatalf("writing back: %+v", evs[1])
	}
	var list requestList
	for _, tok := range []string{atok, btok} {
		s.MustAPI(200, "GET", "/api/v1/requests", tok, nil, &list)
		if len(list.Requests) != 0 {
			t.Fatalf("requests left: %+v", list)
		}
	}
	if n := len(alice.Messages("im/u/alice/requests")); n != 0 {
		t.Fatalf("alice got %d request events for an answer", n)
	}

	// A group add by a stranger: member now, and a request; refused, left.
	ctok := s.User("carol")
	s.MustAPI(201, "POST", "/api/v1/groups", ctok, map[string]any{"id": "g2", "members": []string{"bob"}}, nil)
	if evs := requestEvents(t, bob, "bob", 3); evs[2].Request.ID != "g:g2" || evs[2].Request.Held {
		t.Fatalf("group event %+v", evs[2])
	}
	var grp struct{ Members []string }
	s.MustAPI(200, "GET", "/api/v1/groups/g2", btok, nil, &grp)
	s.MustAPI(200, "POST", "/api/v1/requests/g:g2/refuse", btok, nil, nil)
	var e apiErr
	if code, _ := s.API("GET", "/api/v1/groups/g2", btok, nil, &e); code != 403 {
		t.Fatalf("bob still in the group he refused: %d", code)
	}
	// Leaving a group refuses its invitation.
	s.MustAPI(201, "POST", "/api/v1/groups", ctok, map[string]any{"id": "g3", "members": []string{"bob"}}, nil)
	s.MustAPI(200, "DELETE", "/api/v1/groups/g3/members/bob", btok, nil, nil)
	if evs := requestEvents(t, bob, "bob", 6); evs[5].Event != "refused" || evs[5].Request.ID != "g:g3" {
		t.Fatalf("leaving: %+v", evs[3:])
	}
}

// TestMessageRequestsBounded: requests_per_user bounds the pending
// requests; past it a held DM is refused with quota_exceeded and nothing
// of it is stored, while an accepted request frees a place.
func TestMessageRequestsBounded(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.DMPolicy = "contacts"; c.Limits.RequestsPerUser = 2 })
	dtok := s.User("dave")
	for i := range 3 {
		tok := s.User(fmt.Sprintf("s%d", i))
		code, _ := s.API("POST", "/api/v1/publish", tok, map[string]any{"topic": fmt.Sprintf("im/u/dave/dm/s%d", i), "payload": "hello"}, nil)
		if want := map[bool]int{true: 429, false: 200}[i == 2]; code != want {
			t.Fatalf("s%d's DM: %d, want %d", i, code, want)
		}
		if i == 2 {
			if m := messagesAt(t, s, tok, "/api/v1/history/dm/dave"); len(m) != 0 {
				t.Fatalf("a refused DM was stored: %+v", m)
			}
		}
	}
	s.MustAPI(200, "POST", "/api/v1/requests/dm:s0/accept", dtok, nil, nil)
	s2 := s.Login("s2")
	s.MustAPI(200, "POST", "/api/v1/publish", s2, map[string]any{"topic": "im/u/dave/dm/s2", "payload": "hello"}, nil)
}

// TestMessageRequestsImplicit: a device is no stranger to its manager;
// adding the sender as a contact accepts its
// DM request; leaving a group refuses its invitation; an invitation whose
// inviter left the group is void when accepted (404, dropped); a held DM
// past the bound is refused over MQTT too (quota_exceeded notice).
func TestMessageRequestsImplicit(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.DMPolicy = "contacts"; c.Limits.RequestsPerUser = 3 })
	dtok := s.User("dave")
	etok, ftok := s.User("eve"), s.User("frank")
	dave := s.MustConnect("dave", imtest.ClientOpts{})
	// dave's own device is no stranger to him: its DM arrives, no request.
	key, _ := newDevice(t, s, dtok, "dave-meter", "")
	s.MustConnect("dave-meter", imtest.ClientOpts{Password: key}).Publish("im/u/dave/dm/dave-meter", 1, "21.5 C")
	dave.WaitFor("im/u/dave/dm/dave-meter", 1)
	s.MustAPI(200, "POST", "/api/v1/publish", etok, map[string]any{"topic": "im/u/dave/dm/eve", "payload": "hi"}, nil)
	s.MustAPI(200, "POST", "/api/v1/contacts", dtok, map[string]string{"user": "eve"}, nil)
	if evs := requestEvents(t, dave, "dave", 2); evs[0].Request.ID != "dm:eve" || evs[1].Event != "accepted" || evs[1].Request.ID != "dm:eve" {
		t.Fatalf("adding the contact: %+v", evs)
	}

	// frank invites dave into two groups (held), eve is in one of them.
	s.MustAPI(200, "POST", "/api/v1/contacts", etok, map[string]string{"user": "frank"}, nil)
	for _, gid := range []string{"gone", "kept"} {
		s.MustAPI(201, "POST", "/api/v1/groups", ftok, map[string]any{"id": gid, "members": []string{"dave", "eve"}}, nil)
	}
	requestEvents(t, dave, "dave", 4)
	// frank hands "gone" to eve and leaves it: his invitation is void.
	s.MustAPI(200, "POST", "/api/v1/groups/gone/owner", ftok, map[string]string{"user": "eve"}, nil)
	s.MustAPI(200, "DELETE", "/api/v1/groups/gone/members/frank", ftok, nil, nil)
	var e apiErr
	if code, _ := s.API("POST", "/api/v1/requests/g:gone/accept", dtok, nil, &e); code != 404 || e.Error.Code != "not_found" {
		t.Fatalf("accepting a void invitation: %d %q", code, e.Error.Code)
	}
	var list requestList
	s.MustAPI(200, "GET", "/api/v1/requests", dtok, nil, &list)
	if len(list.Requests) != 1 || list.Requests[0].ID != "g:kept" {
		t.Fatalf("after the void one: %+v", list)
	}
	// Joining "kept" by its invitation frees the place.
	s.MustAPI(200, "POST", "/api/v1/requests/g:kept/accept", dtok, nil, nil)

	// Three strangers fill dave's requests; the fourth, over MQTT, is refused.
	for i := range 3 {
		tok := s.User(fmt.Sprintf("s%d", i))
		s.MustAPI(200, "POST", "/api/v1/publish", tok, map[string]any{"topic": fmt.Sprintf("im/u/dave/dm/s%d", i), "payload": "hello"}, nil)
	}
	s.User("s3")
	s3 := s.MustConnect("s3", imtest.ClientOpts{})
	s3.Publish("im/u/dave/dm/s3", 1, "me too")
	var n envelope.Notice
	json.Unmarshal(s3.WaitFor("im/u/s3/error", 1)[0].Payload, &n)
	if n.Code != "quota_exceeded" {
		t.Fatalf("notice %+v", n)
	}
	if n := len(s3.Messages("im/u/s3/dm/dave")); n != 0 {
		t.Fatalf("a refused DM was stamped for its sender")
	}
}
