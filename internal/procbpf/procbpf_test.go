package procbpf

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/procfs"

	"github.com/hinomi/hinomi/internal/testload"
)

// load loads the program, or skips where it cannot be (not root outside
// CI). CI's machines run a kernel that has everything the pass needs, so
// there a failure to load fails the test.
func load(t *testing.T) *Pass {
	t.Helper()
	testload.RequireRoot(t, "it loads a BPF program")
	p, err := Load()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("loading the pass: %v", err)
		}
		t.Skipf("the pass cannot run here: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// fromProc counts a process's descriptors, inotify instances and watches,
// and threads, as /proc shows them.
func fromProc(t *testing.T, pid int) (fds, instances, watches, threads int) {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid)
	ents, err := os.ReadDir(dir + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink(dir + "/fd/" + e.Name()); l != "anon_inode:inotify" {
			continue
		}
		instances++
		b, err := os.ReadFile(dir + "/fdinfo/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		watches += bytes.Count(b, []byte("\ninotify wd:"))
	}
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents), instances, watches, len(tasks)
}

// TestPassCountsExactly: the counts of a process with thousands of
// descriptors, several inotify instances and threads, and of its forked
// children, which keep a big table with few descriptors open, equal what
// /proc shows; so does RLIMIT_NOFILE.
func TestPassCountsExactly(t *testing.T) {
	pass := load(t)
	p := testload.Start(t, "-files", "3000", "-instances", "3", "-watches", "700", "-children", "3", "-threads", "5")
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	all, err := fs.AllProcs()
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{p.PID}
	for _, q := range all {
		if st, err := q.Stat(); err == nil && st.PPID == p.PID {
			pids = append(pids, q.PID)
		}
	}
	if len(pids) != 4 {
		t.Fatalf("%d processes (the program and its children), want 4", len(pids))
	}
	// The children may still be starting (their runtime adds threads): a
	// pass is compared with /proc when /proc showed the same before and
	// after it.
	type seen struct{ fds, instances, watches, threads int }
	procNow := func() map[int]seen {
		m := map[int]seen{}
		for _, pid := range pids {
			var c seen
			c.fds, c.instances, c.watches, c.threads = fromProc(t, pid)
			m[pid] = c
		}
		return m
	}
	var res *Result
	var want map[int]seen
	for range 100 {
		before := procNow()
		if res, err = pass.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if want = procNow(); maps.Equal(before, want) {
			break
		}
		want = nil
	}
	if want == nil {
		t.Fatal("the processes kept changing over 100 passes")
	}
	for _, pid := range pids {
		got := res.Procs[pid]
		if got == nil {
			t.Fatalf("pid %d not in the pass", pid)
		}
		if w := want[pid]; got.FDs != w.fds || got.InotifyInstances != w.instances || got.InotifyWatches != w.watches || got.Threads != w.threads || got.Partial {
			t.Errorf("pid %d: %d fds, %d instances, %d watches, %d threads (partial %v); /proc: %+v",
				pid, got.FDs, got.InotifyInstances, got.InotifyWatches, got.Threads, got.Partial, w)
		}
		lim, err := mustProc(t, fs, pid).Limits()
		if err != nil {
			t.Fatal(err)
		}
		want := int(lim.OpenFiles)
		if lim.OpenFiles == ^uint64(0) {
			want = -1
		}
		if got.NofileSoft != want {
			t.Errorf("pid %d: RLIMIT_NOFILE %d, /proc says %d", pid, got.NofileSoft, want)
		}
		st, err := mustProc(t, fs, pid).Stat()
		if err != nil {
			t.Fatal(err)
		}
		// /proc/PID/stat's start time is in clock ticks (USER_HZ, 100).
		if got.StartNS/1e7 != st.Starttime {
			t.Errorf("pid %d: started %d ns after boot; /proc says %d ticks", pid, got.StartNS, st.Starttime)
		}
	}
	if got := res.Procs[p.PID]; got.InotifyInstances != 3 || got.InotifyWatches != 700 {
		t.Errorf("the program: %d instances with %d watches, want 3 with 700", got.InotifyInstances, got.InotifyWatches)
	}
}

