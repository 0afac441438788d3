package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
)

// fifoSnapshot is a copy of a real capture whose proc/vmstat is a FIFO
// without a writer (a replay used to wait for one forever).
func fifoSnapshot(t *testing.T) string {
	t.Helper()
	root, err := testload.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "snap")
	if out, err := exec.Command("cp", "-a", filepath.Join(root, "internal/doctor/testdata/snapshots/vm-fd-limit"), dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(dir, "proc/vmstat")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "proc/vmstat"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

const fifoRefused = "snapshot file proc/vmstat: is a named pipe (FIFO), not a regular file: not read"

func TestDoctorSnapshotWithFIFO(t *testing.T) {
	dir := fifoSnapshot(t)
	cmd := exec.Command(hinomiBinary(t), "doctor", "--from", dir, "--min-severity", "info")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("exit %v, want status 1 (findings)", err)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("doctor --from a snapshot holding a FIFO did not end within 20 s:\n%s", out.String())
	}
	for _, want := range []string{fifoRefused, "FM-B1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, out.String())
		}
	}
}

// TestDoctorSnapshotSIGTERM: a snapshot on a file system that stops
// answering holds up the read (for ReadDeadline); SIGTERM ends the
// diagnosis within a second, with the report of what was read, and the
// status shells expect of SIGTERM.
func TestDoctorSnapshotSIGTERM(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting FUSE needs root")
	}
	dir := fifoSnapshot(t)
	m := testload.MountHungOn(t, filepath.Join(dir, "sys", "nas"), "nas.example:/export")
	m.Hang()
	cmd := exec.Command(hinomiBinary(t), "doctor", "--from", dir, "--min-severity", "info")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		m.Release()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	m.WaitRequests(t, 1, 20*time.Second)
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The process's thread blocked in the FUSE request cannot be killed
	// until the server answers (the kernel waits for a request it has
	// handed over), so the test waits for the finished report, then
	// releases the mount and collects the exit status.
	want := "the rest of snapshot " + dir + ": not read, interrupted (terminated)"
	for !strings.Contains(out.String(), want) {
		if time.Since(sent) > time.Second {
			t.Fatalf("no report within 1 s of SIGTERM; output so far:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the output for a condition, with a deadline
	}
	t.Logf("report %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	m.Release()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 143 {
			t.Errorf("exit %v, want status 143 (128+SIGTERM)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("doctor did not end once the mount answered:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "hinomi doctor: vm (snapshot") {
		t.Errorf("no report header:\n%s", out.String())
	}
}
