package doctor

// Tests that produce a real failure on this machine's kernel (a cgroup at
// pids.max, a memory-cgroup OOM kill, a full conntrack table, receive
// backlog drops) and check what the doctor makes of it.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
)

// requireRootFor skips a test that needs root, saying why, or fails it when
// CI is set: CI runs as root, so a skip there would hide a regression.
func requireRootFor(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("this test needs root (%s); CI runs as root", why)
	}
	t.Skipf("needs root: %s", why)
}

// readIntFile reads a file holding one integer (a cgroup counter, a
// sysctl), as an operator would.
func readIntFile(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// cgroupDir is the directory of a process's cgroup for a controller: in
// its v1 hierarchy when there is one (v1 true), else in the unified one.
func cgroupDir(t *testing.T, pid int, controller string) (dir string, v1 bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	unified := ""
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return filepath.Join("/sys/fs/cgroup", controller, parts[2]), true
			}
		}
		if parts[0] == "0" {
			unified = filepath.Join("/sys/fs/cgroup", parts[2])
		}
	}
	if unified == "" {
		t.Fatalf("process %d is in no %s cgroup:\n%s", pid, controller, b)
	}
	return unified, false
}

// pidsCgroupDir is the directory of a process's pids cgroup.
func pidsCgroupDir(t *testing.T, pid int) string {
	t.Helper()
	dir, _ := cgroupDir(t, pid, "pids")
	return dir
}

// A container started with --pids-limit forks until the kernel refuses a
// fork; the doctor names the container, its task count against pids.max,
// how many forks were refused, and the kernel's own line about it.
func TestContainerAtPidsMax(t *testing.T) {
	requireRootFor(t, "it reads every process's cgroup and the kernel log")
	testload.RequireDocker(t)
	image := testload.ScratchImage(t, testload.DefaultImage)
	const name, limit = "hinomi-test-pidsmax", 32
	pid := testload.RunContainerLimited(t, image, name, testload.Limits{Pids: limit}, "-fork-until-full")
	dir := pidsCgroupDir(t, pid)
	if got := readIntFile(t, filepath.Join(dir, "pids.max")); got != limit {
		t.Fatalf("%s/pids.max is %d, want %d", dir, got, limit)
	}
	cur := readIntFile(t, filepath.Join(dir, "pids.current"))
	if cur < limit*95/100 {
		t.Fatalf("%s/pids.current is %d of %d after forking until refused", dir, cur, limit)
	}

	d := diagnose(t, Options{})

	f := findingByKey(t, d, "FM-B4/pids "+name)
	if f.Severity != finding.High {
		t.Errorf("severity %s, want high at %d of %d", f.Severity, cur, limit)
	}
	fig := f.Evidence.Figures[0]
	if fig.Value != float64(cur) || fig.Limit != limit {
		t.Errorf("figure %+v, want %d of %d", fig, cur, limit)
	}
	if !strings.Contains(f.Summary, name) {
		t.Errorf("summary does not name the container: %s", f.Summary)
	}
	if got := f.Evidence.Vars["container"]; got != name {
		t.Errorf("runbook container %q, want %q", got, name)
	}
	if got := f.Evidence.Vars["cgroup_dir"]; got != dir {
		t.Errorf("runbook cgroup %q, want %q", got, dir)
	}
	refused := false
	for _, fg := range f.Evidence.Figures {
		if strings.Contains(fg.Name, "refused") && fg.Value >= 1 {
			refused = true
		}
	}
	if !refused {
		t.Errorf("no figure counts the refused forks: %+v", f.Evidence.Figures)
	}
	id := testload.ContainerID(t, name)
	quoted := false
	for _, l := range f.Evidence.Lines {
		if strings.Contains(l.Text, "fork rejected by pids controller") && strings.Contains(l.Text, id) {
			quoted = true
		}
	}
	if !quoted {
		t.Errorf("the kernel's \"fork rejected\" line for %s is not in the evidence: %+v", id, f.Evidence.Lines)
	}
}

// oomKills reads the OOM-kill count of a memory cgroup: "oom_kill" in
// memory.oom_control (v1) or memory.events (v2).
func oomKills(t *testing.T, dir string, v1 bool) int64 {
	t.Helper()
	file := filepath.Join(dir, "memory.events")
	if v1 {
		file = filepath.Join(dir, "memory.oom_control")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == "oom_kill" {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			return n
		}
	}
	t.Fatalf("%s has no oom_kill line:\n%s", file, b)
	return 0
}

