package platform_test

import (
	"context"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/internal/imtest"
)

type step struct {
	script, want string
	hasWant      bool
}

// cookbook extracts the sh blocks (and the text block after each) between the
// cookbook markers of README.md.
func cookbook(t *testing.T) []step {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start, end := strings.Index(s, "<!-- cookbook:start -->"), strings.Index(s, "<!-- cookbook:end -->")
	if start < 0 || end < start {
		t.Fatal("README.md has no cookbook markers")
	}
	re := regexp.MustCompile("(?s)```(sh|text)\n(.*?)```")
	var steps []step
	for _, m := range re.FindAllStringSubmatch(s[start:end], -1) {
		if m[1] == "sh" {
			steps = append(steps, step{script: m[2]})
		} else if len(steps) > 0 {
			steps[len(steps)-1].want, steps[len(steps)-1].hasWant = m[2], true
		}
	}
	return steps
}

// cookbookRules parses the rules of the cookbook's yaml block.
func cookbookRules(t *testing.T) []acl.Rule {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	s = s[strings.Index(s, "<!-- cookbook:start -->"):strings.Index(s, "<!-- cookbook:end -->")]
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(s)
	if m == nil {
		t.Fatal("the cookbook shows no yaml block of rules")
	}
	var c struct {
		Rules []acl.Rule `yaml:"rules"`
	}
	if err := yaml.Unmarshal([]byte(m[1]), &c); err != nil {
		t.Fatalf("cookbook rules: %v", err)
	}
	return c.Rules
}

// matchLine treats "…" in the documented output as "anything".
func matchLine(want, got string) bool {
	parts := strings.Split(want, "…")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(got)
}

// TestREADMECookbook runs the README's mosquitto_pub/sub cookbook against a
// real server and checks every documented output line.
func TestREADMECookbook(t *testing.T) {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub", "curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: scripts/test installs mosquitto-clients and curl (apt-get)", tool)
		}
	}
	steps := cookbook(t)
	if len(steps) < 5 {
		t.Fatalf("cookbook has only %d steps", len(steps))
	}
	// The quick start's sample config, as shipped (its addresses and data
	// directory are the test's own), whose rules the README shows.
	example, err := config.Load([]string{"--config", "../mqim.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if shown := cookbookRules(t); !reflect.DeepEqual(shown, example.Rules) {
		t.Fatalf("the cookbook shows rules %+v, mqim.example.yaml has %+v", shown, example.Rules)
	}
	s := imtest.Start(t, "", func(c *imtestConfig) {
		example.Data, example.HTTP, example.MQTT, example.Durability = c.Data, c.HTTP, c.MQTT, c.Durability
		*c = example
	})
	work := t.TempDir() // the cookbook keeps a key file in its working directory
	httpHost := strings.TrimPrefix(s.HTTP, "http://")
	mqttPort := s.MQTTAddr.String()[strings.LastIndex(s.MQTTAddr.String(), ":")+1:]
	for i, st := range steps {
		script := strings.ReplaceAll(st.script, "127.0.0.1:8080", httpHost)
		script = strings.ReplaceAll(script, "-p 1883", "-p "+mqttPort)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, "bash", "-eo", "pipefail", "-c", script)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("step %d failed: %v\n--- script\n%s--- output\n%s", i+1, err, st.script, out)
		}
		if !st.hasWant {
			continue
		}
		got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		want := strings.Split(strings.TrimRight(st.want, "\n"), "\n")
		if len(got) != len(want) {
			t.Fatalf("step %d: %d output lines, documented %d\n--- got\n%s--- documented\n%s", i+1, len(got), len(want), out, st.want)
		}
		for j := range want {
			if !matchLine(want[j], got[j]) {
				t.Fatalf("step %d line %d:\n got: %s\nwant: %s", i+1, j+1, got[j], want[j])
			}
		}
	}
}
