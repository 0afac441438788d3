package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/testload"
)

// Test users: each test's load runs under its own UID, so its inotify
// budget (which the kernel keeps per user) is its own and the host's other
// users are never starved.
const (
	uidProcess   = 4242
	uidContainer = 4243
	uidSnapshot  = 4244
)

func diagnose(t *testing.T, o Options) *Diagnosis {
	t.Helper()
	if o.MountDeadline == 0 {
		o.MountDeadline = 2 * time.Second
	}
	d, err := Diagnose(t.Context(), o)
	if err != nil {
		t.Fatalf("Diagnose: %v", err)
	}
	return d
}

func findingByKey(t *testing.T, d *Diagnosis, key string) finding.Finding {
	t.Helper()
	for _, f := range d.Findings {
		if f.Key == key {
			return f
		}
	}
	var keys []string
	for _, f := range d.Findings {
		keys = append(keys, f.Key)
	}
	t.Fatalf("no finding %s; got %v", key, keys)
	return finding.Finding{}
}

// watchesFor returns a watch count that fills 90 % of the per-user limit:
// enough for a medium finding (85 %) and below the next threshold (95 %).
func watchesFor(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_watches")
	if err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if limit > 1<<20 {
		t.Skipf("fs.inotify.max_user_watches is %d: filling 90%% of it would take too long here", limit)
	}
	return limit * 90 / 100
}

// fdsAndLimit reads a process's descriptor count and RLIMIT_NOFILE soft
// limit the way an operator would, independently of hinomi.
func fdsAndLimit(t *testing.T, pid int) (int, uint64) {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	proc, err := procfs.NewProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	lim, err := proc.Limits()
	if err != nil {
		t.Fatal(err)
	}
	return len(ents), lim.OpenFiles
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root (it runs load under other UIDs); CI runs as root")
		}
		t.Skip("needs root")
	}
}

func TestInotifyAndFilesAttributedToProcess(t *testing.T) {
	requireRoot(t)
	watches := watchesFor(t)
	const instances, files = 3, 300
	p := testload.StartAs(t, uidProcess, "-dir", testload.FastDir(), "-watches", strconv.Itoa(watches), "-instances", strconv.Itoa(instances),
		"-files", strconv.Itoa(files), "-nofile-percent", "96")
	fds, soft := fdsAndLimit(t, p.PID)
	if fds < files+instances {
		t.Fatalf("test process has %d fds, want at least %d", fds, files+instances)
	}

	d := diagnose(t, Options{})

	f := findingByKey(t, d, "FM-B2/uid "+strconv.Itoa(uidProcess))
	if f.Severity != finding.Medium {
		t.Errorf("severity %s, want medium at 90%%", f.Severity)
	}
	if got := f.Evidence.Figures[0].Value; got != float64(watches) {
		t.Errorf("watches figure %v, want %d", got, watches)
	}
	if got := f.Evidence.Figures[1].Value; got != instances {
		t.Errorf("instances figure %v, want %d", got, instances)
	}
	top := f.Evidence.Consumers[0]
	if top.PID != p.PID || top.Name != "hinomi-testload" || top.Value != float64(watches) {
		t.Errorf("top consumer %+v, want pid %d comm hinomi-testload with %d watches", top, p.PID, watches)
	}
	if f.Evidence.Vars["pid"] != strconv.Itoa(p.PID) || f.Evidence.Vars["uid"] != strconv.Itoa(uidProcess) {
		t.Errorf("runbook vars %v", f.Evidence.Vars)
	}

	b1 := findingByKey(t, d, "FM-B1/process hinomi-testload (host)")
	if b1.Severity != finding.High {
		t.Errorf("FM-B1 severity %s, want high at 96%%", b1.Severity)
	}
	c := b1.Evidence.Consumers[0]
	if c.PID != p.PID || c.Value != float64(fds) || c.Limit != float64(soft) {
		t.Errorf("FM-B1 consumer %+v, want pid %d with %d fds of %d", c, p.PID, fds, soft)
	}
}