func mustProc(t *testing.T, fs procfs.FS, pid int) procfs.Proc {
	t.Helper()
	q, err := fs.Proc(pid)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestPassSparseTable counts a table with a hole of 1,000 descriptors and
// an inotify instance far above every other descriptor, past the first
// chunk of the bitmap: this test's own.
func TestPassSparseTable(t *testing.T) {
	pass := load(t)
	high, want := testload.SparseTable(t)
	res, err := pass.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	me := res.Procs[os.Getpid()]
	if me == nil {
		t.Fatal("this process is not in the pass")
	}
	// The pass's own inotify instance is not counted.
	if me.InotifyInstances != 1 || me.InotifyWatches != 3 {
		t.Errorf("%d inotify instances with %d watches; want the one at fd %d with 3", me.InotifyInstances, me.InotifyWatches, high)
	}
	// The iterator's link and reader are open while it reads this process.
	if me.FDs < want || me.FDs > want+2 {
		t.Errorf("%d fds; want %d (and up to 2 of the iterator's)", me.FDs, want)
	}
}

// TestPassFindsThreadInD finds a process whose main thread sleeps normally
// while another of its threads is stuck in D on a hung mount.
func TestPassFindsThreadInD(t *testing.T) {
	pass := load(t)
	m := testload.MountHung(t, "nas-bpf.example:/tank")
	m.Hang()
	p, tid := testload.StuckThread(t, m)
	res, err := pass.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	me := res.Procs[p.PID]
	if me == nil {
		t.Fatalf("pid %d not in the pass", p.PID)
	}
	if !slices.Equal(me.Stuck, []int{tid}) {
		t.Errorf("threads in D %v; want [%d]", me.Stuck, tid)
	}
	// No thread of this process is in D, nor any of the program's others.
	if mine := res.Procs[os.Getpid()]; mine == nil || len(mine.Stuck) > 0 {
		t.Errorf("this process: %+v", mine)
	}
}

// TestPassSeesEveryProcess: every process /proc lists before and after the
// pass is in it, but pid 1 on kernels whose iterator never visits it (the
// caller reads that one from /proc). A pass that saw only part of the
// host would make findings look resolved.
func TestPassSeesEveryProcess(t *testing.T) {
	pass := load(t)
	before := listPids(t)
	res, err := pass.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	after := map[int]bool{}
	for _, pid := range listPids(t) {
		after[pid] = true
	}
	missing := 0
	for _, pid := range before {
		if _, ok := res.Procs[pid]; !ok && after[pid] && pid != 1 {
			missing++
			t.Errorf("pid %d is in /proc before and after the pass, not in it", pid)
		}
	}
	if len(res.Procs) < len(before)/2 {
		t.Errorf("%d processes in the pass; /proc lists %d", len(res.Procs), len(before))
	}
}

func listPids(t *testing.T) []int {
	t.Helper()
	names, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, n := range names {
		if pid, err := strconv.Atoi(n.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// TestRefusedInPidNamespace: in a pid namespace of its own, where the
// kernel's pids are not /proc's, Load refuses with ErrUnsupported (and the
// caller reads /proc).
func TestRefusedInPidNamespace(t *testing.T) {
	if os.Getenv("HINOMI_PROCBPF_NS") == "1" {
		_, err := Load()
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "pid namespace") {
			t.Fatalf("in a pid namespace: %v; want ErrUnsupported naming the pid namespace", err)
		}
		return
	}
	load(t) // root, and the pass loads outside the namespace
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", os.Args[0], "-test.run=^TestRefusedInPidNamespace$", "-test.v")
	cmd.Env = append(os.Environ(), "HINOMI_PROCBPF_NS=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestRefusedInPidNamespace")) {
		t.Fatalf("in a pid namespace: %v\n%s", err, out)
	}
}

// TestParseRecords: records of a leader and of two of its threads in D,
// one before the leader's and one after, give one process with both; a
// thread whose leader's record is missing gives none; a truncated read is
// an error.
func TestParseRecords(t *testing.T) {
	rec := func(tgid, tid, flags uint32, fds uint32, nofile uint64) []byte {
		b := make([]byte, recSize)
		ne := binary.NativeEndian
		ne.PutUint32(b, tgid)
		ne.PutUint32(b[4:], tid)
		ne.PutUint32(b[8:], flags)
		ne.PutUint32(b[16:], 3)
		ne.PutUint32(b[20:], fds)
		ne.PutUint64(b[32:], 12345)
		ne.PutUint64(b[40:], nofile)
		return b
	}
	var b []byte
	b = append(b, rec(10, 11, recD, 0, 0)...)
	b = append(b, rec(10, 10, recLeader, 42, 1024)...)
	b = append(b, rec(10, 12, recD, 0, 0)...)
	b = append(b, rec(20, 21, recD, 0, 0)...)
	b = append(b, rec(30, 30, recLeader|recCapped, 7, ^uint64(0))...)
	res, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Procs[10]; p == nil || p.FDs != 42 || p.NofileSoft != 1024 || p.Threads != 3 || !slices.Equal(p.Stuck, []int{11, 12}) || p.Partial {
		t.Errorf("pid 10: %+v", p)
	}
	if p := res.Procs[20]; p != nil {
		t.Errorf("pid 20 without its leader's record: %+v", p)
	}
	if p := res.Procs[30]; p == nil || !p.Partial || p.NofileSoft != -1 {
		t.Errorf("pid 30: %+v", p)
	}
	if _, err := parse(b[:len(b)-1]); err == nil {
		t.Error("a truncated read parsed")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(make([]byte, recSize))
	f.Add(make([]byte, recSize+3))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := parse(b)
		if err == nil && len(res.Procs) > len(b)/recSize {
			t.Fatalf("%d processes from %d records", len(res.Procs), len(b)/recSize)
		}
	})
}

// TestObjectBuiltFromSource: the committed object is the one scripts/bpf
// built from the committed sources (procpass.sum records the hashes of
// all three); where clang and libbpf's headers are installed, building
// the sources again gives the same bytes.
func TestObjectBuiltFromSource(t *testing.T) {
	f, err := os.Open("procpass.sum")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("procpass.sum: bad line %q", line)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s changed since scripts/bpf built procpass.o: run scripts/bpf and commit its outputs", name)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("procpass.sum lists %d files, want 3", n)
	}
	if !bytes.Equal(object, mustRead(t, "procpass.o")) {
		t.Fatal("the embedded object is not procpass.o")
	}
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Log("no clang: the object is checked against its recorded hashes only")
		return
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Log("no libbpf headers: the object is checked against its recorded hashes only")
		return
	}
	out, _ := exec.Command(clang, "--version").Output()
	if !bytes.Contains(out, []byte("clang version 14.")) {
		t.Logf("clang is not version 14 (%s): a rebuild need not give the same bytes", bytes.TrimSpace(bytes.SplitN(out, []byte("\n"), 2)[0]))
		return
	}
	// scripts/bpf builds in the package directory beside it: it runs from
	// a copy of that shape of the tree, which leaves the checkout alone.
	dir := t.TempDir()
	pkg := filepath.Join(dir, "internal", "procbpf")
	if err := os.CopyFS(filepath.Join(pkg, "src"), os.DirFS("src")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "scripts"), os.DirFS("../../scripts")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", filepath.Join(dir, "scripts", "bpf")).CombinedOutput(); err != nil {
		t.Fatalf("scripts/bpf: %v\n%s", err, out)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(pkg, "procpass.o")), object) {
		t.Error("building src/ again gives another object than procpass.o: run scripts/bpf and commit its outputs")
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
