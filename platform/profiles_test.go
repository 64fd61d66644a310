package platform_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/imtest"
)

type userView struct {
	ID, User, Kind string
	DisplayName    string `json:"display_name"`
	Avatar         string
}

// TestProfile: PUT /me/profile sets a display name (trimmed, checked), GET
// /users/{id} shows it, and the change reaches the user's DM peers and
// group co-members and those who have it as a contact live on
// im/u/{peer}/profile (MQTT and SSE), not users
// without a conversation, nor one the user blocked.
func TestProfile(t *testing.T) {
	s := imtest.Start(t, "")
	atok := s.User("alice")
	s.User("bob")
	ctok := s.User("carol")
	s.User("dave")
	s.User("mallory")
	etok := s.User("erin")
	var u userView
	s.MustAPI(200, "GET", "/api/v1/users/alice", atok, nil, &u)
	if u.ID != "alice" || u.User != "alice" || u.Kind != "person" || u.DisplayName != "alice" || u.Avatar != "" {
		t.Fatalf("default view %+v", u)
	}
	var e apiErr
	for _, name := range []string{"evil\u202Etxt.exe", "two\nlines", strings.Repeat("x", 65)} {
		if code, _ := s.API("PUT", "/api/v1/me/profile", atok, map[string]string{"display_name": name}, &e); code != 400 || e.Error.Code != "invalid" {
			t.Errorf("display name %q: %d %q", name, code, e.Error.Code)
		}
	}

	bob := s.MustConnect("bob", imtest.ClientOpts{})
	mallory := s.MustConnect("mallory", imtest.ClientOpts{})
	dave := s.MustConnect("dave", imtest.ClientOpts{})
	alice := s.MustConnect("alice", imtest.ClientOpts{})
	alice.Publish("im/u/bob/dm/alice", 1, "hi bob")
	bob.WaitFor("im/u/bob/dm/alice", 1)
	mallory.Publish("im/u/alice/dm/mallory", 1, "hi alice")
	alice.WaitFor("im/u/alice/dm/mallory", 1)
	s.MustAPI(200, "POST", "/api/v1/blocks", atok, map[string]string{"user": "mallory"}, nil)
	s.MustAPI(201, "POST", "/api/v1/groups", atok, map[string]any{"id": "team", "members": []string{"carol"}}, nil)
	s.MustAPI(200, "POST", "/api/v1/contacts", etok, map[string]string{"user": "alice"}, nil) // erin: no conversation, a contact
	erin := s.MustConnect("erin", imtest.ClientOpts{})
	st, code := openStream(t, s, "", map[string]string{"Authorization": "Bearer " + ctok})
	if code != 200 {
		t.Fatalf("stream %d", code)
	}
	st.waitFor(t, "im/presence/", 1) // the stream is open

	s.MustAPI(200, "PUT", "/api/v1/me/profile", atok, map[string]string{"display_name": "  Alice Ø 👩\u200d💻 "}, &u)
	if u.DisplayName != "Alice Ø 👩\u200d💻" {
		t.Fatalf("answer %+v", u)
	}
	s.MustAPI(200, "GET", "/api/v1/users/alice", ctok, nil, &u)
	if u.DisplayName != "Alice Ø 👩\u200d💻" {
		t.Fatalf("GET /users/alice %+v", u)
	}
	for _, got := range [][]byte{bob.WaitFor("im/u/bob/profile", 1)[0].Payload, st.waitFor(t, "im/u/carol/profile", 1)[0].Payload, alice.WaitFor("im/u/alice/profile", 1)[0].Payload, erin.WaitFor("im/u/erin/profile", 1)[0].Payload} {
		var ev userView
		if err := json.Unmarshal(got, &ev); err != nil || ev.ID != "alice" || ev.DisplayName != "Alice Ø 👩\u200d💻" {
			t.Fatalf("profile event %s", got)
		}
	}
	// Fence: a DM to each sent after the change arrives after any event.
	alice.Publish("im/u/dave/dm/alice", 1, "fence")
	alice.Publish("im/u/mallory/dm/alice", 1, "fence")
	dave.WaitFor("im/u/dave/dm/alice", 1)
	mallory.WaitFor("im/u/mallory/dm/alice", 2)
	if n := len(dave.Messages("im/u/dave/profile")) + len(mallory.Messages("im/u/mallory/profile")); n != 0 {
		t.Fatalf("%d profile events went to users who should not get them", n)
	}
	// Clients cannot publish there.
	mallory.Publish("im/u/bob/profile", 1, `{"id":"alice","display_name":"fake"}`)
	mallory.WaitFor("im/u/mallory/error", 1)

	// Clearing the name falls back to the id.
	s.MustAPI(200, "PUT", "/api/v1/me/profile", atok, map[string]string{"display_name": ""}, &u)
	if u.DisplayName != "alice" {
		t.Fatalf("cleared: %+v", u)
	}
}

