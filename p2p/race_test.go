//go:build race

package p2p

import "testing"

const raceEnabled = true

// The race detector slows pion's SCTP stack about tenfold on this 2-core
// machine, so under -race the dropped-chunk case moves 8 MiB; the 64 MiB
// case runs in the ordinary (non-race) test run, see transfer_big_test.go.
func TestTransfer8MiBWithDroppedChunks(t *testing.T) { testDroppedChunks(t, 8<<20) }
