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

	"golang.org/x/sys/unix"

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
	testload.RequireRoot(t, "it mounts FUSE")
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
	want := "the rest of snapshot " + dir + ": not read, interrupted (SIGTERM)"
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

// TestLogsScanStopsOnSignal runs the real binary on input that never ends
// (standard input, or a FIFO, whose writer stays open): SIGINT or SIGTERM
// ends it within a second with the report of what it had read and the
// status shells expect (128 + the signal).
func TestLogsScanStopsOnSignal(t *testing.T) {
	root, err := testload.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(root, "internal/logscan/testdata/kernel-10.txt"))
	if err != nil {
		t.Fatal(err)
	}
	help, _ := exec.Command(hinomiBinary(t), "logs", "-h").CombinedOutput()
	if !strings.Contains(string(help), "130 or 143 stopped by SIGINT (Ctrl-C) or SIGTERM") {
		t.Errorf("hinomi logs -h does not document the status after a signal:\n%s", help)
	}
	fifo := filepath.Join(t.TempDir(), "kern.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		sig   syscall.Signal
		input string
		code  int
	}{
		{"stdin SIGINT", syscall.SIGINT, "-", 130},
		{"stdin SIGTERM", syscall.SIGTERM, "-", 143},
		{"FIFO SIGINT", syscall.SIGINT, fifo, 130},
		{"FIFO SIGTERM", syscall.SIGTERM, fifo, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(hinomiBinary(t), "logs", "scan", "--year", "2024", "--tz", "UTC", tc.input)
			var w *os.File
			if tc.input == "-" {
				r, pw, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				cmd.Stdin, w = r, pw
			} else if w, err = os.OpenFile(fifo, os.O_RDWR, 0); err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var out, errOut lockedBuffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			defer func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					<-done
				}
			}()
			if _, err := w.Write(log); err != nil {
				t.Fatal(err)
			}
			waitDrained(t, w)
			sent := time.Now()
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("logs scan still runs 10 s after %s; output:\n%s%s", tc.sig, out.String(), errOut.String())
			}
			if took := time.Since(sent); took > time.Second {
				t.Errorf("logs scan ended %s after %s, want within 1 s", took.Round(time.Millisecond), tc.sig)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Errorf("exit %v, want status %d", err, tc.code)
			}
			sigName := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[tc.sig]
			for _, want := range []string{
				"INTERRUPTED (" + sigName + ") while reading " + tc.input + ", after 8 lines (444 B) in all",
				"Conntrack table full, packets dropped: 2 times.",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output does not say %q:\n%s", want, out.String())
				}
			}
			if errOut.String() != "" {
				t.Errorf("stderr: %s", errOut.String())
			}
		})
	}
}

// waitDrained polls, with a deadline, until the pipe behind f holds no
// unread byte: the scan has read everything written.
func waitDrained(t *testing.T, f *os.File) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still unread after 10 s", n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}
