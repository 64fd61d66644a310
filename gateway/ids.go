package gateway

import (
	"crypto/rand"
	"encoding/hex"
)

// randomHex is n random bytes in hex: the ids the gateway makes up (group
// ids, stream tickets, poll sessions, HTTP devices).
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newGroupID returns a random group id for groups created without one.
func newGroupID() string { return "g" + randomHex(6) }
