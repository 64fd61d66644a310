package acl

import "testing"

func TestMounts(t *testing.T) {
	m, err := CompileMounts([]Mount{{User: "paho", Mount: "paho"}, {Role: "device", User: "sensor-*", Mount: "fleet/%u"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ user, role, want string }{
		{"paho", "person", "mnt/paho/"},
		{"sensor-7", "device", "mnt/fleet/sensor-7/"},
		{"sensor-7", "person", ""},
		{"alice", "person", ""},
	} {
		if got := m.prefix(c.user, c.role); got != c.want {
			t.Errorf("%s (%s): mount %q, want %q", c.user, c.role, got, c.want)
		}
	}
	for _, bad := range []string{"", "a/", "/a", "a//b", "a/#", "+", "$x", "a%c"} {
		if _, err := CompileMounts([]Mount{{Mount: bad}}); err == nil {
			t.Errorf("mount %q accepted", bad)
		}
	}
	if _, err := CompileMounts([]Mount{{Role: "robot", Mount: "x"}}); err == nil {
		t.Error("role robot accepted")
	}
	var p Policy
	if p.MountOf("paho") != "" {
		t.Error("a policy without mounts mounted paho")
	}
	p.SetMounts(m)
	if p.MountOf("paho") != "mnt/paho/" {
		t.Error("MountOf(paho)")
	}
}
