package platform_test

import (
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/imtest"
)

func TestHTTPAPIErrors(t *testing.T) {
	s := imtest.Start(t, "")
	alice := s.User("alice")
	bob := s.User("bob")
	s.User("carol")
	s.MustAPI(201, "POST", "/api/v1/groups", alice, map[string]any{"id": "team", "members": []string{"bob"}}, nil)
	cases := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"malformed JSON", "POST", "/api/v1/register", "", `{"user":`, 400, "invalid"},
		{"unknown field", "POST", "/api/v1/register", "", `{"user":"x","password":"12345678","admin":true}`, 400, "invalid"},
		{"trailing data", "POST", "/api/v1/register", "", `{"user":"x1","password":"12345678"} {}`, 400, "invalid"},
		{"oversize body", "POST", "/api/v1/register", "", `{"user":"x","password":"` + strings.Repeat("p", 70000) + `"}`, 413, "too_large"},
		{"bad user id", "POST", "/api/v1/register", "", map[string]string{"user": "../etc", "password": "12345678"}, 400, "invalid"},
		{"short password", "POST", "/api/v1/register", "", map[string]string{"user": "dave", "password": "123"}, 400, "invalid"},
		{"taken", "POST", "/api/v1/register", "", map[string]string{"user": "alice", "password": "12345678"}, 409, "conflict"},
		{"wrong password", "POST", "/api/v1/login", "", map[string]string{"user": "alice", "password": "nope-nope"}, 401, "unauthorized"},
		{"unknown user login", "POST", "/api/v1/login", "", map[string]string{"user": "zed", "password": "nope-nope"}, 401, "unauthorized"},
		{"no token", "GET", "/api/v1/me", "", nil, 401, "unauthorized"},
		{"forged token", "GET", "/api/v1/me", alice[:len(alice)-4] + "AAAA", nil, 401, "unauthorized"},
		{"history of unknown peer", "GET", "/api/v1/history/dm/zed", alice, nil, 404, "not_found"},
		{"bad limit", "GET", "/api/v1/history/dm/bob?limit=0", alice, nil, 400, "invalid"},
		{"bad before", "GET", "/api/v1/history/dm/bob?before=x", alice, nil, 400, "invalid"},
		{"group history non-member", "GET", "/api/v1/history/g/team", s.Login("carol"), nil, 403, "forbidden"},
		{"unknown group", "GET", "/api/v1/groups/nope", alice, nil, 404, "not_found"},
		{"bad cursor", "GET", "/api/v1/sync?since=garbage", alice, nil, 400, "invalid"},
		{"cursor from another epoch", "GET", "/api/v1/sync?since=deadbeef-5", alice, nil, 410, "reset"},
		{"add unknown member", "POST", "/api/v1/groups/team/members", alice, map[string]string{"user": "zed"}, 404, "not_found"},
		{"non-member adds", "POST", "/api/v1/groups/team/members", s.Login("carol"), map[string]string{"user": "carol"}, 403, "forbidden"},
		{"member removes other", "DELETE", "/api/v1/groups/team/members/alice", bob, nil, 403, "forbidden"},
		{"group id taken", "POST", "/api/v1/groups", bob, map[string]any{"id": "team"}, 409, "conflict"},
		{"bad group id", "POST", "/api/v1/groups", bob, map[string]any{"id": "Team Space"}, 400, "invalid"},
		{"unknown endpoint", "GET", "/api/v1/nothing", alice, nil, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out struct {
				Error struct{ Code, Message string }
			}
			code, err := s.API(c.method, c.path, c.token, c.body, &out)
			if err != nil || code != c.status || out.Error.Code != c.code || out.Error.Message == "" {
				t.Fatalf("status %d, error %+v (%v); want %d %s", code, out.Error, err, c.status, c.code)
			}
		})
	}
	// Membership changes: bob leaves, carol is added; both effective at once.
	s.MustAPI(200, "DELETE", "/api/v1/groups/team/members/bob", bob, nil, nil)
	s.MustAPI(200, "POST", "/api/v1/groups/team/members", alice, map[string]string{"user": "carol"}, nil)
	bobc := s.MustConnect("bob", imtest.ClientOpts{})
	carol := s.MustConnect("carol", imtest.ClientOpts{})
	bobc.Publish("im/g/team", 1, "am I still in?")
	if n := bobc.WaitFor("im/u/bob/error", 1); len(n) != 1 {
		t.Fatal("removed member got no notice")
	}
	s.MustConnect("alice", imtest.ClientOpts{}).Publish("im/g/team", 1, "welcome carol")
	carol.WaitFor("im/u/carol/g/team", 1)
	if len(bobc.Messages("im/u/bob/g/")) != 0 {
		t.Fatal("removed member still receives the group")
	}
}

func TestRegistrationCanBeClosed(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.OpenRegistration = false })
	var out struct{ Error struct{ Code string } }
	code, _ := s.API("POST", "/api/v1/register", "", map[string]string{"user": "eve", "password": "12345678"}, &out)
	if code != 403 || out.Error.Code != "forbidden" {
		t.Fatalf("closed registration: %d %+v", code, out)
	}
}

func TestSecurityHeadersOnWebClient(t *testing.T) {
	s := imtest.Start(t, "")
	code, err := s.API("GET", "/", "", nil, nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /: %d %v", code, err)
	}
	resp, err := httpGet(s.HTTP + "/")
	if err != nil {
		t.Fatal(err)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("no nosniff")
	}
}