func pngOf(w, h int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 100, 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// TestAvatar: PUT /me/avatar takes a PNG and stores a 128x128 re-encoding
// served by GET /users/{id}/avatar with an ETag (304 on a match) and
// caching headers; SVG, HTML and oversize bodies are refused.
func TestAvatar(t *testing.T) {
	s := imtest.Start(t, "")
	atok := s.User("alice")
	btok := s.User("bob")
	var e apiErr
	for _, c := range []struct {
		name string
		body []byte
		want int
		code string
	}{
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), 415, "invalid"},
		{"html", []byte(`<html><body><script>alert(1)</script></body></html>`), 415, "invalid"},
		{"oversize", append(pngOf(8, 8), make([]byte, 1<<20)...), 413, "too_large"},
	} {
		if code, _ := s.API("PUT", "/api/v1/me/avatar", atok, c.body, &e); code != c.want || e.Error.Code != c.code {
			t.Errorf("%s: %d %q, want %d %s", c.name, code, e.Error.Code, c.want, c.code)
		}
	}
	if code, _ := s.API("GET", "/api/v1/users/alice/avatar", btok, nil, &e); code != 404 {
		t.Fatalf("no avatar yet: %d", code)
	}
	upload := pngOf(300, 200)
	var u userView
	s.MustAPI(200, "PUT", "/api/v1/me/avatar", atok, upload, &u)
	if !strings.HasPrefix(u.Avatar, "/api/v1/users/alice/avatar?v=") {
		t.Fatalf("view after upload %+v", u)
	}
	get := func(path, etag string) *http.Response {
		req, _ := http.NewRequest("GET", s.HTTP+path, nil)
		req.Header.Set("Authorization", "Bearer "+btok)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get(u.Avatar, "")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || etag == "" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("avatar: %d %v", resp.StatusCode, resp.Header)
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil || img.Bounds().Dx() != 128 || img.Bounds().Dy() != 128 || bytes.Equal(body, upload) {
		t.Fatalf("served avatar: %v %v", err, img.Bounds())
	}
	resp = get("/api/v1/users/alice/avatar", etag)
	resp.Body.Close()
	if resp.StatusCode != 304 || resp.Header.Get("Cache-Control") != "private, no-cache" {
		t.Fatalf("revalidation: %d %v", resp.StatusCode, resp.Header)
	}
	u = userView{}
	s.MustAPI(200, "DELETE", "/api/v1/me/avatar", atok, nil, &u)
	if u.ID != "alice" || u.Avatar != "" {
		t.Fatalf("after delete: %+v", u)
	}
	if code, _ := s.API("GET", "/api/v1/users/alice/avatar", btok, nil, &e); code != 404 {
		t.Fatalf("deleted avatar served: %d", code)
	}
}

