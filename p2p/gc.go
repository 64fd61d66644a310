package p2p

import (
	"os"
	"runtime/debug"
)

// TransferGCPercent is the garbage collector target (as in GOGC) that
// TuneGC sets.
const TransferGCPercent = 400

// TuneGC raises the garbage collector target for a process whose main work
// is moving files, such as `mqim send-file` and `recv-files`; restore puts
// the previous target back. pion allocates about fifteen
// short-lived buffers per 1.2 KB SCTP packet while the live heap stays at a
// few MiB, so at the default GOGC=100 the collector runs all the time: at
// 400, BenchmarkRawDataChannel moves about 30% more per CPU second, for a
// few MiB more heap. A GOGC set in the environment is left alone. Libraries
// embedding Peer decide for themselves; Peer never calls this.
func TuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(TransferGCPercent)
	return func() { debug.SetGCPercent(old) }
}
