package tower

import (
	"os"
	"runtime/debug"
	"time"

	"github.com/hinomi/hinomi/internal/probe"
)

// towerGOGC is the collector's target for a process whose main job is the
// tower. A tower's live heap is small (tens of MB) and its allocation
// steady, every probe run and every batch: at Go's default the collector
// ran several times a second, and each cycle suspends every probe's
// goroutine (one per probe) to scan its stack, which made the probes' own
// timers late. Five times the live heap before collecting trades a few
// tens of MB for that.
const towerGOGC = 400

// towerSlice is the time slice the tower's threads ask the kernel for
// (probe.ShortSlices): the shortest Linux grants.
const towerSlice = 100 * time.Microsecond

// TuneRuntime sets up a process that runs a tower (hinomi tower):
//   - the collector at towerGOGC, unless GOGC is set in the environment,
//     which then decides;
//   - short time slices for its threads (Linux 6.12 and later), so that a
//     probe waking for its slot on a busy machine runs at once instead of
//     after another process's slice. The share of CPU is the same.
//
// The returned func puts the previous settings back.
func TuneRuntime() (restore func()) {
	restoreGC := func() {}
	if os.Getenv("GOGC") == "" {
		old := debug.SetGCPercent(towerGOGC)
		restoreGC = func() { debug.SetGCPercent(old) }
	}
	// Best effort: a kernel or a sandbox that refuses it leaves the
	// default slices.
	_, _ = probe.ShortSlices(towerSlice)
	return func() {
		restoreGC()
		_, _ = probe.ShortSlices(0)
	}
}
