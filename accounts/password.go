package accounts

import (
	_ "embed"
	"strings"
	"unicode/utf8"
)

//go:generate go run commonpw_gen.go

// Password length bounds, in bytes.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
)

// PasswordError is why a new password is refused; it matches
// ErrInvalidPassword with errors.Is. Reason is fit to show the user.
type PasswordError struct{ Reason string }

func (e *PasswordError) Error() string        { return "accounts: " + e.Reason }
func (e *PasswordError) Is(target error) bool { return target == ErrInvalidPassword }

//go:embed common-passwords.txt
var commonList string

// common holds the embedded list, lower case.
var common = func() map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(commonList, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			m[l] = true
		}
	}
	return m
}()

// CheckNewPassword applies the policy for a new password of user: 8-256
// bytes of valid UTF-8 (no U+FFFD, which is what broken input decodes to),
// at least 4 different characters, not the user id and not containing it
// (ids of 3 or more characters), and not on the embedded list of common
// passwords (compared case-insensitively). It runs no KDF.
func CheckNewPassword(user, password string) error {
	if len(password) < MinPasswordLen || len(password) > MaxPasswordLen {
		return &PasswordError{"password must be 8-256 bytes"}
	}
	if !utf8.ValidString(password) || strings.ContainsRune(password, utf8.RuneError) {
		return &PasswordError{"password must be valid UTF-8"}
	}
	lower := strings.ToLower(password)
	distinct := map[rune]bool{}
	for _, r := range lower {
		distinct[r] = true
	}
	switch {
	case len(distinct) < 4:
		return &PasswordError{"password must have at least 4 different characters"}
	case lower == user || (len(user) >= 3 && strings.Contains(lower, user)):
		return &PasswordError{"password must not contain the user id"}
	case common[lower]:
		return &PasswordError{"password is too common"}
	}
	return nil
}
