package probe

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// sleepExactly sleeps for d in one nanosleep(2) of the calling thread, however short d
// is, or less if a signal cuts it short: the Go runtime's own idle wait (epoll_wait)
// counts whole milliseconds, so a timer for the last millisecond fires up to a millisecond
// late.
func sleepExactly(d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	_ = unix.Nanosleep(&ts, nil)
}

// ShortSlices asks the kernel for time slices of slice (0: the default; Linux 6.12 and later clamp it
// to 0.1–100 ms) for every thread of this process, and so for every thread they start
// later, which inherit it. Under the EEVDF scheduler a shorter slice gives a waking
// thread an earlier deadline, so a probe that wakes for its slot preempts a busy
// neighbour's long slice instead of waiting for it to end (3 ms by default on two
// CPUs); the share of CPU time is unchanged. Older kernels ignore it. It returns the
// number of threads changed.
func ShortSlices(slice time.Duration) (int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // gone since
		}
		if attr.Policy != unix.SCHED_NORMAL && attr.Policy != unix.SCHED_BATCH {
			continue
		}
		attr.Runtime = uint64(slice.Nanoseconds())
		if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
			errs = append(errs, fmt.Errorf("thread %d: %w", tid, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