// TestDirectory: GET /users?q= finds people by id or display name prefix
// (ids and display names only, no devices, not those who blocked the
// caller), is rate-limited, and can be turned off.
func TestDirectory(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.DirectoryRate, c.Limits.DirectoryBurst = 0.001, 3 })
	atok := s.User("alice")
	s.User("alfred")
	ztok := s.User("zed")
	mtok := s.User("mallory")
	s.MustAPI(200, "PUT", "/api/v1/me/profile", ztok, map[string]string{"display_name": "Alma Z"}, nil)
	s.MustAPI(201, "POST", "/api/v1/devices", atok, map[string]string{"id": "al-sensor"}, nil)
	s.MustAPI(200, "POST", "/api/v1/blocks", atok, map[string]string{"user": "mallory"}, nil)
	type hits struct {
		Users []map[string]string
	}
	var h hits
	s.MustAPI(200, "GET", "/api/v1/users?q=AL", atok, nil, &h)
	var got []string
	for _, u := range h.Users {
		if len(u) != 2 {
			t.Fatalf("directory hit has fields %v", u)
		}
		got = append(got, u["id"]+"="+u["display_name"])
	}
	if strings.Join(got, ",") != "alfred=alfred,alice=alice,zed=Alma Z" {
		t.Fatalf("q=AL: %v", got)
	}
	s.MustAPI(200, "GET", "/api/v1/users?q=al", mtok, nil, &h)
	for _, u := range h.Users {
		if u["id"] == "alice" {
			t.Fatalf("alice, who blocked mallory, is listed for her")
		}
	}
	var e apiErr
	if code, _ := s.API("GET", "/api/v1/users?q=", mtok, nil, &e); code != 400 {
		t.Fatalf("empty q: %d", code)
	}
	s.MustAPI(200, "GET", "/api/v1/users?q=z", mtok, nil, nil)
	s.MustAPI(200, "GET", "/api/v1/users?q=z", mtok, nil, nil)
	if code, _ := s.API("GET", "/api/v1/users?q=z", mtok, nil, &e); code != 429 || e.Error.Code != "rate_limited" {
		t.Fatalf("over the rate: %d %q", code, e.Error.Code)
	}

	off := imtest.Start(t, "", func(c *imtestConfig) { c.Directory = false })
	tok := off.User("alice")
	if code, _ := off.API("GET", "/api/v1/users?q=al", tok, nil, &e); code != 403 || e.Error.Code != "forbidden" {
		t.Fatalf("directory off: %d %q", code, e.Error.Code)
	}
}

// TestContacts: a contact list per user, bounded, with display names.
func TestContacts(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.ContactsPerUser = 2 })
	atok := s.User("alice")
	btok := s.User("bob")
	s.User("carol")
	s.User("dave")
	s.MustAPI(200, "PUT", "/api/v1/me/profile", btok, map[string]string{"display_name": "Bob B"}, nil)
	var out map[string]any
	s.MustAPI(200, "POST", "/api/v1/contacts", atok, map[string]string{"user": "bob"}, &out)
	if out["user"] != "bob" || out["contact"] != true {
		t.Fatalf("add: %v", out)
	}
	s.MustAPI(200, "POST", "/api/v1/contacts", atok, map[string]string{"user": "carol"}, nil)
	var e apiErr
	for _, c := range []struct {
		user string
		want int
		code string
	}{{"dave", 429, "quota_exceeded"}, {"alice", 400, "invalid"}, {"nobody", 404, "not_found"}} {
		if code, _ := s.API("POST", "/api/v1/contacts", atok, map[string]string{"user": c.user}, &e); code != c.want || e.Error.Code != c.code {
			t.Errorf("add %s: %d %q", c.user, code, e.Error.Code)
		}
	}
	var list struct {
		Contacts []struct {
			User        string
			Since       int64
			DisplayName string `json:"display_name"`
		}
	}
	s.MustAPI(200, "GET", "/api/v1/contacts", atok, nil, &list)
	if len(list.Contacts) != 2 || list.Contacts[0].User != "bob" || list.Contacts[0].DisplayName != "Bob B" || list.Contacts[1].DisplayName != "carol" || list.Contacts[0].Since == 0 {
		t.Fatalf("contacts: %+v", list)
	}
	s.MustAPI(200, "DELETE", "/api/v1/contacts/bob", atok, nil, nil)
	s.MustAPI(200, "GET", "/api/v1/contacts", atok, nil, &list)
	if len(list.Contacts) != 1 || list.Contacts[0].User != "carol" {
		t.Fatalf("after removal: %+v", list)
	}
	s.MustAPI(200, "GET", "/api/v1/contacts", btok, nil, &list)
	if len(list.Contacts) != 0 {
		t.Fatalf("bob's contacts: %+v", list)
	}
}
