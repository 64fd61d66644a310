package topic

import "testing"

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		filter, name string
		want         bool
	}{
		{"im/u/bob/#", "im/u/bob/dm/alice", true},
		{"im/u/bob/#", "im/u/bob", true}, // the parent level [MQTT-4.7.1-2]
		{"im/u/bob/#", "im/u/bobby/dm/x", false},
		{"im/u/bob/dm/+", "im/u/bob/dm/alice", true},
		{"im/u/bob/dm/+", "im/u/bob/dm/alice/x", false},
		{"im/u/bob/dm/+", "im/u/bob/dm", false},
		{"im/u/+/dm/alice", "im/u/bob/dm/alice", true},
		{"im/u/bob/g/+", "im/u/bob/dm/alice", false},
		{"#", "im/u/bob/dm/alice", true},
		{"+/+", "a/b", true},
		{"+", "a/b", false},
		{"a/+/c", "a//c", true}, // an empty level is a level
		{"a/b", "a/b", true},
		{"a/b", "a/b/", false},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"$share/g/im/u/bob/#", "im/u/bob/g/team", true},
		{"$share/g", "im/u/bob", false},
		{"a/#/b", "a/x/b", false}, // invalid filter: "#" not last
	} {
		if got := Match(c.filter, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.name, got, c.want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("im/u/bob/#", "im/u/bob/dm/alice")
	f.Add("+/+/#", "$a/b")
	f.Fuzz(func(t *testing.T, filter, name string) {
		// Must not panic; a filter equal to a wildcard-free name matches it.
		Match(filter, name)
		if name != "" && !containsWildcard(name) && name[0] != '$' && !Match(name, name) {
			t.Fatalf("%q does not match itself", name)
		}
	})
}

func containsWildcard(s string) bool {
	for _, r := range s {
		if r == '+' || r == '#' {
			return true
		}
	}
	return false
}
