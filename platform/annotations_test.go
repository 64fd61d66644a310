package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/imclient"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/internal/imtest"
)

// annotationWorld is three users with MQTT devices (recording all they
// receive) and tokens, and a group "team" of alice (owner), bob and carol;
// dave is in no group.
type annotationWorld struct {
	s      *imtest.Server
	tok    map[string]string
	dev    map[string]*imtest.Client
	cidSeq int
}

func newAnnotationWorld(t *testing.T, mods ...func(*imtestConfig)) *annotationWorld {
	w := &annotationWorld{s: imtest.Start(t, "", mods...), tok: map[string]string{}, dev: map[string]*imtest.Client{}}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		w.tok[u] = w.s.User(u)
		w.dev[u] = w.s.MustConnect(u, imtest.ClientOpts{})
	}
	w.s.MustAPI(201, "POST", "/api/v1/groups", w.tok["alice"], map[string]any{"id": "team", "members": []string{"bob", "carol"}}, nil)
	return w
}

// sendFunc publishes payload (a JSON object; a cid is added) as user on
// topic by one transport and returns the stored message, or the code of
// the refusal.
type sendFunc func(t *testing.T, w *annotationWorld, user, topic string, payload map[string]any) (envelope.Message, imerr.Code)

// sendMQTT publishes over MQTT and waits for the outcome on the sender's
// own device: its carbon of the stored message, or the error notice, both
// told apart by the cid.
func sendMQTT(t *testing.T, w *annotationWorld, user, topic string, payload map[string]any) (envelope.Message, imerr.Code) {
	t.Helper()
	cid := w.cid(payload)
	c := w.dev[user]
	c.Publish(topic, 1, envelope.Marshal(payload))
	var got envelope.Message
	var code imerr.Code
	imtest.Eventually(t, "the outcome of "+cid, 10*time.Second, func() bool {
		for _, m := range c.Envelopes("im/u/" + user + "/") {
			if m.CID == cid {
				got = m
				return true
			}
		}
		for _, m := range c.Messages("im/u/" + user + "/error") {
			var n envelope.Notice
			if json.Unmarshal(m.Payload, &n) == nil && n.CID == cid {
				code = n.Code
				return true
			}
		}
		return false
	})
	return got, code
}