// A process in a container limited to 32 MiB allocates 96 MiB; the kernel
// kills it. The doctor's OOM finding names the victim and its container.
func TestContainerOOMKillNamesVictimAndContainer(t *testing.T) {
	requireRootFor(t, "it reads the kernel log and every process's cgroup")
	testload.RequireDocker(t)
	image := testload.ScratchImage(t, testload.DefaultImage)
	const name = "hinomi-test-oom"
	pid := testload.RunContainerLimited(t, image, name, testload.Limits{Memory: 32 << 20}, "-hog-mb", "96")
	id := testload.ContainerID(t, name)
	dir, v1 := cgroupDir(t, pid, "memory")

	deadline := time.Now().Add(testload.ReadyTimeout)
	for oomKills(t, dir, v1) == 0 {
		if time.Now().After(deadline) {
			_, stderr := testload.ContainerLogs(t, name)
			t.Fatalf("no OOM kill in %s within %s; stderr:\n%s", dir, testload.ReadyTimeout, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	d := diagnose(t, Options{})

	f := findingByKey(t, d, "FM-B4/oom")
	var victim, ctr *finding.Consumer
	for i, c := range f.Evidence.Consumers {
		switch {
		case c.Kind == "process" && c.Owner == name:
			victim = &f.Evidence.Consumers[i]
		case c.Kind == "container" && c.ID == id:
			ctr = &f.Evidence.Consumers[i]
		}
	}
	if victim == nil || victim.Name != testload.ProgramName || victim.PID == pid {
		t.Errorf("no victim %s (the hog child, not the container's main process %d) in %s among %+v", testload.ProgramName, pid, name, f.Evidence.Consumers)
	}
	if ctr == nil || ctr.Name != name || ctr.Value < 1 {
		t.Errorf("container consumer %+v, want %s with at least one kill", ctr, name)
	}
	if got := f.Evidence.Vars["container"]; got != name {
		t.Errorf("runbook container %q, want %q", got, name)
	}
	if !strings.Contains(f.Summary, "container "+name) {
		t.Errorf("summary does not name the container: %s", f.Summary)
	}
	if f.Severity != finding.Medium {
		t.Errorf("severity %s, want medium for a kill in the last hour", f.Severity)
	}
}

// setSysctl writes a sysctl and puts the old value back when the test ends
// (or earlier, through the returned function).
func setSysctl(t *testing.T, path, value string) (restore func()) {
	t.Helper()
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Errorf("restoring %s to %s: %v", path, strings.TrimSpace(string(old)), err)
			}
		})
	}
	t.Cleanup(restore)
	return restore
}

