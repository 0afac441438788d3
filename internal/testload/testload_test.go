package testload

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBuild()
	os.Exit(code)
}

// inotifyWatches counts the `inotify wd:` lines in /proc/<pid>/fdinfo/*, that
// is the inotify watches the process holds, and the inotify instances holding
// them.
func inotifyWatches(t *testing.T, pid int) (watches, instances int) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "inotify wd:") {
				n++
			}
		}
		watches += n
		if n > 0 {
			instances++
		}
	}
	return watches, instances
}

func countDir(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// children returns the pids of the direct children of pid, from
// /proc/<pid>/task/*/children.
func children(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range strings.Fields(string(data)) {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("%s: %q", f, data)
			}
			pids = append(pids, n)
		}
	}
	return pids
}

func TestStartHoldsResources(t *testing.T) {
	p := Start(t, "-watches", "100", "-instances", "2", "-files", "50", "-children", "2")

	if p.PID != p.Cmd.Process.Pid {
		t.Fatalf("PID %d, process %d", p.PID, p.Cmd.Process.Pid)
	}
	want := fmt.Sprintf("ready pid=%d watches=100 instances=2 files=50 children=2", p.PID)
	if p.Ready != want {
		t.Errorf("ready line %q, want %q", p.Ready, want)
	}
	// 50 on /dev/null, 2 inotify instances, 3 standard streams at least.
	if n := countDir(t, fmt.Sprintf("/proc/%d/fd", p.PID)); n < 55 {
		t.Errorf("%d open fds, want at least 55", n)
	}
	devnull := 0
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && target == os.DevNull {
			devnull++
		}
	}
	if devnull < 50 {
		t.Errorf("%d fds on %s, want at least 50", devnull, os.DevNull)
	}
	watches, instances := inotifyWatches(t, p.PID)
	if watches != 100 || instances != 2 {
		t.Errorf("%d inotify watches in %d instances, want 100 in 2", watches, instances)
	}
	kids := children(t, p.PID)
	if len(kids) != 2 {
		t.Fatalf("children %v, want 2", kids)
	}

	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Stop waited: the process is reaped, and its children died with it
	// (PR_SET_PDEATHSIG) and were reaped by init, or are at most zombies.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.PID)); !os.IsNotExist(err) {
		t.Errorf("/proc/%d after Stop: %v", p.PID, err)
	}
	for _, kid := range kids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", kid))
		if err != nil {
			continue // gone
		}
		// The state follows the ")" that ends the command name.
		if s := string(data); !strings.HasPrefix(s[strings.LastIndexByte(s, ')')+1:], " Z") {
			t.Errorf("child %d still alive after Stop: %s", kid, data)
		}
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStartNoArgs(t *testing.T) {
	p := Start(t)
	if want := fmt.Sprintf("ready pid=%d watches=0 instances=1 files=0 children=0", p.PID); p.Ready != want {
		t.Errorf("ready line %q, want %q", p.Ready, want)
	}
	if w, _ := inotifyWatches(t, p.PID); w != 0 {
		t.Errorf("%d inotify watches, want 0", w)
	}
	// Stopped by the cleanup, which fails the test on an unclean exit.
}

func TestParseReady(t *testing.T) {
	for _, tc := range []struct {
		line string
		pid  int
		ok   bool
	}{
		{"ready pid=42 watches=1 instances=1 files=0 children=0", 42, true},
		{"ready pid=1", 1, true},
		{"ready pid=0 watches=1", 0, false},
		{"ready pid=x", 0, false},
		{"ready", 0, false},
		{"hinomi-testload: error", 0, false},
		{"", 0, false},
	} {
		pid, err := ParseReady(tc.line)
		if (err == nil) != tc.ok || pid != tc.pid {
			t.Errorf("ParseReady(%q) = %d, %v; want %d, ok=%v", tc.line, pid, err, tc.pid, tc.ok)
		}
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "module github.com/hinomi/hinomi") {
		t.Errorf("%s/go.mod is not hinomi's", root)
	}
}

func TestRunContainer(t *testing.T) {
	RequireDocker(t)
	image := ScratchImage(t, "")
	name := fmt.Sprintf("hinomi-testload-test-%d", os.Getpid())
	pid := RunContainer(t, image, name, "-watches", "10", "-files", "5", "-children", "1")

	// Inside its own pid namespace the program is pid 1.
	stdout, stderr := ContainerLogs(t, name)
	if want := "ready pid=1 watches=10 instances=1 files=5 children=1\n"; stdout != want {
		t.Errorf("container stdout %q, want %q (stderr %q)", stdout, want, stderr)
	}

	id := ContainerID(t, name)
	if len(id) != 64 {
		t.Fatalf("container id %q", id)
	}
	cgroup, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cgroup), id) {
		t.Errorf("/proc/%d/cgroup does not name container %s:\n%s", pid, id, cgroup)
	}
	// The host pid is the program's: pid 1 in the container's namespace,
	// holding the watches it was asked for.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("NSpid:\t%d\t1\n", pid); !strings.Contains(string(status), want) {
		t.Errorf("/proc/%d/status has no %q:\n%s", pid, want, status)
	}
	if w, _ := inotifyWatches(t, pid); w != 10 {
		t.Errorf("%d inotify watches in the container's program, want 10", w)
	}
	if kids := children(t, pid); len(kids) != 1 {
		t.Errorf("container program's children %v, want 1", kids)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(exe) != ProgramName {
		t.Errorf("/proc/%d/exe is %s", pid, exe)
	}
}

func FuzzParseReady(f *testing.F) {
	f.Add("ready pid=42 watches=1 instances=1 files=0 children=0")
	f.Add("ready pid=-1")
	f.Add("ready  pid=7\t")
	f.Fuzz(func(t *testing.T, line string) {
		pid, err := ParseReady(line)
		if err != nil {
			if pid != 0 {
				t.Errorf("ParseReady(%q) = %d with error %v", line, pid, err)
			}
			return
		}
		if pid <= 0 {
			t.Errorf("ParseReady(%q) = %d, nil", line, pid)
		}
		// What was accepted round-trips through the canonical form.
		if again, err := ParseReady(fmt.Sprintf("ready pid=%d", pid)); err != nil || again != pid {
			t.Errorf("ParseReady(canonical of %q) = %d, %v", line, again, err)
		}
	})
}
