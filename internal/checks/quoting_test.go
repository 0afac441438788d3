package checks

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/runbook"
	"github.com/hinomi/hinomi/internal/testload"
)

// A filesystem mounted on a path with a space and a quote fills up: the
// mount point comes decoded from mountinfo's \040, and the runbook's
// commands, run by a real shell, act on that very mount point.
func TestCommandsQuoteARealMountPoint(t *testing.T) {
	testload.RequireRoot(t, "it mounts a tmpfs")
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := filepath.Join(t.TempDir(), "hinomi quote's disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	fill(t, filepath.Join(dir, "filler"))
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(mi, []byte(`hinomi\040quote's\040disk`)) {
		t.Fatalf("the kernel did not write the space as \\040:\n%s", mi)
	}

	env := &Env{Src: host.Live(), Procs: &proctable.Table{}, HogDirs: []string{}}
	res, err := checkDisk(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	var vars map[string]string
	for _, f := range res.Findings {
		if f.Subject == "space "+dir {
			vars = f.Evidence.Vars
		}
	}
	if vars == nil {
		t.Fatalf("no finding for the full %s in %+v", dir, res.Findings)
	}
	if vars["mount"] != dir {
		t.Fatalf("mount var %q; want %q", vars["mount"], dir)
	}
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := book.Get("FM-C2").Steps("Confirm", vars)
	if err != nil {
		t.Fatal(err)
	}
	// df -h, df -i and du of the mount point.
	for _, line := range steps[0].Lines[:3] {
		out, err := bash(line)
		if err != nil || !strings.Contains(out, dir) {
			t.Errorf("%s: %v; printed\n%s\nwithout %s", line, err, out, dir)
		}
	}

	// The FM-C6 commands that find a mount's users, for a process whose
	// working directory is on it.
	sleeper := exec.Command("sleep", "60")
	sleeper.Dir = dir
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	steps, err = book.Get("FM-C6").Steps("Recover", map[string]string{"mount": dir})
	if err != nil {
		t.Fatal(err)
	}
	find := steps[0].Lines[1]
	if !strings.HasPrefix(find, "find ") {
		t.Fatalf("second line of FM-C6's first step is %q, want the find", find)
	}
	// find exits 1 for the processes that went away meanwhile.
	if out, err := bash(find); !strings.Contains(out, "/proc/"+strconv.Itoa(sleeper.Process.Pid)+"/cwd") {
		t.Errorf("%s: %v; printed\n%s\nwithout the sleeper's cwd", find, err, out)
	}
}

// bash runs one command line and returns what it printed.
func bash(line string) (string, error) {
	out, err := exec.Command("bash", "-c", line).CombinedOutput()
	return string(out), err
}

// fill writes to path until its filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for range 1 << 10 {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatal("the 1 MiB tmpfs never filled")
}
