package cli_test

import (
	"strings"
	"testing"

	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/internal/imtest"
)

// TestHelp: every command and subcommand answers --help with its usage on
// stdout and exit 0 (it used to be an error and exit 1 for some).
func TestHelp(t *testing.T) {
	cases := []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"--help"}, "usage:"},
		{[]string{"device", "--help"}, "mqim device create"},
		{[]string{"device"}, "mqim device create"},
		{[]string{"device", "create", "--help"}, "--password"},
		{[]string{"device", "list", "-h"}, "mqim device list"},
		{[]string{"device", "key", "--help"}, "mqim device key create"},
		{[]string{"device", "key", "create", "--help"}, "--client-id"},
		{[]string{"device", "key", "revoke", "thermo", "--help"}, "mqim device key revoke"},
		{[]string{"user", "--help"}, "mqim user add"},
		{[]string{"user", "add", "--help"}, "--admin-token"},
		{[]string{"group", "--help"}, "mqim group create"},
		{[]string{"group", "create", "--help"}, "--owner"},
		{[]string{"send-file", "--help"}, "mqim send-file"},
		{[]string{"recv-files", "--help"}, "mqim recv-files"},
		{[]string{"serve", "--help"}, ""}, // Go's flag usage, on stderr
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, errs := run(t, "", c.args...)
			if code != 0 || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q on stdout", code, out, errs, c.want)
			}
		})
	}
}

// TestFlagsAfterArguments: flags after positional arguments are parsed, not
// silently ignored, and a command given arguments it does not take says so.
func TestFlagsAfterArguments(t *testing.T) {
	dir := t.TempDir()
	if code, out, errs := run(t, "rabbit-hole-42\n", "user", "add", "alice", "--data", dir); code != 0 {
		t.Fatalf("user add NAME --data: exit %d %q %q", code, out, errs)
	}
	if code, out, errs := run(t, "", "group", "create", "team", "--data", dir, "--owner", "alice"); code != 0 || !strings.Contains(out, "created group team") {
		t.Fatalf("group create GID --data --owner: exit %d %q %q", code, out, errs)
	}
	if code, _, errs := run(t, "", "serve", "oops", "--data", dir); code != 1 || !strings.Contains(errs, "no arguments") {
		t.Fatalf("serve with an argument: exit %d %q", code, errs)
	}
	if code, _, errs := run(t, "", "group", "create", "team2", "--data", dir, "--ownr", "alice"); code != 1 || !strings.Contains(errs, "not defined") {
		t.Fatalf("misspelt flag after arguments: exit %d %q", code, errs)
	}
	s := imtest.Start(t, dir)
	var g struct{ Members []string }
	s.MustAPI(200, "GET", "/api/v1/groups/team", loginAs(t, s, "alice", "rabbit-hole-42"), nil, &g)
}

// TestUserAddOnline: an operator adds users to a running server through its
// admin endpoint, with the admin token from the config.
func TestUserAddOnline(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef-admin"
	s := imtest.Start(t, "", func(c *config.Config) { c.AdminToken, c.OpenRegistration = token, false })
	closed := imtest.Start(t, "") // no admin_token: no endpoint
	runCases(t, []cliCase{
		{"created", "rabbit-hole-42\n", []string{"user", "add", "--http", s.HTTP, "--admin-token", token, "carol"}, 0, "created user carol"},
		{"flags after the name", "rabbit-hole-43\n", []string{"user", "add", "dave", "--http", s.HTTP, "--admin-token", token}, 0, "created user dave"},
		{"exists", "rabbit-hole-42\n", []string{"user", "add", "--http", s.HTTP, "--admin-token", token, "carol"}, 1, "exists"},
		{"short password", "short\n", []string{"user", "add", "--http", s.HTTP, "--admin-token", token, "erin"}, 1, "8-256 bytes"},
		{"wrong token", "rabbit-hole-42\n", []string{"user", "add", "--http", s.HTTP, "--admin-token", token + "x", "frank"}, 1, "unauthorized"},
		{"no token", "rabbit-hole-42\n", []string{"user", "add", "--http", s.HTTP, "--admin-token", "", "frank"}, 1, "admin token"},
		{"server without admin_token", "rabbit-hole-42\n", []string{"user", "add", "--http", closed.HTTP, "--admin-token", token, "frank"}, 1, "not_found"},
	})
	loginAs(t, s, "carol", "rabbit-hole-42")
	loginAs(t, s, "dave", "rabbit-hole-43")
	if code, _ := s.API("POST", "/api/v1/login", "", map[string]string{"user": "frank", "password": "rabbit-hole-42"}, nil); code != 401 {
		t.Fatalf("frank login: %d, want 401 (never created)", code)
	}
}
