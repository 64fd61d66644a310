package cli_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/imtest"
)

// The device commands drive a running server over its HTTP API.
func TestDeviceCommands(t *testing.T) {
	s := imtest.Start(t, "")
	s.User("alice")
	auth := []string{"--http", s.HTTP, "--user", "alice", "--password", imtest.Password}
	do := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errs := run(t, "", args...)
		if code != wantCode {
			t.Fatalf("mqim %v: exit %d, out %q, err %q", args, code, out, errs)
		}
		return out + errs
	}
	do(0, append(append([]string{"device", "create"}, auth...), "thermo")...)
	if out := do(0, append([]string{"device", "list"}, auth...)...); strings.TrimSpace(out) != "thermo" {
		t.Fatalf("list: %q", out)
	}
	out := do(0, append(append([]string{"device", "key", "create"}, auth...), "--client-id", "thermo:1", "thermo")...)
	key := regexp.MustCompile(`mqk_\S+`).FindString(out)
	id := regexp.MustCompile(`key (\S+) for thermo`).FindStringSubmatch(out)
	if key == "" || id == nil {
		t.Fatalf("key create printed %q", out)
	}
	if _, code, _ := imtest.DialRaw5(s.MQTT, "thermo:1", "thermo", key); code != 0 {
		t.Fatalf("connect with the new key: %#x", code)
	}
	if out := do(0, append(append([]string{"device", "key", "list"}, auth...), "thermo")...); !strings.Contains(out, id[1]+"\t") || !strings.Contains(out, "active") {
		t.Fatalf("key list: %q", out)
	}
	do(0, append(append([]string{"device", "key", "revoke"}, auth...), "thermo", id[1])...)
	if out := do(0, append(append([]string{"device", "key", "list"}, auth...), "thermo")...); !strings.Contains(out, "revoked") {
		t.Fatalf("after revoke: %q", out)
	}
	if _, code, _ := imtest.DialRaw5(s.MQTT, "thermo:1", "thermo", key); code != 0x86 {
		t.Fatalf("revoked key connect: %#x", code)
	}
	if out := do(1, append(append([]string{"device", "create"}, auth...), "alice")...); !strings.Contains(out, "conflict") {
		t.Fatalf("duplicate id: %q", out)
	}
	do(1, "device", "list", "--http", s.HTTP, "--user", "alice", "--password", "wrong-password")
}
