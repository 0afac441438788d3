package probe

import (
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadSlices returns each thread's time slice as the kernel reports it.
func threadSlices(t *testing.T) map[int]uint64 {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]uint64{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if attr, err := unix.SchedGetAttr(tid, 0); err == nil {
			out[tid] = attr.Runtime
		}
	}
	return out
}

func TestShortSlicesForEveryThreadAndBack(t *testing.T) {
	n, err := ShortSlices(100 * time.Microsecond)
	t.Cleanup(func() { _, _ = ShortSlices(0) })
	if err != nil || n == 0 {
		t.Fatalf("ShortSlices: %d threads, %v; want every thread", n, err)
	}
	got := threadSlices(t)
	custom := 0
	for _, r := range got {
		if r == 100_000 {
			custom++
		}
	}
	if custom == 0 {
		// Before Linux 6.12 a normal thread's slice cannot be chosen.
		t.Skipf("this kernel reports slices %v: it does not take a thread's own slice", got)
	}
	if custom != len(got) {
		t.Errorf("slices after ShortSlices(100µs): %v; want 100000 ns for every thread", got)
	}
	if _, err := ShortSlices(0); err != nil {
		t.Fatal(err)
	}
	for tid, r := range threadSlices(t) {
		// A thread started since may have inherited either slice.
		if _, old := got[tid]; old && r == 100_000 {
			t.Errorf("thread %d keeps its 100µs slice after ShortSlices(0)", tid)
		}
	}
}
