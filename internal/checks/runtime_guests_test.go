package checks

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/runbook"
	"github.com/hinomi/hinomi/internal/testload"
)

// captureLines returns a fixture's lines after its "# source:" line.
func captureLines(t testing.TB, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cgroup", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "# source:") {
			out = append(out, sc.Text())
		}
	}
	return out
}

// Real cgroup paths: a process of LXC guest x1 on cgroup v1 (every
// hierarchy names the guest), the payload and monitor cgroups of LXC 4
// guests (only the payload is the guest), and a guest's own view (no
// guest named).
func TestLXCGuestOfCgroupCaptures(t *testing.T) {
	for _, l := range captureLines(t, "sysdig-801-lxc-v1.txt") {
		if id, ok := LXCGuestOfCgroup(l); !ok || id != "x1" {
			t.Errorf("%q: guest %q %v; want x1", l, id, ok)
		}
	}
	var payloads []string
	for _, l := range captureLines(t, "lxd-7104-unified.txt") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if id, ok := LXCGuestOfCgroup("/" + f[len(f)-1]); ok {
			payloads = append(payloads, id)
		}
	}
	if got := strings.Join(payloads, " "); got != "Blog Em" {
		t.Errorf("guests of the unified hierarchy's cgroups: %q; want the payloads Blog Em, not the monitors", got)
	}
	for _, l := range captureLines(t, "lxc-3373-attach.txt") {
		if id, ok := LXCGuestOfCgroup(l); ok {
			t.Errorf("%q inside a guest names guest %q", l, id)
		}
	}
	// What people paste: CRLF, trailing spaces, a prompt-less v2 line.
	for in, want := range map[string]string{
		"0::/lxc.payload.105/system.slice/docker.service\r\n":  "105",
		"12:pids:/lxc/105/ns/system.slice/containerd.service ": "105",
		"/lxc.payload/9105/init.scope":                         "9105",
	} {
		if id, ok := LXCGuestOfCgroup(in); !ok || id != want {
			t.Errorf("%q: %q %v; want %s", in, id, ok, want)
		}
	}
}

// fuzz budget: 2000x
func FuzzLXCGuestOfCgroup(f *testing.F) {
	for _, name := range []string{"sysdig-801-lxc-v1.txt", "lxd-7104-unified.txt", "lxc-3373-attach.txt"} {
		for _, l := range captureLines(f, name) {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := LXCGuestOfCgroup(s)
		if ok && (id == "" || strings.Contains(id, "/")) {
			t.Fatalf("%q: guest %q", s, id)
		}
	})
}

// startAs runs a copy of /bin/sleep named comm in the cgroup directory
// dir, so that its comm is that of a container runtime; it is killed and
// reaped when the test ends.
func startAs(t *testing.T, dir, comm string) int {
	t.Helper()
	exe := filepath.Join(t.TempDir(), comm)
	b, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$1" 300`, dir, exe)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Wait until the shell has become the runtime, in the cgroup.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		if strings.TrimSpace(string(c)) == comm[:min(15, len(comm))] {
			return cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start in %s", comm, dir)
		}
		time.Sleep(10 * time.Millisecond) // polling /proc, with a deadline
	}
}

// guestCgroup makes a cgroup shaped like a Proxmox guest's dockerd unit
// (…/lxc/<id>/ns/system.slice/docker.service) under a cgroup of this
// test's own, in the pids hierarchy (v1) or the unified one (v2).
func guestCgroup(t *testing.T, id string) string {
	t.Helper()
	root := "/sys/fs/cgroup/pids"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		root = "/sys/fs/cgroup"
	}
	top := filepath.Join(root, fmt.Sprintf("dockerdisk-%d", os.Getpid()))
	dir := filepath.Join(top, "lxc", id, "ns", "system.slice", "docker.service")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating cgroup %s: %v", dir, err)
	}
	t.Cleanup(func() {
		// Deepest first; a cgroup goes once its processes are reaped.
		for d := dir; strings.HasPrefix(d, top); d = filepath.Dir(d) {
			rmdirCgroup(t, d)
		}
	})
	return dir
}