func TestInotifyAttributedToContainerName(t *testing.T) {
	requireRoot(t)
	testload.RequireDocker(t)
	watches := watchesFor(t)
	image := testload.ScratchImage(t, testload.DefaultImage)
	const name = "hinomi-test-wiki"
	pid := testload.RunContainerAs(t, image, name, strconv.Itoa(uidContainer)+":"+strconv.Itoa(uidContainer),
		"-watches", strconv.Itoa(watches), "-instances", "2", "-files", "50")

	d := diagnose(t, Options{})
	f := findingByKey(t, d, "FM-B2/uid "+strconv.Itoa(uidContainer))
	var proc, ctr *finding.Consumer
	for i, c := range f.Evidence.Consumers {
		switch c.Kind {
		case "process":
			if proc == nil {
				proc = &f.Evidence.Consumers[i]
			}
		case "container":
			if ctr == nil {
				ctr = &f.Evidence.Consumers[i]
			}
		}
	}
	if proc == nil || proc.PID != pid || proc.Owner != name || proc.Value != float64(watches) {
		t.Errorf("top process %+v, want pid %d in %s with %d watches", proc, pid, name, watches)
	}
	if ctr == nil || ctr.Name != name || ctr.Value != float64(watches) {
		t.Errorf("top container %+v, want %s with %d watches", ctr, name, watches)
	}
	if got := f.Evidence.Vars["container"]; got != name {
		t.Errorf("runbook container %q, want %q", got, name)
	}
	if !strings.Contains(f.Summary, "container "+name) {
		t.Errorf("summary does not name the container: %s", f.Summary)
	}
}

func TestHungFUSEMountReportedWithinDeadline(t *testing.T) {
	requireRoot(t)
	m := testload.MountHung(t, "nfs-sim.example:/export")
	m.Hang()
	const deadline = 300 * time.Millisecond
	prober := checks.NewMountProber(deadline)

	start := time.Now()
	d := diagnose(t, Options{Mounts: prober, MountDeadline: deadline})
	took := time.Since(start)

	f := findingByKey(t, d, "FM-C6/"+m.Dir)
	if f.Severity != finding.High {
		t.Errorf("severity %s, want high", f.Severity)
	}
	if got := f.Evidence.Vars["mount"]; got != m.Dir {
		t.Errorf("runbook mount %q, want %q", got, m.Dir)
	}
	if got := f.Evidence.Vars["server"]; got != "nfs-sim.example" {
		t.Errorf("runbook server %q, want nfs-sim.example", got)
	}
	if got := f.Evidence.Figures[0].Value; got < deadline.Seconds() {
		t.Errorf("stat wait %.3f s, want at least the deadline", got)
	}
	// Diagnose waits for the deadline once, not once per check.
	if took > 10*deadline+5*time.Second {
		t.Errorf("doctor took %s with a %s mount deadline", took, deadline)
	}

	// The agent asks again while the first stat is still blocked: the
	// mount is not stat'ed a second time and keeps its first stuck time.
	d2 := diagnose(t, Options{Mounts: prober, MountDeadline: deadline})
	f2 := findingByKey(t, d2, "FM-C6/"+m.Dir)
	if f.Since == nil || f2.Since == nil || !f2.Since.Equal(*f.Since) {
		t.Errorf("second run since %v, want the first run's %v", f2.Since, f.Since)
	}

	// Once the server answers, the mount is healthy again.
	m.Release()
	d3 := diagnose(t, Options{Mounts: checks.NewMountProber(5 * time.Second), MountDeadline: 5 * time.Second})
	for _, f := range d3.Findings {
		if f.Key == "FM-C6/"+m.Dir {
			t.Errorf("released mount still reported: %s", f.Summary)
		}
	}
}

