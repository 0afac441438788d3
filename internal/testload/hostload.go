package testload

import (
	"os"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// StartHostLoad starts enough loaders for at least procs processes, fds
// open descriptors and watches inotify watches (two instances per loader,
// watching files in tmpfs), spread over as many loaders as the
// RLIMIT_NOFILE hard limit, inherited by them, requires. Where that limit
// may be raised it is, and it is put back when the test ends. Everything
// stops when the test ends.
func StartHostLoad(tb testing.TB, procs, fds, watches int) {
	tb.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		tb.Fatal(err)
	}
	hard := old.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: old.Cur, Max: max(old.Max, 1<<16)}); err == nil {
		hard = max(old.Max, 1<<16)
		tb.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}
	perLoader := int(min(hard, 1<<16)) - 200
	loaders := (fds + perLoader - 1) / perLoader
	for range loaders {
		Start(tb, "-dir", FastDir(), "-children", strconv.Itoa(procs/loaders+1), "-files", strconv.Itoa(fds/loaders+1),
			"-watches", strconv.Itoa(watches/loaders+1), "-instances", "2")
	}
}

// FastDir is a directory on tmpfs (/dev/shm) where there is one, else the
// temporary directory: files there cost the load no disk.
func FastDir() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		return "/dev/shm"
	}
	return os.TempDir()
}