// A dockerd and a containerd shim whose cgroup lies under an LXC guest's
// are, from the host, an FM-C1 finding naming the guest: high, with the
// runtime, the guest's ID in the vars, and a runbook whose ready steps use
// pct, never docker.
func TestRuntimeInGuestLive(t *testing.T) {
	testload.RequireRoot(t, "creating cgroups")
	id := fmt.Sprintf("9%d", os.Getpid()%1000)
	dir := guestCgroup(t, id)
	dockerd := startAs(t, dir, "dockerd")
	shim := startAs(t, dir, "containerd-shim-runc-v2")

	procs, err := proctable.Scan(t.Context(), host.Live())
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Src: host.Live(), Host: "test", Procs: procs, Now: time.Now(), Log: slog.New(slog.DiscardHandler)}
	res, err := checkRuntimeInGuests(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "runtime in LXC "+id)
	if f.Mode != "FM-C1" || f.Severity != finding.High {
		t.Errorf("mode %s severity %s; want FM-C1 high", f.Mode, f.Severity)
	}
	v := f.Evidence.Vars
	if v["guest"] != id || v["owner"] != "lxc" || v["runtime"] != "dockerd" {
		t.Errorf("vars %v; want guest %s, owner lxc, runtime dockerd", v, id)
	}
	pids := map[int]bool{}
	for _, c := range f.Evidence.Consumers {
		pids[c.PID] = true
	}
	if !pids[dockerd] || !pids[shim] {
		t.Errorf("consumers %+v; want dockerd %d and the shim %d", f.Evidence.Consumers, dockerd, shim)
	}
	for _, want := range []string{"Guest LXC " + id, "dockerd", "containerd-shim", "panic"} {
		if !strings.Contains(f.Summary, want) {
			t.Errorf("summary lacks %q: %s", want, f.Summary)
		}
	}
	assertNoDockerStep(t, f)
}

// assertNoDockerStep renders the finding's runbook and fails on any step
// that would run docker on the host: an LXC guest is handled with pct
// (docker commands inside it go through pct exec).
func assertNoDockerStep(t *testing.T, f finding.Finding) {
	t.Helper()
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	rb := book.Get(f.Mode)
	if rb == nil {
		t.Fatalf("no runbook %s", f.Mode)
	}
	sawPct := false
	for _, sec := range []string{"Confirm", "Recover"} {
		steps, err := rb.Steps(sec, f.Evidence.Vars)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			for _, line := range s.Lines {
				w := strings.Fields(line)
				if len(w) == 0 {
					continue
				}
				if w[0] == "docker" || w[0] == "docker-compose" {
					t.Errorf("%s step of an LXC guest's runbook runs docker on the host: %q", sec, line)
				}
				sawPct = sawPct || w[0] == "pct"
			}
		}
	}
	if !sawPct {
		t.Errorf("no pct step for LXC guest %s", f.Evidence.Vars["guest"])
	}
}

// A full filesystem on a host without a Docker engine (a Proxmox node
// whose guests are LXC) gets no docker command in its runbook: no prune,
// no log truncation through docker inspect.
func TestDiskFullWithoutDockerHasNoDockerStep(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	env := &Env{Src: host.Live(), Host: "test", Now: time.Now(), Log: slog.New(slog.DiscardHandler), HogDirs: []string{t.TempDir()}}
	ms, err := mounts(env)
	if err != nil {
		t.Fatal(err)
	}
	var root = ms[0]
	for _, m := range ms {
		if m.MountPoint == "/" {
			root = m
		}
	}
	f, ok := diskFinding(t.Context(), env, root, finding.Figure{Name: "disk /", Value: 97, Limit: 100, Unit: "bytes"}, "space", nil)
	if !ok {
		t.Fatal("no finding at 97%")
	}
	if f.Evidence.Vars["holds_docker"] != "no" {
		t.Errorf("holds_docker %q without a Docker engine; want no", f.Evidence.Vars["holds_docker"])
	}
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := book.Get("FM-C2").Steps("Recover", f.Evidence.Vars)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		for _, l := range s.Lines {
			if w := strings.Fields(l); len(w) > 0 && (w[0] == "docker" || strings.Contains(l, "$(docker")) {
				t.Errorf("recovery step runs docker on a host without it: %q", l)
			}
		}
	}
}
