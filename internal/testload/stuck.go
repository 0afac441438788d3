package testload

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// stuckTimeout bounds each wait of StuckThread: for the request to reach
// the server, and for the thread to change state. A loaded 2-core machine
// takes milliseconds; the bound only ends a broken run.
const stuckTimeout = 60 * time.Second

// StuckThread starts the test-load program with one thread other than the
// main one blocked in stat on the hung mount m, then sends that thread a
// signal that the Go runtime handles: the kernel then interrupts the FUSE
// request and waits on for its answer killably, which /proc shows as D,
// like a hard NFS mount's waiter. The main thread keeps sleeping normally.
// The mount is released when the test ends, before the program is stopped.
// It returns the program and the stuck thread's id.
func StuckThread(t testing.TB, m *HungMount) (*Proc, int) {
	t.Helper()
	p := Start(t, "-stat", m.Dir)
	// The thread cannot leave the kernel until the server answers, not even
	// killed: the mount must let go before the program is stopped (cleanups
	// run last-registered first).
	t.Cleanup(m.Release)
	var tid int
	waitFor(t, "a thread of pid "+strconv.Itoa(p.PID)+" to wait on "+m.Dir, func() bool {
		tid = threadIn(p.PID, "request_wait_answer")
		return tid != 0
	})
	if tid == p.PID {
		t.Fatalf("testload: the main thread of pid %d is the one in stat", p.PID)
	}
	// SIGURG is the runtime's own preemption signal: handled, harmless.
	if err := syscall.Tgkill(p.PID, tid, syscall.SIGURG); err != nil {
		t.Fatalf("testload: signalling thread %d of pid %d: %v", tid, p.PID, err)
	}
	waitFor(t, "thread "+strconv.Itoa(tid)+" of pid "+strconv.Itoa(p.PID)+" to be in D", func() bool {
		return threadState(p.PID, tid) == 'D'
	})
	return p, tid
}

// threadIn returns a thread of pid waiting in the kernel function wchan, or 0.
func threadIn(pid int, wchan string) int {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "wchan"))
		if err == nil && string(b) == wchan {
			tid, _ := strconv.Atoi(e.Name())
			return tid
		}
	}
	return 0
}

// threadState is the state letter of one thread, 0 when unreadable.
func threadState(pid, tid int) byte {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(tid), "stat"))
	if err != nil {
		return 0
	}
	r := bytes.LastIndexByte(b, ')')
	if r < 0 || r+2 >= len(b) {
		return 0
	}
	return b[r+2]
}

// waitFor polls cond until it holds, or fails the test after stuckTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(stuckTimeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("testload: waited %s for %s", stuckTimeout, what)
		}
	}
}
