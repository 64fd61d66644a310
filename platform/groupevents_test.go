package platform_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mqim/mqim/groups"
	"github.com/mqim/mqim/internal/checkfor"
	"github.com/mqim/mqim/internal/imtest"
)

// Members learn of group changes on im/u/{me}/groups, without a message in
// the group: created or added ("added"), removed or left ("removed"), and
// the others' view of members and owner ("changed"). Ownership moves with
// POST /groups/{gid}/owner, after which the old owner may leave.
func TestGroupEventsAndOwnerTransfer(t *testing.T) {
	s := imtest.Start(t, "")
	tok := map[string]string{}
	cl := map[string]*imtest.Client{}
	for _, u := range []string{"alice", "bob", "carol"} {
		tok[u] = s.User(u)
		cl[u] = s.MustConnect(u, imtest.ClientOpts{Clean: true})
	}
	type event struct {
		Event string       `json:"event"`
		Group groups.Group `json:"group"`
	}
	// events returns what u got on its group-event topic, as "event:owner:members".
	events := func(u string) []string {
		var out []string
		for _, m := range cl[u].Messages("im/u/" + u + "/groups") {
			var e event
			if err := json.Unmarshal(m.Payload, &e); err != nil {
				out = append(out, "bad json")
				continue
			}
			out = append(out, fmt.Sprintf("%s:%s:%v", e.Event, e.Group.Owner, e.Group.Members))
		}
		return out
	}
	steps := []struct {
		name, method, path, actor string
		body                      any
		status                    int
		want                      map[string][]string // events received so far, per user
	}{
		{"create with bob", "POST", "/api/v1/groups", "alice", map[string]any{"id": "trip", "name": "Trip", "members": []string{"bob"}}, 201,
			map[string][]string{"alice": {"added:alice:[alice bob]"}, "bob": {"added:alice:[alice bob]"}}},
		{"bob adds carol", "POST", "/api/v1/groups/trip/members", "bob", map[string]string{"user": "carol"}, 200,
			map[string][]string{"bob": {"added:alice:[alice bob]", "changed:alice:[alice bob carol]"}, "carol": {"added:alice:[alice bob carol]"}}},
		{"the owner cannot leave", "DELETE", "/api/v1/groups/trip/members/alice", "alice", nil, 403, nil},
		{"only the owner transfers", "POST", "/api/v1/groups/trip/owner", "bob", map[string]string{"user": "bob"}, 403, nil},
		{"only to a member", "POST", "/api/v1/groups/trip/owner", "alice", map[string]string{"user": "zed"}, 403, nil},
		{"transfer to bob", "POST", "/api/v1/groups/trip/owner", "alice", map[string]string{"user": "bob"}, 200,
			map[string][]string{"carol": {"added:alice:[alice bob carol]", "changed:bob:[alice bob carol]"}}},
		{"alice leaves", "DELETE", "/api/v1/groups/trip/members/alice", "alice", nil, 200,
			map[string][]string{"alice": {"added:alice:[alice bob]", "changed:alice:[alice bob carol]", "changed:bob:[alice bob carol]", "removed:bob:[]"}}},
		{"bob removes carol", "DELETE", "/api/v1/groups/trip/members/carol", "bob", nil, 200,
			map[string][]string{"carol": {"added:alice:[alice bob carol]", "changed:bob:[alice bob carol]", "changed:bob:[bob carol]", "removed:bob:[]"}}},
	}
	for _, st := range steps {
		st := st
		t.Run(st.name, func(t *testing.T) {
			var out map[string]any
			s.MustAPI(st.status, st.method, st.path, tok[st.actor], st.body, &out)
			for u, want := range st.want {
				// imtest clients run handlers concurrently (paho's
				// OrderMatters false): compare what arrived, not its order.
				checkfor.True(t, 10*time.Second, u+"'s group events", func() bool {
					got := events(u)
					slices.Sort(got)
					w := slices.Clone(want)
					slices.Sort(w)
					return fmt.Sprint(got) == fmt.Sprint(w)
				})
			}
		})
	}
	var g groups.Group
	s.MustAPI(200, "GET", "/api/v1/groups/trip", tok["bob"], nil, &g)
	if g.Owner != "bob" || fmt.Sprint(g.Members) != "[bob]" {
		t.Fatalf("group after the steps: owner %s members %v", g.Owner, g.Members)
	}
}

// TestGroupRenameAndDelete: only the owner renames or deletes a group;
// members hear of both; a deleted group takes no messages, shows its
// history to no one, and its id is never reused (a new group under it would
// otherwise read the old one's history).
func TestGroupRenameAndDelete(t *testing.T) {
	s := imtest.Start(t, "")
	atok, btok, ctok := s.User("alice"), s.User("bob"), s.User("carol")
	bob := s.MustConnect("bob", imtest.ClientOpts{Clean: true})
	s.MustAPI(201, "POST", "/api/v1/groups", atok, map[string]any{"id": "club", "name": "Club", "members": []string{"bob"}}, nil)
	s.MustAPI(200, "POST", "/api/v1/publish", atok, map[string]any{"topic": "im/g/club", "payload": `{"body":"secret"}`}, nil)

	s.MustAPI(403, "PATCH", "/api/v1/groups/club", btok, map[string]string{"name": "Bob's"}, nil)
	s.MustAPI(400, "PATCH", "/api/v1/groups/club", atok, map[string]string{"name": "  "}, nil)
	var g groups.Group
	s.MustAPI(200, "PATCH", "/api/v1/groups/club", atok, map[string]string{"name": "Book club"}, &g)
	if g.Name != "Book club" {
		t.Fatalf("renamed: %+v", g)
	}
	s.MustAPI(403, "DELETE", "/api/v1/groups/club", btok, nil, nil)
	s.MustAPI(204, "DELETE", "/api/v1/groups/club", atok, nil, nil)
	checkfor.True(t, 10*time.Second, "bob hears of the rename and the deletion", func() bool {
		var seen []string
		for _, m := range bob.Messages("im/u/bob/groups") {
			var e struct {
				Event string       `json:"event"`
				Group groups.Group `json:"group"`
			}
			json.Unmarshal(m.Payload, &e)
			seen = append(seen, e.Event+":"+e.Group.Name)
		}
		slices.Sort(seen)
		return fmt.Sprint(seen) == "[added:Club changed:Book club removed:Book club]"
	})
	s.MustAPI(404, "GET", "/api/v1/groups/club", atok, nil, nil)
	s.MustAPI(403, "POST", "/api/v1/publish", atok, map[string]any{"topic": "im/g/club", "payload": `{"body":"after"}`}, nil) // no members any more
	s.MustAPI(404, "GET", "/api/v1/history/g/club", btok, nil, nil)
	s.MustAPI(409, "POST", "/api/v1/groups", ctok, map[string]any{"id": "club", "name": "Mine now"}, nil)
	var list struct{ Groups []groups.Group }
	s.MustAPI(200, "GET", "/api/v1/groups", btok, nil, &list)
	if len(list.Groups) != 0 {
		t.Fatalf("bob's groups after the deletion: %+v", list.Groups)
	}
}
