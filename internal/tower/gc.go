package tower

import (
	"os"
	"runtime/debug"
)

// towerGOGC is the collector's target for a process whose main job is the
// tower. A tower's live heap is small (tens of MB) and its allocation
// steady, every probe run and every batch: at Go's default the collector
// ran several times a second, and each cycle suspends every probe's
// goroutine (one per probe) to scan its stack, which made the probes' own
// timers late. Five times the live heap before collecting trades a few
// tens of MB for that.
const towerGOGC = 400

// TuneGC sets the collector for a process that runs a tower (hinomi
// tower), unless GOGC is set in the environment, which then decides. The
// returned func puts the previous setting back.
func TuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(towerGOGC)
	return func() { debug.SetGCPercent(old) }
}
