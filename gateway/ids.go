package gateway

import (
	"crypto/rand"
	"encoding/hex"
)

// newGroupID returns a random group id for groups created without one.
func newGroupID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "g" + hex.EncodeToString(b)
}
