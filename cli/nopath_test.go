package cli

import (
	"net"
	"strings"
	"testing"
)

// A send-file whose connection never opens says what to do; the --loopback
// hint only where it can help (no routable address, not already on).
func TestNoPathHint(t *testing.T) {
	ipnet := func(s string) net.Addr {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	lo := []net.Addr{ipnet("127.0.0.1/8"), ipnet("::1/128")}
	linkLocal := append(lo, ipnet("fe80::1/64"))
	lan := append(lo, ipnet("192.0.2.2/24"))
	for _, c := range []struct {
		name     string
		addrs    []net.Addr
		loopback bool
		hint     bool
	}{
		{"loopback only", lo, false, true},
		{"loopback and link-local", linkLocal, false, true},
		{"loopback only, --loopback given", lo, true, false},
		{"a LAN address", lan, false, false},
		{"none", nil, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := noPathHint(routable(c.addrs), c.loopback)
			if !strings.HasPrefix(h, "no direct network path; the operator can configure a TURN server") {
				t.Fatalf("hint %q", h)
			}
			if got := strings.Contains(h, "--loopback"); got != c.hint {
				t.Fatalf("hint %q: mentions --loopback %v, want %v", h, got, c.hint)
			}
		})
	}
}