// sendHTTP publishes through POST /api/v1/publish.
func sendHTTP(t *testing.T, w *annotationWorld, user, topic string, payload map[string]any) (envelope.Message, imerr.Code) {
	t.Helper()
	w.cid(payload)
	var out struct {
		Message envelope.Message
		Error   struct{ Code imerr.Code }
	}
	status, err := w.s.API("POST", "/api/v1/publish", w.tok[user], map[string]any{"topic": topic, "payload": payload}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if (status == 200) != (out.Error.Code == "") {
		t.Fatalf("publish: status %d with %+v", status, out)
	}
	return out.Message, out.Error.Code
}

func (w *annotationWorld) cid(payload map[string]any) string {
	w.cidSeq++
	cid := fmt.Sprintf("c-%d", w.cidSeq)
	payload["cid"] = cid
	return cid
}

// TestRepliesEditsRetractsReactions: every rule of docs/protocol.md's
// "Replies, edits, retractions, reactions", each refusal included, over
// MQTT and over HTTP; then history pages show the messages as they now
// are, the annotations are delivered live and in sync, and no refused
// publish reached anyone.
func TestRepliesEditsRetractsReactions(t *testing.T) {
	for _, tr := range []struct {
		name string
		send sendFunc
	}{{"mqtt", sendMQTT}, {"http", sendHTTP}} {
		t.Run(tr.name, func(t *testing.T) { testAnnotations(t, tr.send) })
	}
}

func testAnnotations(t *testing.T, send sendFunc) {
	w := newAnnotationWorld(t)
	const (
		toBob   = "im/u/bob/dm/alice"  // alice writes to bob
		toAlice = "im/u/alice/dm/bob"  // bob writes to alice
		carolDM = "im/u/carol/dm/dave" // dave writes to carol
		team    = "im/g/team"
	)
	ids := map[string]string{} // a case's name -> the id of what it stored
	ref := func(name string) func() string { return func() string { return ids[name] } }
	lit := func(s string) func() string { return func() string { return s } }
	var refused []string // cids
	cases := []struct {
		name, user, topic, typ, body string
		replyTo, ref                 func() string
		meta                         any
		want                         imerr.Code
	}{
		{name: "m1", user: "alice", topic: toBob, body: "helo bob"},
		{name: "m2", user: "bob", topic: toAlice, body: "hi alice"},
		{name: "file", user: "alice", topic: toBob, typ: "file", meta: map[string]any{"name": "a.txt"}},
		{name: "g1", user: "bob", topic: team, body: "team news"},
		{name: "carol1", user: "dave", topic: carolDM, body: "hi carol"},

		{name: "reply", user: "alice", topic: toBob, body: "yes", replyTo: ref("m2")},
		{name: "reply to nothing", user: "alice", topic: toBob, body: "?", replyTo: lit("000000000000-000000"), want: imerr.NotFound},
		{name: "reply to another conversation", user: "alice", topic: toBob, body: "?", replyTo: ref("g1"), want: imerr.NotFound},

		{name: "edit", user: "alice", topic: toBob, typ: "edit", body: "hello bob", ref: ref("m1")},
		{name: "edit of another's", user: "bob", topic: toAlice, typ: "edit", body: "mine now", ref: ref("m1"), want: imerr.Forbidden},
		{name: "edit of a file", user: "alice", topic: toBob, typ: "edit", body: "b.txt", ref: ref("file"), want: imerr.Invalid},
		{name: "edit of nothing", user: "alice", topic: toBob, typ: "edit", body: "x", ref: lit("000000000000-000000"), want: imerr.NotFound},
		{name: "edit of an edit", user: "alice", topic: toBob, typ: "edit", body: "x", ref: ref("edit"), want: imerr.Invalid},
		{name: "edit elsewhere", user: "alice", topic: toBob, typ: "edit", body: "x", ref: ref("g1"), want: imerr.NotFound},
		{name: "edit to nothing", user: "alice", topic: toBob, typ: "edit", body: "", ref: ref("m1"), want: imerr.Invalid},

		{name: "react", user: "bob", topic: toAlice, typ: "reaction", body: "👍", ref: ref("m1")},
		{name: "react again", user: "alice", topic: toBob, typ: "reaction", body: "👍", ref: ref("m1")},
		{name: "unreact", user: "alice", topic: toBob, typ: "reaction", body: "", ref: ref("m1")},
		{name: "change reaction", user: "bob", topic: toAlice, typ: "reaction", body: "🎉", ref: ref("m1")},
		{name: "react with text", user: "bob", topic: toAlice, typ: "reaction", body: "ok", ref: ref("m1"), want: imerr.Invalid},
		{name: "react in the group", user: "carol", topic: team, typ: "reaction", body: "❤️", ref: ref("g1")},
		{name: "react where one cannot read", user: "dave", topic: team, typ: "reaction", body: "👍", ref: ref("g1"), want: imerr.Forbidden},
		{name: "react to another's DM", user: "dave", topic: "im/u/bob/dm/dave", typ: "reaction", body: "👍", ref: ref("m1"), want: imerr.NotFound},

		{name: "retract another's", user: "alice", topic: toBob, typ: "retract", ref: ref("m2"), want: imerr.Forbidden},
		{name: "member retracts another's", user: "carol", topic: team, typ: "retract", ref: ref("g1"), want: imerr.Forbidden},
		{name: "owner retracts", user: "alice", topic: team, typ: "retract", ref: ref("g1")},
		{name: "retract again", user: "bob", topic: team, typ: "retract", ref: ref("g1"), want: imerr.Conflict},
		{name: "edit of retracted", user: "bob", topic: team, typ: "edit", body: "x", ref: ref("g1"), want: imerr.Conflict},
		{name: "react to retracted", user: "carol", topic: team, typ: "reaction", body: "👍", ref: ref("g1"), want: imerr.Conflict},
		{name: "retract own", user: "bob", topic: toAlice, typ: "retract", ref: ref("m2")},
		{name: "retract with body", user: "bob", topic: toAlice, typ: "retract", body: "x", ref: ref("m2"), want: imerr.Invalid},
	}
	for _, c := range cases {
		p := map[string]any{"body": c.body}
		if c.typ != "" {
			p["type"] = c.typ
		}
		if c.replyTo != nil {
			p["reply_to"] = c.replyTo()
		}
		if c.ref != nil {
			p["ref"] = c.ref()
		}
		if c.meta != nil {
			p["meta"] = c.meta
		}
		m, code := send(t, w, c.user, c.topic, p)
		if code != c.want {
			t.Fatalf("%s: code %q, want %q (stored: %+v)", c.name, code, c.want, m)
		}
		if code != "" {
			refused = append(refused, p["cid"].(string))
			continue
		}
		if m.ID == "" || m.From != c.user || (c.ref != nil && m.Ref != c.ref()) || (c.replyTo != nil && m.ReplyTo != c.replyTo()) {
			t.Fatalf("%s: stored %+v", c.name, m)
		}
		ids[c.name] = m.ID
	}

	// History pages: each message as it now is, and the annotations as
	// messages of their own.
	type page struct {
		Messages []json.RawMessage
	}
	byID := func(p page) map[string]envelope.Message {
		out := map[string]envelope.Message{}
		for _, raw := range p.Messages {
			var m envelope.Message
			json.Unmarshal(raw, &m)
			if m.Retracted && bytes.Contains(raw, []byte(`"body"`)) {
				t.Errorf("retracted message %s has a body: %s", m.ID, raw)
			}
			out[m.ID] = m
		}
		return out
	}
	var dm, grp page
	w.s.MustAPI(200, "GET", "/api/v1/history/dm/alice", w.tok["bob"], nil, &dm)
	w.s.MustAPI(200, "GET", "/api/v1/history/g/team", w.tok["carol"], nil, &grp)
	d, g := byID(dm), byID(grp)
	if m := d[ids["m1"]]; m.Body != "hello bob" || m.Edited == 0 || fmt.Sprint(m.Reactions) != "map[🎉:[bob]]" {
		t.Errorf("m1 in history: %+v, want edited to \"hello bob\", reactions 🎉 by bob", m)
	}
	if m := d[ids["m2"]]; !m.Retracted || m.Body != "" {
		t.Errorf("m2 in history: %+v, want retracted", m)
	}
	if m := d[ids["reply"]]; m.ReplyTo != ids["m2"] {
		t.Errorf("reply in history: %+v", m)
	}
	if m := d[ids["edit"]]; m.Type != "edit" || m.Ref != ids["m1"] || m.Body != "hello bob" {
		t.Errorf("the edit in history: %+v", m)
	}
	if m := g[ids["g1"]]; !m.Retracted || m.Reactions != nil {
		t.Errorf("g1 in history: %+v, want retracted without reactions", m)
	}

	// Live: bob's device got the edit and alice's the retract, in order
	// after what they are about; the group's retract reached carol.
	liveRef := func(c *imtest.Client, prefix, typ, ref string) {
		t.Helper()
		imtest.Eventually(t, c.User+" receives the "+typ+" of "+ref, 10*time.Second, func() bool {
			return slices.ContainsFunc(c.Envelopes(prefix), func(m envelope.Message) bool { return m.Type == typ && m.Ref == ref })
		})
	}
	liveRef(w.dev["bob"], "im/u/bob/dm/alice", "edit", ids["m1"])
	liveRef(w.dev["alice"], "im/u/alice/dm/bob", "retract", ids["m2"])
	liveRef(w.dev["carol"], "im/u/carol/g/team", "retract", ids["g1"])
	// In sync: the retract is there for a device that was away.
	if !slices.ContainsFunc(syncAll(t, w.s.HTTP, w.tok["alice"]), func(m envelope.Message) bool { return m.Type == "retract" && m.Ref == ids["m2"] }) {
		t.Error("alice's sync has no retract of m2")
	}

	// Refused publishes reached nobody and were not stored. (Every
	// accepted one was delivered before the last checks above passed, and
	// a refused one would have been delivered before the next accepted.)
	for u, c := range w.dev {
		for _, m := range c.Envelopes("im/u/" + u + "/") {
			if slices.Contains(refused, m.CID) {
				t.Errorf("%s received refused publish %+v", u, m)
			}
		}
	}
	for _, m := range append(slices.Collect(maps.Values(d)), slices.Collect(maps.Values(g))...) {
		if slices.Contains(refused, m.CID) || strings.Contains(m.Body, "mine now") {
			t.Errorf("refused publish stored: %+v", m)
		}
	}
}

// TestClientAnnotations: the Go client's Reply, Edit, Retract, React and
// Search, a refusal as an *imclient.APIError with its code, and the
// annotations delivered to the other party's client.
func TestClientAnnotations(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.SearchRate = 0 }) // it polls Search
	s.User("alice")
	s.User("bob")
	ctx := context.Background()
	var bobGot recorder
	dial := func(user string, rec *recorder) *imclient.Client {
		o := imclient.Options{HTTP: s.HTTP, User: user, Password: imtest.Password, Device: "go"}
		if rec != nil {
			o.OnMessage = rec.add
		}
		c, err := imclient.Dial(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	alice, bob := dial("alice", nil), dial("bob", &bobGot)
	if _, err := alice.Send(ctx, "bob", "pizza tonight?"); err != nil {
		t.Fatal(err)
	}
	imtest.Eventually(t, "bob gets the message", 10*time.Second, func() bool { return len(bobGot.get()) == 1 })
	first := bobGot.get()[0]
	reply, err := bob.Reply(ctx, "alice", first.ID, "yes please")
	if err != nil || reply.ReplyTo != first.ID {
		t.Fatalf("reply: %+v %v", reply, err)
	}
	if _, err := alice.Edit(ctx, "bob", first.ID, "pizza tonight at 8?"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.React(ctx, "alice", first.ID, "🍕"); err != nil {
		t.Fatal(err)
	}
	var ae *imclient.APIError
	if _, err := bob.Edit(ctx, "alice", first.ID, "no"); !errors.As(err, &ae) || ae.Code != string(imerr.Forbidden) {
		t.Fatalf("bob edits alice's message: %v, want forbidden", err)
	}
	if _, err := alice.Retract(ctx, "bob", reply.ID); !errors.As(err, &ae) || ae.Code != string(imerr.Forbidden) {
		t.Fatalf("alice retracts bob's reply: %v, want forbidden", err)
	}
	if _, err := bob.Retract(ctx, "alice", reply.ID); err != nil {
		t.Fatal(err)
	}
	imtest.Eventually(t, "bob's client gets the edit and his own reaction and retract", 10*time.Second, func() bool {
		types := map[string]bool{}
		for _, m := range bobGot.get() {
			types[m.Type] = true
		}
		return types["edit"] && types["reaction"] && types["retract"]
	})
	var res imclient.SearchResult
	imtest.Eventually(t, "alice finds the edited message", 10*time.Second, func() bool {
		res, err = alice.Search(ctx, "pizza", imclient.SearchOptions{Conv: "bob", Limit: 5})
		return err == nil && len(res.Messages) == 1 && res.Messages[0].Body == "pizza tonight at 8?"
	})
	if m := res.Messages[0]; fmt.Sprint(m.Reactions) != "map[🍕:[bob]]" || m.Edited == 0 {
		t.Fatalf("search result: %+v", m)
	}
	if res, err := bob.Search(ctx, "please", imclient.SearchOptions{}); err != nil || len(res.Messages) != 0 {
		t.Fatalf("the retracted reply is found: %+v %v", res, err)
	}
}

// TestAnnotationReasonCodes: an MQTT 5 publisher gets each refusal's
// PUBACK reason code, conflict's 0x83 among them.
func TestAnnotationReasonCodes(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	bobTok := s.User("bob")
	var out struct{ Message envelope.Message }
	s.MustAPI(200, "POST", "/api/v1/publish", bobTok, map[string]any{"topic": "im/u/alice/dm/bob", "payload": map[string]any{"body": "hi"}}, &out)
	id := out.Message.ID
	raw := s.MustDialRaw5("alice:v5", "alice", imtest.Password)
	for _, c := range []struct {
		name    string
		payload string
		want    byte
	}{
		{"edit of bob's", `{"type":"edit","ref":"` + id + `","body":"x"}`, 0x87},
		{"reply to nothing", `{"body":"x","reply_to":"000000000000-000000"}`, 0x90},
		{"bad emoji", `{"type":"reaction","ref":"` + id + `","body":"xx"}`, 0x99},
		{"reaction", `{"type":"reaction","ref":"` + id + `","body":"👍"}`, 0},
		{"retract of bob's", `{"type":"retract","ref":"` + id + `"}`, 0x87},
	} {
		if got, err := raw.Publish("im/u/bob/dm/alice", []byte(c.payload)); err != nil || got != c.want {
			t.Errorf("%s: reason code %#x (%v), want %#x", c.name, got, err, c.want)
		}
	}
	s.MustAPI(200, "POST", "/api/v1/publish", bobTok, map[string]any{"topic": "im/u/alice/dm/bob", "payload": map[string]any{"type": "retract", "ref": id}}, nil)
	if got, err := raw.Publish("im/u/bob/dm/alice", []byte(`{"type":"reaction","ref":"`+id+`","body":"👍"}`)); err != nil || got != 0x83 {
		t.Errorf("reaction to a retracted message: reason code %#x (%v), want 0x83", got, err)
	}
}