// A mount whose FUSE server is gone answers at once with ENOTCONN: dead,
// not hung, and reported as such without waiting for the deadline.
func TestDeadFUSEMountReported(t *testing.T) {
	requireRoot(t)
	// A space in the path: the kernel writes it as \040 in mountinfo.
	m := testload.MountHungOn(t, filepath.Join(t.TempDir(), "dead mnt"), "backup.example:/srv/backup")
	m.Abort(t)
	d := diagnose(t, Options{MountDeadline: time.Minute})
	f := findingByKey(t, d, "FM-C6/"+m.Dir)
	if f.Severity != finding.High {
		t.Errorf("severity %s, want high", f.Severity)
	}
	if !strings.Contains(f.Summary, "is dead") || !strings.Contains(f.Summary, "ENOTCONN") {
		t.Errorf("summary does not say the mount is dead with ENOTCONN: %s", f.Summary)
	}
	if got := f.Evidence.Vars["server"]; got != "backup.example" {
		t.Errorf("runbook server %q, want backup.example", got)
	}
	if got := f.Evidence.Vars["error"]; !strings.HasPrefix(got, "ENOTCONN") {
		t.Errorf("runbook error %q, want ENOTCONN …", got)
	}
	for _, h := range d.Headroom {
		if h.Name == "network/FUSE mounts answering" && h.Value >= h.Limit {
			t.Errorf("the dead mount counts as answering: %+v", h)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	requireRoot(t)
	p := testload.StartAs(t, uidSnapshot, "-watches", "50", "-files", "400", "-nofile-percent", "90")
	dir := t.TempDir() + "/snap"
	rec, err := host.NewRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	live := diagnose(t, Options{Record: rec, SampleFor: 50 * time.Millisecond})
	if err := rec.Close(host.Meta{Host: live.Host, Taken: live.Taken}); err != nil {
		t.Fatalf("closing snapshot: %v", err)
	}
	if _, err := os.Stat(dir + "/proc/" + strconv.Itoa(p.PID) + "/environ"); !os.IsNotExist(err) {
		t.Errorf("snapshot holds the environment of pid %d (err %v)", p.PID, err)
	}
	// Replayed like `hinomi doctor --from`, whose --sample reads the
	// recorded second sample.
	replay := diagnose(t, Options{From: dir, SampleFor: 50 * time.Millisecond})
	findingByKey(t, replay, "FM-B1/process hinomi-testload (host)")
	a, _ := json.MarshalIndent(live.Findings, "", " ")
	b, _ := json.MarshalIndent(replay.Findings, "", " ")
	if string(a) != string(b) {
		t.Errorf("replayed findings differ from the live run\nlive:\n%s\nreplay:\n%s", a, b)
	}
	if live.Processes != replay.Processes {
		t.Errorf("replay saw %d processes, live %d", replay.Processes, live.Processes)
	}
	ha, _ := json.Marshal(live.Headroom)
	hb, _ := json.Marshal(replay.Headroom)
	if string(ha) != string(hb) {
		t.Errorf("replayed headroom differs:\nlive   %s\nreplay %s", ha, hb)
	}
}

// A cancelled diagnosis stops and says so: a process table cut short would
// make every finding it did not reach look resolved.
func TestDiagnoseCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if d, err := Diagnose(ctx, Options{MountDeadline: time.Second}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, %v; want context.Canceled", d, err)
	}
}

// fastDir is where the load program makes the files it watches: tmpfs when
// the host has one, as creating 170,000 files on a disk takes far longer.
func TestDiskFullNamesBiggestDirectory(t *testing.T) {
	requireRoot(t)
	mnt := mountTmpfs(t, "data")
	write := func(rel string, size int) {
		p := filepath.Join(mnt, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("overlay2/3f9a/diff/var/lib/registry/blob", 3700<<10)
	write("containers/wiki/wiki-json.log", 200<<10)

	d := diagnose(t, Options{HogDirs: []string{mnt}})
	f := findingByKey(t, d, "FM-C2/space "+mnt)
	if f.Severity < finding.High {
		t.Errorf("severity %s at %.0f%%, want high", f.Severity, f.Evidence.Figures[0].Percent())
	}
	cs := f.Evidence.Consumers
	if len(cs) != 2 || cs[0].Name != filepath.Join(mnt, "overlay2") || cs[1].Name != filepath.Join(mnt, "containers") {
		t.Fatalf("biggest directories %+v, want overlay2 then containers", cs)
	}
	if cs[0].Value < 3700<<10 {
		t.Errorf("overlay2 sized %v bytes, want at least %d", cs[0].Value, 3700<<10)
	}
	if f.Evidence.Vars["mount"] != mnt || f.Evidence.Vars["dir"] != cs[0].Name {
		t.Errorf("runbook vars %v", f.Evidence.Vars)
	}
	// This tmpfs holds neither the journal nor Docker: their clean-up
	// commands are not offered for it.
	book := builtinBook(t)
	all, _ := recoverCommands(book, f)
	for _, c := range all {
		if strings.Contains(c, "docker") || strings.Contains(c, "journalctl") {
			t.Errorf("recovery for a plain tmpfs offers %q", c)
		}
	}
}

// TestStuckProcessesBuildUp blocks real processes in the kernel on a hung
// FUSE mount and runs a process named runc "two minutes later": doctor
// reports the build-up that precedes a runtime-induced kernel panic (FM-C1)
// and names the blocked processes
// under the hung mount (FM-C6).
func TestStuckProcessesBuildUp(t *testing.T) {
	requireRoot(t)
	m := testload.MountHung(t, "nas.example:/tank")
	m.Hang()
	const blocked = 6
	var stats []*exec.Cmd
	for range blocked {
		c := exec.Command("stat", m.Dir)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		stats = append(stats, c)
	}
	t.Cleanup(func() {
		m.Release()
		for _, c := range stats {
			_ = c.Wait()
		}
	})
	// Other processes may touch the mount too (another test's doctor
	// probing every FUSE mount): the arrivals only say the stats are on
	// their way; each one's own wait is checked next.
	m.WaitRequests(t, blocked, loadedTimeout)
	// A FUSE request waits interruptibly (state S) in request_wait_answer;
	// an NFS one would be in D. Both count as stuck on storage.
	for _, c := range stats {
		waitWchan(t, c.Process.Pid, "request_wait_answer")
	}

	runc := filepath.Join(t.TempDir(), "runc")
	if err := os.Link(testload.Build(t), runc); err != nil {
		b, err := os.ReadFile(testload.Build(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(runc, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rc := exec.Command(runc, "-stdin=false")
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Process.Kill(); _ = rc.Wait() })

	later := func() time.Time { return time.Now().Add(2 * time.Minute) }
	d := diagnose(t, Options{Now: later, MountDeadline: 300 * time.Millisecond})
	f := findingByKey(t, d, "FM-C1/stuck processes")
	if f.Severity < finding.Medium {
		t.Errorf("severity %s, want at least medium", f.Severity)
	}
	figs := map[string]float64{}
	for _, fig := range f.Evidence.Figures {
		figs[fig.Name] = fig.Value
	}
	if figs["processes waiting on a FUSE or NFS server"] < blocked || figs["runc processes older than 1m0s"] < 1 {
		t.Errorf("figures %v, want >= %d waiting on storage and at least our old runc (other tests may run containers meanwhile)", figs, blocked)
	}
	// Processes left stuck by other tests on the same machine may be
	// older than these and fill the ten names: see requireNamed.
	ours := map[int]int{rc.Process.Pid: 0}
	for _, c := range stats {
		ours[c.Process.Pid] = 0
	}
	requireNamed(t, f.Evidence.Consumers, d.Taken, ours)

	c6 := findingByKey(t, d, "FM-C6/"+m.Dir)
	named := map[int]bool{}
	for _, c := range c6.Evidence.Consumers {
		named[c.PID] = true
	}
	for _, c := range stats {
		if !named[c.Process.Pid] {
			t.Errorf("blocked stat pid %d not among the hung mount's processes %+v", c.Process.Pid, c6.Evidence.Consumers)
		}
	}
}

// waitWchan waits (bounded) until pid sleeps in the kernel function wchan.
// The process is known to be on its way there: its request reached the
// hung server.
func waitWchan(t *testing.T, pid int, wchan string) {
	t.Helper()
	path := "/proc/" + strconv.Itoa(pid) + "/wchan"
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(loadedTimeout)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == wchan {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("pid %d waits in %q, not %q, after %s", pid, b, wchan, loadedTimeout)
		}
	}
}

// loadedTimeout bounds a wait for a process to reach a state it is on its
// way to: milliseconds on a quiet machine, seconds on a 2-core one running
// several test suites; the bound only ends a broken run.
const loadedTimeout = 60 * time.Second

// A full filesystem that holds none of the usual hog directories still
// names what fills it: its own biggest entries.
func TestDiskFullElsewhereNamesBiggestEntry(t *testing.T) {
	requireRoot(t)
	mnt := mountTmpfs(t, "scratch")
	if err := os.WriteFile(filepath.Join(mnt, "dump.bin"), make([]byte, 3900<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	d := diagnose(t, Options{HogDirs: []string{"/nonexistent-hog"}})
	f := findingByKey(t, d, "FM-C2/space "+mnt)
	if cs := f.Evidence.Consumers; len(cs) == 0 || cs[0].Name != filepath.Join(mnt, "dump.bin") {
		t.Errorf("consumers %+v, want %s first", cs, filepath.Join(mnt, "dump.bin"))
	}
}

// With two hung mounts, each names the processes stuck on it, not every
// process stuck on any mount.
func TestHungMountsNameTheirOwnWaiters(t *testing.T) {
	requireRoot(t)
	stuck := map[string]int{}
	var mounts []*testload.HungMount
	for _, src := range []string{"nas-a.example:/a", "nas-b.example:/b"} {
		m := testload.MountHung(t, src)
		m.Hang()
		c := exec.Command("stat", m.Dir)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Release(); _ = c.Wait() })
		m.WaitRequests(t, 1, loadedTimeout)
		waitWchan(t, c.Process.Pid, "request_wait_answer")
		stuck[m.Dir] = c.Process.Pid
		mounts = append(mounts, m)
	}
	d := diagnose(t, Options{MountDeadline: 300 * time.Millisecond})
	for _, m := range mounts {
		f := findingByKey(t, d, "FM-C6/"+m.Dir)
		if cs := f.Evidence.Consumers; len(cs) != 1 || cs[0].PID != stuck[m.Dir] {
			t.Errorf("%s names %+v, want only pid %d", m.Dir, cs, stuck[m.Dir])
		}
	}
}

// mountTmpfs mounts a 4 MiB tmpfs on a new directory named name.
func mountTmpfs(t *testing.T, name string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mounting a 4 MiB tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	return mnt
}

// TestStuckThreadReported runs multi-threaded processes whose main thread
// sleeps normally while one other thread is stuck in D on a hung mount:
// doctor counts them as stuck (FM-C1) and names them under the mount
// (FM-C6), although /proc/PID/stat shows each as sleeping (S).
func TestStuckThreadReported(t *testing.T) {
	requireRoot(t)
	m := testload.MountHung(t, "nas-threads.example:/tank")
	m.Hang()
	const n = 5 // FM-C1 opens at five stuck processes
	stuck := map[int]int{}
	for range n {
		p, tid := testload.StuckThread(t, m)
		stuck[p.PID] = tid
	}
	d := diagnose(t, Options{MountDeadline: 300 * time.Millisecond})
	f := findingByKey(t, d, "FM-C1/stuck processes")
	for _, fig := range f.Evidence.Figures {
		if fig.Name == "D-state processes" && fig.Value < n {
			t.Errorf("%v D-state processes, want at least %d", fig.Value, n)
		}
	}
	requireNamed(t, f.Evidence.Consumers, d.Taken, stuck)
	for _, c := range f.Evidence.Consumers {
		if _, ok := stuck[c.PID]; ok && !strings.Contains(c.Name, "request_wait_answer") {
			t.Errorf("consumer %+v does not say what its stuck thread waits in", c)
		}
	}
	c6 := findingByKey(t, d, "FM-C6/"+m.Dir)
	named := map[int]bool{}
	for _, c := range c6.Evidence.Consumers {
		named[c.PID] = true
	}
	for pid := range stuck {
		if !named[pid] {
			t.Errorf("pid %d, stuck on %s, not among the mount's blocked processes %+v", pid, m.Dir, c6.Evidence.Consumers)
		}
	}
}

// requireNamed checks that every pid in want is among an FM-C1 finding's
// consumers. The list holds the ten oldest stuck processes: where other
// tests on the machine hold ten processes stuck for longer, a pid may be
// left out, and only then.
func requireNamed(t *testing.T, cons []finding.Consumer, now time.Time, want map[int]int) {
	t.Helper()
	named := map[int]bool{}
	for _, c := range cons {
		named[c.PID] = true
	}
	for pid := range want {
		if named[pid] {
			continue
		}
		age := processAge(t, pid, now)
		full := len(cons) >= 10
		for _, c := range cons {
			full = full && c.Value >= age-0.01
		}
		if !full {
			t.Errorf("stuck pid %d (%.1f s old) not among the consumers %+v", pid, age, cons)
		}
	}
}

// processAge is how long pid had been running at now, in seconds, read
// with procfs the way the consumers' values are computed.
func processAge(t *testing.T, pid int, now time.Time) float64 {
	t.Helper()
	p, err := procfs.NewProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	start, err := st.StartTime()
	if err != nil {
		t.Fatal(err)
	}
	return float64(now.UnixNano())/1e9 - start
}
