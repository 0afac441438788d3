package testload

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// SparseTable gives the calling process a descriptor table with a hole of
// 1,000 descriptors and one inotify instance with 3 watches far above
// every other descriptor (at up to 16,384, below RLIMIT_NOFILE), all
// closed when the test ends. It returns the instance's descriptor and the
// number of descriptors the process then has open, as /proc lists them.
// It skips the test when RLIMIT_NOFILE is too low for the table.
func SparseTable(t testing.TB) (high, open int) {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	high = min(int(lim.Cur)-1, 1<<14)
	if high < 6000 {
		t.Skipf("RLIMIT_NOFILE is %d: too low for the table", lim.Cur)
	}
	var files []*os.File
	t.Cleanup(func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	})
	for range 5000 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	for i := 500; i < 1500; i++ {
		files[i].Close()
		files[i] = nil
	}
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.InotifyAddWatch(in, filepath.Join(dir, n), unix.IN_MODIFY); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Dup3(in, high, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	unix.Close(in)
	t.Cleanup(func() { unix.Close(high) })
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return high, len(ents) - 1 // ReadDir's own descriptor
}
