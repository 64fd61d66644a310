package acl

import (
	"fmt"
	"path"
	"strings"
)

// Rule is one operator rule for topics outside im/, in the spirit of
// mosquitto's acl_file. A rule applies to a user when User matches (exact
// name or a glob such as "sensor-*"; empty or "*" = everyone) and Role
// matches ("person", "device"; empty = any). Topics may hold MQTT wildcards
// and the placeholders %u (user name) and %c (client id).
type Rule struct {
	User   string   `yaml:"user" json:"user,omitempty"`
	Role   string   `yaml:"role" json:"role,omitempty"`
	Access string   `yaml:"access" json:"access"` // read, write, readwrite, deny
	Topics []string `yaml:"topics" json:"topics"`
}

type access uint8

const (
	accRead access = 1 << iota
	accWrite
	accDeny
)

type compiled struct {
	Rule
	acc access
}

// Rules is a compiled, immutable rule list. Evaluation is first match wins,
// in file order; no match denies.
type Rules struct{ list []compiled }

// CompileRules validates rules. A rule whose topics could reach im/ (or
// $SYS) is refused: the im/ namespace is governed by the built-in contract
// only, so no operator rule can open another user's inbox by accident.
func CompileRules(rules []Rule) (*Rules, error) {
	out := &Rules{}
	for i, r := range rules {
		c := compiled{Rule: r}
		switch r.Access {
		case "read":
			c.acc = accRead
		case "write":
			c.acc = accWrite
		case "readwrite":
			c.acc = accRead | accWrite
		case "deny":
			c.acc = accDeny
		default:
			return nil, fmt.Errorf("acl rule %d: access must be read, write, readwrite or deny, got %q", i+1, r.Access)
		}
		if r.Role != "" && r.Role != "person" && r.Role != "device" {
			return nil, fmt.Errorf("acl rule %d: role must be person or device, got %q", i+1, r.Role)
		}
		if _, err := path.Match(r.User, "x"); err != nil {
			return nil, fmt.Errorf("acl rule %d: bad user pattern %q: %v", i+1, r.User, err)
		}
		if len(r.Topics) == 0 {
			return nil, fmt.Errorf("acl rule %d: no topics", i+1)
		}
		for _, t := range r.Topics {
			if err := validPattern(t); err != nil {
				return nil, fmt.Errorf("acl rule %d: topic %q: %v", i+1, t, err)
			}
			// A pattern starting with "+" or "#" ("#": the whole operator
			// namespace) is fine: im/ and $-topics are decided before any
			// rule is looked at (Policy.CanWrite, CanSubscribe), so no rule
			// ever opens them, whatever its pattern. Naming im/ is refused
			// so nobody writes a rule believing it would.
			first := strings.SplitN(t, "/", 2)[0]
			switch {
			case first == "im":
				return nil, fmt.Errorf("acl rule %d: topic %q reaches the im/ namespace, whose access is fixed by the protocol (own inbox only); rules may only cover other namespaces", i+1, t)
			case strings.HasPrefix(first, "$"):
				return nil, fmt.Errorf("acl rule %d: topic %q: $-topics are not grantable by rules ($SYS is for admins)", i+1, t)
			}
		}
		out.list = append(out.list, c)
	}
	return out, nil
}

func validPattern(t string) error {
	if t == "" {
		return fmt.Errorf("empty")
	}
	segs := strings.Split(t, "/")
	for i, s := range segs {
		if strings.Contains(s, "#") && (s != "#" || i != len(segs)-1) {
			return fmt.Errorf("# must be a whole, final segment")
		}
		if strings.Contains(s, "+") && s != "+" {
			return fmt.Errorf("+ must be a whole segment")
		}
	}
	return nil
}

// Len reports the number of rules.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.list)
}

// allow decides for a non-im topic or filter. write selects the access asked.
func (r *Rules) allow(user, role, clientID, filter string, write bool) bool {
	if r == nil {
		return false
	}
	want := accRead
	if write {
		want = accWrite
	}
	for _, c := range r.list {
		if !appliesTo(c.User, c.Role, user, role) {
			continue
		}
		for _, t := range c.Topics {
			p := strings.NewReplacer("%u", user, "%c", clientID).Replace(t)
			if c.acc == accDeny {
				// A denied topic refuses what it covers. A wider filter
				// that only overlaps it (a/# over deny a/secret) goes on to
				// the other rules: every delivery is judged again with its
				// concrete topic, which the deny then covers.
				if covers(p, filter) {
					return false
				}
				continue
			}
			if covers(p, filter) {
				if c.acc&want != 0 {
					return true
				}
			}
		}
	}
	return false
}

// appliesTo reports whether a rule or mount for userPat (a name or glob;
// "" or "*": everyone) and rolePat ("": any) applies to user of role.
func appliesTo(userPat, rolePat, user, role string) bool {
	if userPat != "" && userPat != "*" {
		if ok, _ := path.Match(userPat, user); !ok {
			return false
		}
	}
	return rolePat == "" || rolePat == role
}

// covers reports whether every topic matched by filter f is matched by
// pattern p (for a concrete topic: whether p matches it).
func covers(p, f string) bool {
	ps, fs := strings.Split(p, "/"), strings.Split(f, "/")
	for i := range fs {
		if i >= len(ps) {
			return false
		}
		switch {
		case ps[i] == "#":
			return true
		case fs[i] == "#":
			return false
		case ps[i] == "+":
			continue
		case fs[i] == "+" || ps[i] != fs[i]:
			return false
		}
	}
	return len(ps) == len(fs) || (len(ps) == len(fs)+1 && ps[len(fs)] == "#")
}
