package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/groups"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/metrics"
	"github.com/mqim/mqim/presence"
	"github.com/mqim/mqim/profiles"
	"github.com/mqim/mqim/userlists"
)

// testGateway is a gateway over in-memory stores behind an httptest server:
// enough for the handlers that do not reach the broker or the im service.
type testGateway struct {
	*Gateway
	srv *httptest.Server
}

// newTestGateway serves a gateway; edit adjusts its options first.
func newTestGateway(t *testing.T, edit func(*Options)) *testGateway {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := kvstore.Open("", kvstore.Options{InMemory: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	acc, err := accounts.Open(db, accounts.Options{KDF: accounts.KDF{Time: 1, MemKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	grp, err := groups.Open(db, groups.Limits{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := history.OpenBadger(db, history.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hist.Close() })
	blocks, err := userlists.Open(db, userlists.Blocks, 10, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	contacts, err := userlists.Open(db, userlists.Contacts, 10, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profiles.Open(db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Log: log, Accounts: acc, Groups: grp, History: hist, Presence: presence.New(),
		Policy: &acl.Policy{Members: grp, Accounts: acc, Blocks: blocks}, Blocks: blocks, Contacts: contacts, Profiles: prof,
		Metrics: metrics.New(), OpenRegistration: true, Now: time.Now,
		AllowedOrigins: []string{"https://app.example"},
	}
	if edit != nil {
		edit(&o)
	}
	g := New(o)
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return &testGateway{Gateway: g, srv: srv}
}

// user creates a person and returns a token of theirs.
func (tg *testGateway) user(t *testing.T, name string) string {
	t.Helper()
	if err := tg.o.Accounts.Create(name, "correct horse battery staple"); err != nil {
		t.Fatal(err)
	}
	tok, err := tg.o.Accounts.IssueToken(name)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// code is the error code of an error answer, or "".
func (a answer) code() string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (a answer) String() string { return http.StatusText(a.status) + " " + a.raw }

// do sends a request; token "" sends none, headers are name, value pairs.
func (tg *testGateway) do(t *testing.T, method, path, token, body string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, tg.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := tg.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// TestRouteTable: every pattern is registered once; a route of a user
// needs a token (401 without one, whatever else it wants), the others do
// not; unknown paths under /api/v1 are 404 not_found.
func TestRouteTable(t *testing.T) {
	tg := newTestGateway(t, nil)
	seen := map[string]bool{}
	for _, rt := range tg.apiRoutes() {
		if seen[rt.pattern] {
			t.Errorf("%s: in the table twice", rt.pattern)
		}
		seen[rt.pattern] = true
		if rt.h == nil {
			t.Errorf("%s: off in a gateway with every store", rt.pattern)
			continue
		}
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = strings.NewReplacer("{peer}", "bob", "{gid}", "g1", "{user}", "bob", "{id}", "bob", "{kid}", "k1").Replace(path)
		a := tg.do(t, method, path, "", "")
		if rt.access == authUser && (a.status != http.StatusUnauthorized || a.code() != "unauthorized") {
			t.Errorf("%s without a token: %v, want 401 unauthorized", rt.pattern, a)
		}
		if rt.access == authAdmin && a.status != http.StatusNotFound {
			t.Errorf("%s with no admin token configured: %v, want 404", rt.pattern, a)
		}
		if a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", rt.pattern, a.header.Get("Cache-Control"))
		}
	}
	if a := tg.do(t, "GET", "/api/v1/nothing-here", "", ""); a.status != http.StatusNotFound || a.code() != "not_found" {
		t.Errorf("unknown endpoint: %v", a)
	}
	if a := tg.do(t, "GET", "/healthz", "", ""); a.status != http.StatusOK {
		t.Errorf("healthz: %v", a)
	}
}

// TestRouteOff: a list the server was built without has no routes.
func TestRouteOff(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) { o.Contacts = nil })
	tok := tg.user(t, "alice")
	if a := tg.do(t, "GET", "/api/v1/contacts", tok, ""); a.status != http.StatusNotFound {
		t.Errorf("GET /contacts without a contact list: %v, want 404", a)
	}
	if a := tg.do(t, "GET", "/api/v1/blocks", tok, ""); a.status != http.StatusOK {
		t.Errorf("GET /blocks: %v, want 200", a)
	}
}

// TestBearer: the Authorization header is parsed once, the same way for
// every route: scheme "Bearer ", spaces around the token trimmed.
func TestBearer(t *testing.T) {
	tg := newTestGateway(t, nil)
	tok := tg.user(t, "alice")
	for _, c := range []struct {
		name, header string
		want         int
	}{
		{"valid", "Bearer " + tok, http.StatusOK},
		{"padded", "Bearer  " + tok + " ", http.StatusOK},
		{"no scheme", tok, http.StatusUnauthorized},
		{"basic", "Basic " + tok, http.StatusUnauthorized},
		{"garbage", "Bearer x.y.z", http.StatusUnauthorized},
		{"empty", "Bearer ", http.StatusUnauthorized},
	} {
		a := tg.do(t, "GET", "/api/v1/me", "", "", "Authorization", c.header)
		if a.status != c.want {
			t.Errorf("%s: %v, want %d", c.name, a, c.want)
		}
		if c.want == http.StatusOK && a.body["user"] != "alice" {
			t.Errorf("%s: /me = %v", c.name, a.body)
		}
	}
}

// TestAdminRoute: with an admin token configured the admin route takes
// that token and no user's.
func TestAdminRoute(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) { o.AdminToken = "s3cret-admin" })
	tok := tg.user(t, "alice")
	body := `{"user":"bob","password":"correct horse battery staple"}`
	if a := tg.do(t, "POST", "/api/v1/admin/users", tok, body); a.status != http.StatusUnauthorized {
		t.Errorf("a user's token: %v, want 401", a)
	}
	if a := tg.do(t, "POST", "/api/v1/admin/users", "s3cret-admin", body); a.status != http.StatusCreated {
		t.Errorf("the admin token: %v, want 201", a)
	}
	if a := tg.do(t, "POST", "/api/v1/admin/users", "s3cret-admin", body); a.status != http.StatusConflict || a.code() != "conflict" {
		t.Errorf("again: %v, want 409 conflict", a)
	}
}

// TestCORS: requests from another origin are refused unless allowlisted;
// a preflight from an allowed origin lists the methods and headers.
func TestCORS(t *testing.T) {
	tg := newTestGateway(t, nil)
	tok := tg.user(t, "alice")
	if a := tg.do(t, "GET", "/api/v1/me", tok, "", "Origin", "https://evil.example"); a.status != http.StatusForbidden || a.code() != "forbidden" {
		t.Errorf("foreign origin: %v, want 403 forbidden", a)
	}
	a := tg.do(t, "GET", "/api/v1/me", tok, "", "Origin", "https://app.example")
	if a.status != http.StatusOK || a.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("allowed origin: %v, ACAO %q", a, a.header.Get("Access-Control-Allow-Origin"))
	}
	a = tg.do(t, "OPTIONS", "/api/v1/me", "", "", "Origin", "https://app.example")
	if a.status != http.StatusNoContent || !strings.Contains(a.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %v, headers %v", a, a.header)
	}
	if a := tg.do(t, "OPTIONS", "/api/v1/me", "", ""); a.status != http.StatusForbidden {
		t.Errorf("preflight without Origin: %v, want 403", a)
	}
}

// TestDecode: bodies are read strictly, each refusal with its reason.
func TestDecode(t *testing.T) {
	cases := []struct {
		name, body string
		status     int
		says       string
	}{
		{"unknown field", `{"user":"bob","x":1}`, http.StatusBadRequest, "unknown field"},
		{"trailing data", `{"user":"bob"} {}`, http.StatusBadRequest, "trailing data"},
		{"invalid UTF-8", "{\"user\":\"b\xffb\"}", http.StatusBadRequest, "UTF-8"},
		{"malformed", `{"user":`, http.StatusBadRequest, "malformed"},
		{"oversize", `{"user":"` + strings.Repeat("a", maxBody) + `"}`, http.StatusRequestEntityTooLarge, "body over"},
	}
	tg := newTestGateway(t, nil)
	tok := tg.user(t, "alice")
	for _, c := range cases {
		a := tg.do(t, "POST", "/api/v1/blocks", tok, c.body)
		if a.status != c.status || !strings.Contains(a.raw, c.says) {
			t.Errorf("%s: %v, want %d saying %q", c.name, a, c.status, c.says)
		}
	}
}

// TestGroupHistoryAccess: a group's history is for its members; a missing
// group is 404, not 403, and a DM's history needs an existing peer.
func TestGroupHistoryAccess(t *testing.T) {
	tg := newTestGateway(t, nil)
	alice, bob := tg.user(t, "alice"), tg.user(t, "bob")
	tg.user(t, "carol")
	if _, err := tg.o.Groups.Create("g1", "G", "alice", []string{"carol"}, 1); err != nil {
		t.Fatal(err)
	}
	tg.checkGets(t, []getCase{
		{"owner", alice, "/api/v1/history/g/g1", http.StatusOK},
		{"outsider", bob, "/api/v1/history/g/g1", http.StatusForbidden},
		{"outsider, group view", bob, "/api/v1/groups/g1", http.StatusForbidden},
		{"member, group view", alice, "/api/v1/groups/g1", http.StatusOK},
		{"no such group", alice, "/api/v1/history/g/nope", http.StatusNotFound},
		{"dm peer", alice, "/api/v1/history/dm/bob", http.StatusOK},
		{"dm nobody", alice, "/api/v1/history/dm/nobody", http.StatusNotFound},
		{"bad limit", alice, "/api/v1/history/dm/bob?limit=0", http.StatusBadRequest},
	})
}

// getCase is a GET by who (with token) and the status it must get.
type getCase struct {
	who, token, path string
	status           int
}

func (tg *testGateway) checkGets(t *testing.T, cases []getCase) {
	t.Helper()
	for _, c := range cases {
		if a := tg.do(t, "GET", c.path, c.token, ""); a.status != c.status {
			t.Errorf("%s GET %s: %v, want %d", c.who, c.path, a, c.status)
		}
	}
}

// TestLists: a block list is added to, read and removed from; listing
// oneself is refused.
func TestLists(t *testing.T) {
	tg := newTestGateway(t, nil)
	alice := tg.user(t, "alice")
	tg.user(t, "bob")
	if a := tg.do(t, "POST", "/api/v1/blocks", alice, `{"user":"bob"}`); a.status != http.StatusOK || a.body["blocked"] != true {
		t.Fatalf("block: %v", a)
	}
	if a := tg.do(t, "POST", "/api/v1/blocks", alice, `{"user":"alice"}`); a.status != http.StatusBadRequest {
		t.Errorf("block oneself: %v, want 400", a)
	}
	if a := tg.do(t, "POST", "/api/v1/blocks", alice, `{"user":"nobody"}`); a.status != http.StatusNotFound {
		t.Errorf("block nobody: %v, want 404", a)
	}
	if a := tg.do(t, "GET", "/api/v1/blocks", alice, ""); a.status != http.StatusOK || !strings.Contains(a.raw, `"user":"bob"`) {
		t.Errorf("list: %v", a)
	}
	if a := tg.do(t, "DELETE", "/api/v1/blocks/bob", alice, ""); a.status != http.StatusOK || a.body["blocked"] != false {
		t.Errorf("unblock: %v", a)
	}
	if a := tg.do(t, "GET", "/api/v1/blocks", alice, ""); !bytes.Contains([]byte(a.raw), []byte(`"blocks":[]`)) {
		t.Errorf("list after unblock: %v", a)
	}
}

// TestRegisterClosed: without open registration only the admin creates
// people.
func TestRegisterClosed(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) { o.OpenRegistration = false })
	a := tg.do(t, "POST", "/api/v1/register", "", `{"user":"dave","password":"correct horse battery staple"}`)
	if a.status != http.StatusForbidden {
		t.Errorf("register when closed: %v, want 403", a)
	}
}

// TestDeviceAccess: a device's keys are its manager's business only
// (acl.CanManageDevice).
func TestDeviceAccess(t *testing.T) {
	tg := newTestGateway(t, nil)
	alice, bob := tg.user(t, "alice"), tg.user(t, "bob")
	if a := tg.do(t, "POST", "/api/v1/devices", alice, `{"id":"alice-meter"}`); a.status != http.StatusCreated {
		t.Fatalf("create device: %v", a)
	}
	tg.checkGets(t, []getCase{
		{"manager", alice, "/api/v1/devices/alice-meter/keys", http.StatusOK},
		{"another person", bob, "/api/v1/devices/alice-meter/keys", http.StatusForbidden},
		{"a person is no device", alice, "/api/v1/devices/bob/keys", http.StatusForbidden},
		{"no such device", alice, "/api/v1/devices/nope/keys", http.StatusNotFound},
	})
	// Every route of a device is behind the same rule (routes.go, managed).
	for _, rt := range tg.apiRoutes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		if !strings.HasPrefix(path, "/api/v1/devices/{id}") {
			continue
		}
		path = strings.NewReplacer("{id}", "alice-meter", "{kid}", "k1").Replace(path)
		if a := tg.do(t, method, path, bob, ""); a.status != http.StatusForbidden {
			t.Errorf("bob %s: %v, want 403", rt.pattern, a)
		}
	}
	if a := tg.do(t, "POST", "/api/v1/devices/alice-meter/keys", alice, ""); a.status != http.StatusCreated {
		t.Errorf("manager creates a key: %v, want 201", a)
	}
}
