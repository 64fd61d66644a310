package topic

import "strings"

// Match reports whether the concrete topic name matches the subscription
// filter, by the rules of MQTT 5 section 4.7 (the same in 3.1.1 section 4.7):
// "+" matches exactly one level, a trailing "#" matches its parent and every
// level below it [MQTT-4.7.1-2], and a filter starting with a wildcard never
// matches a name starting with "$" [MQTT-4.7.2-1]. A shared subscription's
// "$share/{name}/" prefix is not part of the filter it matches with
// [MQTT-4.8.2-1].
func Match(filter, name string) bool {
	if strings.HasPrefix(filter, "$share/") {
		parts := strings.SplitN(filter, "/", 3)
		if len(parts) != 3 {
			return false
		}
		filter = parts[2]
	}
	if strings.HasPrefix(name, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return !fmore // "#" must be the last level of a valid filter
		}
		n, nrest, nmore := strings.Cut(name, "/")
		if f != "+" && f != n {
			return false
		}
		switch {
		case !fmore && !nmore:
			return true
		case !nmore:
			return frest == "#" // "a/#" matches "a"
		case !fmore:
			return false
		}
		filter, name = frest, nrest
	}
}
