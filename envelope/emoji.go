package envelope

import "unicode/utf8"

// MaxEmojiBytes bounds a reaction: the longest emoji sequences (a family
// joined by ZWJ, a subdivision flag) are about 35 bytes.
const MaxEmojiBytes = 64

const (
	zwj         = 0x200D
	vs16        = 0xFE0F
	keycapMark  = 0x20E3
	tagCancel   = 0xE007F
	regionFirst = 0x1F1E6
	regionLast  = 0x1F1FF
)

// OneEmoji reports whether s is exactly one emoji: a pictograph with an
// optional presentation selector, skin tone and tag sequence, several of
// those joined by ZWJ (👩‍💻), a flag (two regional indicators), or a
// keycap (1️⃣). It is the shape Unicode's emoji sequences take, checked
// without a table of every emoji: a reaction is one symbol, not text.
func OneEmoji(s string) bool {
	if s == "" || len(s) > MaxEmojiBytes || !utf8.ValidString(s) {
		return false
	}
	rs := []rune(s)
	if isRegion(rs[0]) {
		return len(rs) == 2 && isRegion(rs[1])
	}
	if isKeycapBase(rs[0]) {
		rest := rs[1:]
		if len(rest) > 0 && rest[0] == vs16 {
			rest = rest[1:]
		}
		return len(rest) == 1 && rest[0] == keycapMark
	}
	for i := 0; ; {
		if i >= len(rs) || !isPictograph(rs[i]) {
			return false
		}
		i++
		if i < len(rs) && rs[i] == vs16 {
			i++
		}
		if i < len(rs) && isSkinTone(rs[i]) {
			i++
		}
		if i < len(rs) && isTag(rs[i]) {
			for i < len(rs) && isTag(rs[i]) {
				i++
			}
			if rs[i-1] != tagCancel {
				return false
			}
		}
		if i == len(rs) {
			return true
		}
		if rs[i] != zwj {
			return false
		}
		i++
	}
}

func isRegion(r rune) bool     { return r >= regionFirst && r <= regionLast }
func isSkinTone(r rune) bool   { return r >= 0x1F3FB && r <= 0x1F3FF }
func isTag(r rune) bool        { return r >= 0xE0020 && r <= tagCancel }
func isKeycapBase(r rune) bool { return r == '#' || r == '*' || (r >= '0' && r <= '9') }

// isPictograph is the blocks emoji come from (Unicode's
// Extended_Pictographic lies within these, plus a few older symbols).
func isPictograph(r rune) bool {
	switch {
	case r >= 0x1F000 && r <= 0x1FAFF, r >= 0x2190 && r <= 0x2BFF:
		return !isSkinTone(r) && !isRegion(r)
	}
	switch r {
	case 0xA9, 0xAE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D, 0x3297, 0x3299:
		return true
	}
	return false
}
