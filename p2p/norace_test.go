//go:build !race

package p2p

import "testing"

const raceEnabled = false

// TestTransfer64MiBWithDroppedChunks is the full-size case; it is built only
// without -race (see race_test.go for the 8 MiB variant that runs with it).
func TestTransfer64MiBWithDroppedChunks(t *testing.T) { testDroppedChunks(t, 64<<20) }
