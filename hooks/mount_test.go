package hooks

import "testing"

func TestMountInOut(t *testing.T) {
	const p = "mnt/paho/"
	for _, c := range []struct{ in, mapped string }{
		{"TopicA", "mnt/paho/TopicA"},
		{"/TopicA", "mnt/paho//TopicA"},
		{"#", "mnt/paho/#"},
		{"+/+", "mnt/paho/+/+"},
		{"$share/sharename/client_test5/x", "$share/sharename/mnt/paho/client_test5/x"},
		{"$share/g/im/u/paho/#", "$share/g/im/u/paho/#"},
		{"$TopicA/B", "$TopicA/B"},
		{"$SYS/#", "$SYS/#"},
		{"im/u/paho/#", "im/u/paho/#"},
		{"im", "im"},
		{"imx/a", "mnt/paho/imx/a"},
	} {
		if got := MountIn(p, c.in); got != c.mapped {
			t.Errorf("MountIn(%q) = %q, want %q", c.in, got, c.mapped)
		}
		if got := MountIn("", c.in); got != c.in {
			t.Errorf("unmounted MountIn(%q) = %q", c.in, got)
		}
	}
	for in, want := range map[string]string{"mnt/paho/TopicA": "TopicA", "mnt/paho//TopicA": "/TopicA", "im/u/paho/error": "im/u/paho/error", "mnt/other/x": "mnt/other/x"} {
		if got := MountOut(p, in); got != want {
			t.Errorf("MountOut(%q) = %q, want %q", in, got, want)
		}
	}
}