// softnetDropped adds up the second column of /proc/net/softnet_stat (one
// hexadecimal line per CPU), read directly rather than through hinomi.
func softnetDropped(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("softnet_stat line %q", line)
		}
		v, err := strconv.ParseUint(f[1], 16, 32)
		if err != nil {
			t.Fatalf("softnet_stat line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// A UDP flood across a veth pair between two namespaces, steered to the
// other CPU (RPS) while net.core.netdev_max_backlog is tiny, fills the
// receive backlog; the doctor reports FM-B3 as high, dropping now.
func TestReceiveBacklogDrops(t *testing.T) {
	requireRootFor(t, "it makes network namespaces and sets net.core.netdev_max_backlog")
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs: packets steered to another CPU's backlog are what overflow it")
	}
	const backlog = 1
	p := newNetnsPair(t, "sn", 3)
	// Steer received packets to every CPU by flow hash: the ones that land
	// on the other CPU wait in its backlog for an interrupt.
	mask := fmt.Sprintf("%x", (1<<min(runtime.NumCPU(), 32))-1)
	rps := "/sys/class/net/" + p.DevB + "/queues/rx-0/rps_cpus"
	if out, err := exec.Command("ip", "netns", "exec", p.B, "sh", "-c", "echo "+mask+" > "+rps).CombinedOutput(); err != nil {
		t.Skipf("cannot steer packets (RPS) on this kernel: %v\n%s", err, out)
	}
	sink := udpIn(t, p.B, p.AddrB)
	dst := sink.LocalAddr().(*net.UDPAddr)
	const senders = 16
	var conns []*net.UDPConn
	for range senders {
		conns = append(conns, udpIn(t, p.A, p.AddrA))
	}

	before := softnetDropped(t)
	restore := setSysctl(t, "/proc/sys/net/core/netdev_max_backlog", strconv.Itoa(backlog))

	// The flood: bounded in packets and time, stopped as soon as the test
	// has what it needs. It must outlast the diagnosis, whose second
	// softnet reading comes after the process scan: seconds on a loaded
	// machine.
	const maxPackets, maxFlood, firstDrop = 50_000_000, 2 * time.Minute, 15 * time.Second
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	floodEnd := time.Now().Add(maxFlood)
	for g := range 2 {
		wg.Go(func() {
			payload := make([]byte, 16)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if sent.Add(1) > maxPackets || (i%1024 == 0 && time.Now().After(floodEnd)) {
					return
				}
				_, _ = conns[(i+g*senders/2)%senders].WriteToUDP(payload, dst)
			}
		})
	}
	stopFlood := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopFlood)

	deadline := time.Now().Add(firstDrop)
	for softnetDropped(t) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no backlog drop after %d packets in %s with netdev_max_backlog %d", sent.Load(), firstDrop, backlog)
		}
		time.Sleep(10 * time.Millisecond)
	}

	d := diagnose(t, Options{SampleFor: 500 * time.Millisecond})
	if time.Now().After(floodEnd) || sent.Load() > maxPackets {
		t.Fatalf("the flood ended (%d packets, %s) before the diagnosis did", sent.Load(), maxFlood)
	}
	stopFlood()
	restore()
	dropped := softnetDropped(t)
	t.Logf("%d packets sent, %d dropped by the backlog", sent.Load(), dropped-before)

	f := findingByKey(t, d, "FM-B3/softnet backlog")
	if f.Severity != finding.High {
		t.Errorf("severity %s, want high while dropping: %s", f.Severity, f.Summary)
	}
	if total := f.Evidence.Figures[0].Value; total <= float64(before) || total > float64(dropped) {
		t.Errorf("drops since boot %v, want more than %d (before the flood) and at most %d (after)", total, before, dropped)
	}
	if len(f.Evidence.Figures) < 2 || f.Evidence.Figures[1].Value <= 0 {
		t.Errorf("no drop rate in %+v", f.Evidence.Figures)
	}
	if got := f.Evidence.Vars["netdev_max_backlog"]; got != strconv.Itoa(backlog) {
		t.Errorf("netdev_max_backlog %q, want %d", got, backlog)
	}
	if !strings.Contains(f.Summary, "dropping") {
		t.Errorf("summary does not say drops are happening now: %s", f.Summary)
	}
}

