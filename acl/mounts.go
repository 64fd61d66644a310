package acl

import (
	"fmt"
	"path"
	"strings"
)

// MountPrefix is where every mount lives: mount "paho" is the subtree
// "mnt/paho/".
const MountPrefix = "mnt/"

// Mount gives the users it matches (User and Role as in Rule) their own
// subtree of the operator namespace, as EMQX's and VerneMQ's mountpoints
// do: a mounted client's topics and filters outside im/ and $ are mapped
// under "mnt/{Mount}/" on the way in and back on the way out, so "#" and
// "+/+" stay inside the mount. Mount may hold %u (the user name), to give
// each user of a fleet its own.
type Mount struct {
	User  string `yaml:"user" json:"user,omitempty"`
	Role  string `yaml:"role" json:"role,omitempty"`
	Mount string `yaml:"mount" json:"mount"`
}

// Mounts is a compiled, immutable mount list; first match wins.
type Mounts struct{ list []Mount }

// CompileMounts validates mounts.
func CompileMounts(mounts []Mount) (*Mounts, error) {
	for i, m := range mounts {
		if m.Role != "" && m.Role != "person" && m.Role != "device" {
			return nil, fmt.Errorf("mount %d: role must be person or device, got %q", i+1, m.Role)
		}
		if _, err := path.Match(m.User, "x"); err != nil {
			return nil, fmt.Errorf("mount %d: bad user pattern %q: %v", i+1, m.User, err)
		}
		if err := validMountName(strings.ReplaceAll(m.Mount, "%u", "u")); err != nil {
			return nil, fmt.Errorf("mount %d: %q: %v", i+1, m.Mount, err)
		}
	}
	return &Mounts{list: mounts}, nil
}

func validMountName(n string) error {
	if n == "" {
		return fmt.Errorf("empty mount name")
	}
	for _, s := range strings.Split(n, "/") {
		switch {
		case s == "":
			return fmt.Errorf("empty level (no leading, trailing or double '/')")
		case strings.ContainsAny(s, "+#$%\x00"):
			return fmt.Errorf("mount names hold no wildcards, '$' or '%%' (but %%u)")
		}
	}
	return nil
}

// Len reports the number of mounts.
func (m *Mounts) Len() int {
	if m == nil {
		return 0
	}
	return len(m.list)
}

// prefix is the topic prefix of user's mount ("mnt/{name}/"), "" if none.
func (m *Mounts) prefix(user, role string) string {
	if m == nil {
		return ""
	}
	for _, mt := range m.list {
		if !appliesTo(mt.User, mt.Role, user, role) {
			continue
		}
		return MountPrefix + strings.ReplaceAll(mt.Mount, "%u", user) + "/"
	}
	return ""
}

// SetMounts swaps the mounts (on reload). A connection keeps the mount it
// was given at CONNECT.
func (p *Policy) SetMounts(m *Mounts) { p.mounts.Store(m) }

// MountOf is the topic prefix of user's mount, "mnt/{name}/", or "" when
// no mount matches: then its topics are used as they are.
func (p *Policy) MountOf(user string) string {
	m := p.mounts.Load()
	if m.Len() == 0 {
		return ""
	}
	return m.prefix(user, p.role(user))
}

// Mounted reports whether client topic t is mapped under a mount: every
// topic but those of im/ (the IM protocol's own, which a mounted user
// uses as any other) and $-topics ($SYS, and "$x" names, which no
// wildcard filter may match [MQTT-4.7.2-1]: they are not mapped, so they
// keep their meaning and stay unwritable).
func Mounted(t string) bool {
	return !strings.HasPrefix(t, "$") && t != "im" && !strings.HasPrefix(t, "im/")
}
