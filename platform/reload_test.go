package platform_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/imtest"
)

// TestSIGHUPReloadsRules runs the real binary: operator rules come from the
// config file; SIGHUP applies an edited file to the live connection without
// dropping it; a file with a rule that reaches im/ is refused and the rules
// in force stay.
func TestSIGHUPReloadsRules(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "mqim.yaml")
	write := func(rules string) {
		if err := os.WriteFile(cfgFile, []byte("rules:\n"+rules), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  - {role: device, access: readwrite, topics: [\"devices/%u/#\"]}\n")
	p := imtest.StartProc(t, "--data", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--config", cfgFile)
	resp, err := http.Post(p.HTTP+"/api/v1/register", "application/json", strings.NewReader(fmt.Sprintf(`{"user":"alice","password":%q}`, imtest.Password)))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("register: %v %v", err, resp)
	}
	tok := loginHTTP(t, p.HTTP, "alice")
	post := func(path, body string, out any) {
		req, _ := http.NewRequest("POST", p.HTTP+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("POST %s: %v %v", path, err, resp)
		}
		defer resp.Body.Close()
		if out != nil {
			jsonDecode(t, resp.Body, out)
		}
	}
	post("/api/v1/devices", `{"id":"bot"}`, nil)
	var k struct{ Key string }
	post("/api/v1/devices/bot/keys", `{}`, &k)

	dev, code, err := imtest.DialRaw5(p.MQTT, "bot:1", "bot", k.Key)
	if err != nil || code != 0 {
		t.Fatalf("device connect: %#x %v", code, err)
	}
	defer dev.Close()
	granted := func(filter string) bool {
		rc, err := dev.Subscribe(filter)
		if err != nil {
			t.Fatalf("subscribe on the live connection: %v", err)
		}
		return rc[0] < 0x80
	}
	if !granted("devices/bot/#") || granted("bots/jobs") {
		t.Fatal("initial rules not in force")
	}
	write("  - {role: device, access: readwrite, topics: [\"devices/%u/#\", \"bots/#\"]}\n")
	p.Cmd.Process.Signal(syscall.SIGHUP)
	imtest.Eventually(t, "reloaded rules", 10*time.Second, func() bool { return granted("bots/jobs") })
	if rc, err := dev.Publish("bots/jobs", []byte("x")); err != nil || rc != 0 {
		t.Fatalf("publish under reloaded rules: %#x %v", rc, err)
	}

	// A rule reaching im/ fails to load; the rules in force stay.
	write("  - {user: \"*\", access: read, topics: [\"im/u/+/#\"]}\n")
	p.Cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond) // give a (wrong) reload the chance to happen
	if !granted("bots/other") || granted("im/u/alice/#") {
		t.Fatal("a refused reload changed the rules")
	}
}