// In a namespace of its own, a server takes TCP connections until the
// connection-tracking table is full and the kernel drops the next SYN with
// "nf_conntrack: table full, dropping packet". hinomi doctor, run in that
// namespace, reports the table full, with the kernel's line.
//
// nf_conntrack_max is one limit for the whole kernel (read-only in other
// namespaces), while each namespace counts its own entries: the test lowers
// the shared limit for a few seconds, only when the host's own table is
// nearly empty, and puts it back as soon as the diagnosis is taken.
func TestConntrackTableFull(t *testing.T) {
	requireRootFor(t, "it makes network namespaces and sets net.netfilter.nf_conntrack_max")
	const maxPath = "/proc/sys/net/netfilter/nf_conntrack_max"
	if _, err := os.Stat(maxPath); err != nil {
		t.Skipf("no connection tracking in this kernel (nf_conntrack neither built in nor loaded): %v", err)
	}
	const limit = 64
	if n := readIntFile(t, "/proc/sys/net/netfilter/nf_conntrack_count"); n > limit/4 {
		t.Skipf("the host tracks %d connections: lowering the kernel-wide nf_conntrack_max to %d would drop its traffic", n, limit)
	}
	bin := hinomiBinary(t)
	p := newNetnsPair(t, "ct", 4)
	// Any rule that matches on conntrack state turns tracking on in B.
	if out, err := exec.Command("ip", "netns", "exec", p.B, "iptables", "-w", "-A", "INPUT", "-m", "conntrack",
		"--ctstate", "NEW,ESTABLISHED,RELATED", "-j", "ACCEPT").CombinedOutput(); err != nil {
		t.Skipf("cannot add a conntrack rule in a namespace (iptables): %v\n%s", err, out)
	}

	var ln net.Listener
	if err := inNetns(t, p.B, func() error {
		var err error
		ln, err = net.Listen("tcp4", p.AddrB+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var held sync.WaitGroup
	var mu sync.Mutex
	var accepted []net.Conn
	held.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		held.Wait()
		for _, c := range accepted {
			c.Close()
		}
	})

	restore := setSysctl(t, maxPath, strconv.Itoa(limit))
	// Connect until the table refuses one: each established connection is
	// an entry the kernel may not evict; the next SYN finds no room.
	var conns []net.Conn
	var refused error
	if err := inNetns(t, p.A, func() error {
		d := net.Dialer{Timeout: 500 * time.Millisecond}
		for range limit + 8 {
			c, err := d.Dial("tcp4", ln.Addr().String())
			if err != nil {
				refused = err
				return nil
			}
			conns = append(conns, c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	if refused == nil {
		t.Fatalf("%d connections and none refused with nf_conntrack_max %d", len(conns), limit)
	}
	t.Logf("%d connections, then: %v", len(conns), refused)

	fs := doctorJSON(t, bin, p.B)
	restore()

	var f *finding.Finding
	for i := range fs {
		if fs[i].Key == "FM-B4/conntrack" {
			f = &fs[i]
		}
	}
	if f == nil {
		t.Fatalf("no FM-B4/conntrack finding in %s; got %+v", p.B, fs)
	}
	if f.Severity != finding.High {
		t.Errorf("severity %s, want high with the table full", f.Severity)
	}
	fig := f.Evidence.Figures[0]
	if fig.Limit != limit || fig.Value < limit*95/100 || fig.Value > limit {
		t.Errorf("figure %+v, want about %d of %d", fig, len(conns), limit)
	}
	ino := netnsInodeOf(t, "/run/netns/"+p.B)
	if !hasDropLine(f.Evidence.Lines, ino) {
		for _, l := range f.Evidence.Lines {
			if strings.Contains(l.Text, "table full, dropping packet") {
				t.Skipf("this kernel does not say which namespace's table was full (%q): the host's view of it cannot be tested", l.Text)
			}
		}
		t.Fatalf("the kernel's \"table full\" line for netns %d is not in the evidence: %+v", ino, f.Evidence.Lines)
	}

	// Seen from the host's namespace, whose own table is nearly empty, the
	// same drops are a finding about that namespace, named.
	d := diagnose(t, Options{})
	g := findingByKey(t, d, fmt.Sprintf("FM-B4/conntrack netns %d", ino))
	if g.Severity != finding.High {
		t.Errorf("host view: severity %s, want high for drops a moment ago", g.Severity)
	}
	if !strings.Contains(g.Summary, p.B) || g.Evidence.Vars["netns_name"] != p.B {
		t.Errorf("host view does not name the namespace %s: %s (vars %v)", p.B, g.Summary, g.Evidence.Vars)
	}
	if !hasDropLine(g.Evidence.Lines, ino) {
		t.Errorf("host view: no drop line for netns %d: %+v", ino, g.Evidence.Lines)
	}
	for _, h := range d.Findings {
		if h.Key == "FM-B4/conntrack" && hasDropLine(h.Evidence.Lines, ino) {
			t.Errorf("the host's own conntrack finding quotes another namespace's drops: %+v", h)
		}
	}
}

// netnsInodeOf is the inode number that names a network namespace.
func netnsInodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// hasDropLine reports whether the kernel's conntrack drop line for the
// namespace is among the lines ("nf_conntrack: table full in netns N,
// dropping packet"; the prefix is doubled on some kernels).
func hasDropLine(lines []finding.Line, ino uint64) bool {
	for _, l := range lines {
		if strings.Contains(l.Text, fmt.Sprintf("table full in netns %d, dropping packet", ino)) {
			return true
		}
	}
	return false
}

// When the victim is the container's main process the container exits with
// it, and nothing running names it any more: the name comes from the
// container engine, which keeps the exited container.
func TestOOMKilledContainerThatExitedIsNamed(t *testing.T) {
	requireRootFor(t, "it reads the kernel log")
	testload.RequireDocker(t)
	image := testload.ScratchImage(t, testload.DefaultImage)
	const name = "hinomi-test-oom-exited"
	state := testload.RunContainerToExit(t, image, name, testload.Limits{Memory: 32 << 20}, "-hog", "-hog-mb", "96")
	// Killed (137). Docker 20.10 can leave .State.OOMKilled false for a
	// container the kernel OOM-killed (its flag comes from an event that
	// may arrive after the exit is recorded); the finding below comes
	// from the kernel log, which says whether it was.
	if state.ExitCode != 137 {
		t.Fatalf("container %s exited with code %d, not killed (137) by the OOM killer (engine's flag: %v)", name, state.ExitCode, state.OOMKilled)
	}
	id := testload.ContainerID(t, name)

	d := diagnose(t, Options{})

	f := findingByKey(t, d, "FM-B4/oom")
	found := false
	for _, c := range f.Evidence.Consumers {
		if c.Kind == "container" && c.ID == id && c.Name == name {
			found = true
		}
	}
	if !found {
		t.Errorf("the exited container %s (%s) is not named among %+v", name, id, f.Evidence.Consumers)
	}
	if !strings.Contains(f.Summary, "container "+name) {
		t.Errorf("summary does not name the container: %s", f.Summary)
	}
}

// newPidsCgroup makes a pids cgroup of its own (in the v1 "pids" hierarchy,
// or in the unified one when the pids controller is enabled there) with
// pids.max set to limit. It returns the directory and the cgroup path as
// /proc/PID/cgroup shows it. When the test ends, whatever still runs in it
// is killed and the cgroup removed.
func newPidsCgroup(t *testing.T, limit int) (dir, cgPath string) {
	t.Helper()
	cgPath = fmt.Sprintf("/hinomi-test-pids-%d", os.Getpid())
	switch {
	case fileExists("/sys/fs/cgroup/pids/cgroup.procs"):
		dir = "/sys/fs/cgroup/pids" + cgPath
	case strings.Contains(readString(t, "/sys/fs/cgroup/cgroup.subtree_control"), "pids"):
		dir = "/sys/fs/cgroup" + cgPath
	default:
		t.Skip("no pids controller: neither a cgroup v1 pids hierarchy nor pids enabled in the unified hierarchy's root")
	}
	_ = os.Remove(dir) // a leftover of an interrupted run, if empty
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("making cgroup %s: %v", dir, err)
	}
	t.Cleanup(func() {
		// Everything in it has normally exited with the test's process;
		// anything left (an orphan) is killed first, bounded in time.
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || os.IsNotExist(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("removing cgroup %s: %v", dir, err)
				return
			}
			for _, f := range strings.Fields(readString(t, filepath.Join(dir, "cgroup.procs"))) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(limit)), 0o644); err != nil {
		t.Fatalf("setting pids.max: %v", err)
	}
	return dir, cgPath
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// A process in a cgroup made by hand (no container, no service) forks until
// the kernel refuses; the doctor names the cgroup by its path and the
// process that holds its tasks.
func TestCgroupAtPidsMaxNamesProcess(t *testing.T) {
	requireRootFor(t, "it makes a cgroup and reads the kernel log")
	const limit = 24
	dir, cgPath := newPidsCgroup(t, limit)
	p := testload.StartInCgroup(t, dir, "-fork-until-full")
	if got := pidsCgroupDir(t, p.PID); got != dir {
		t.Fatalf("test process is in %s, want %s", got, dir)
	}
	cur := readIntFile(t, filepath.Join(dir, "pids.current"))
	if cur < limit*95/100 {
		t.Fatalf("%s/pids.current is %d of %d after forking until refused", dir, cur, limit)
	}

	d := diagnose(t, Options{})
	// The forking process's Go runtime may start a thread in the slot it
	// freed (threads count as tasks): the doctor's reading lies between
	// the test's readings before and after it.
	after := readIntFile(t, filepath.Join(dir, "pids.current"))

	f := findingByKey(t, d, "FM-B4/pids cgroup "+cgPath)
	if f.Severity != finding.High {
		t.Errorf("severity %s, want high at %d of %d", f.Severity, cur, limit)
	}
	if fig := f.Evidence.Figures[0]; fig.Value < float64(min(cur, after)) || fig.Value > float64(max(cur, after)) || fig.Limit != limit {
		t.Errorf("figure %+v, want %d (or %d, read after it) of %d", fig, cur, after, limit)
	}
	if len(f.Evidence.Figures) < 2 || f.Evidence.Figures[1].Value < 1 {
		t.Errorf("no count of refused forks: %+v", f.Evidence.Figures)
	}
	if len(f.Evidence.Consumers) == 0 || f.Evidence.Consumers[0].PID != p.PID {
		t.Errorf("top consumer is not the forking process %d: %+v", p.PID, f.Evidence.Consumers)
	}
	if !strings.Contains(f.Summary, cgPath) || !strings.Contains(f.Summary, fmt.Sprintf("pid %d", p.PID)) {
		t.Errorf("summary names neither the cgroup nor the process: %s", f.Summary)
	}
	if got := f.Evidence.Vars["pid"]; got != strconv.Itoa(p.PID) {
		t.Errorf("runbook pid %q, want %d", got, p.PID)
	}
	if len(forkLines(f.Evidence.Lines, cgPath)) == 0 {
		t.Errorf("the kernel's \"fork rejected\" line for %s is not in the evidence: %+v", cgPath, f.Evidence.Lines)
	}
}

func forkLines(lines []finding.Line, cgPath string) []finding.Line {
	var out []finding.Line
	for _, l := range lines {
		if strings.HasSuffix(l.Text, "fork rejected by pids controller in "+cgPath) {
			out = append(out, l)
		}
	}
	return out
}
