package proctable

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/procfs"

	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/testload"
)

func TestScanCountsExactly(t *testing.T) {
	const watches, instances, files, children = 250, 4, 120, 3
	p := testload.Start(t, "-watches", "250", "-instances", "4", "-files", "120", "-children", "3")
	bothPasses(t, func(t *testing.T, tb *Table) {
		me := tb.ByPID(p.PID)
		if me == nil {
			t.Fatalf("pid %d not in the table", p.PID)
		}
		if me.Comm != "hinomi-testload" || me.InotifyWatches != watches || me.InotifyInstances != instances {
			t.Errorf("got comm %q, %d watches in %d instances; want hinomi-testload, %d in %d", me.Comm, me.InotifyWatches, me.InotifyInstances, watches, instances)
		}
		if me.FDs < files+instances {
			t.Errorf("%d fds, want at least %d", me.FDs, files+instances)
		}
		if me.NofileSoft == 0 {
			t.Error("RLIMIT_NOFILE not read for a process with many descriptors")
		}
		kids := 0
		for _, q := range tb.Procs {
			if q.PPID == p.PID {
				kids++
			}
		}
		if kids != children {
			t.Errorf("%d children in the table, want %d", kids, children)
		}
		if tb.Boot.IsZero() {
			t.Error("boot time not read")
		}
		if me.Started.Before(tb.Boot) {
			t.Errorf("process started %v, before boot %v", me.Started, tb.Boot)
		}
	})
}

func TestRedactArgs(t *testing.T) {
	got := RedactArgs([]string{"mysql", "-uroot", "-pS3cret", "--password=x", "--api-token", "abc", "--port", "3306", "-v"})
	want := []string{"mysql", "-uroot", "-p<redacted>", "--password=<redacted>", "--api-token", "<redacted>", "--port", "3306", "-v"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestParseCrictlPS(t *testing.T) {
	in := `{"containers":[{"id":"5c1f","metadata":{"name":"coredns"},"labels":{"io.kubernetes.pod.name":"coredns-abc","io.kubernetes.pod.namespace":"kube-system"}}]}`
	cs, err := ParseCrictlPS([]byte(in))
	if err != nil || len(cs) != 1 || cs[0].Pod != "kube-system/coredns-abc" || cs[0].Name != "coredns" {
		t.Errorf("got %+v, %v", cs, err)
	}
	if _, err := ParseCrictlPS([]byte("{truncated")); err == nil || !strings.Contains(err.Error(), "crictl") {
		t.Errorf("truncated output: %v", err)
	}
}

func FuzzCountInotifyWatches(f *testing.F) {
	f.Add([]byte("pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t1057\ninotify wd:1 ino:2 sdev:fd00001 mask:fce ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0200000000000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := CountInotifyWatches(b); n < 0 || n > len(b)/len("inotify wd:") {
			t.Errorf("%d watches in %d bytes", n, len(b))
		}
	})
}

func FuzzRedactArgs(f *testing.F) {
	f.Add("mysql\x00-pS3cret\x00--token\x00abc")
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		got := RedactArgs(args)
		if len(got) != len(args) || (len(args) > 0 && got[0] != args[0]) {
			t.Errorf("RedactArgs(%q) = %q", args, got)
		}
	})
}

func FuzzParseCrictlPS(f *testing.F) {
	f.Add([]byte(`{"containers":[{"id":"a","metadata":{"name":"n"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseCrictlPS(b) })
}

// TestScanWhileProcessesExit scans while short-lived processes start and
// exit: vanished processes are left out, never an error.
func TestScanWhileProcessesExit(t *testing.T) {
	done := make(chan struct{})
	churned := make(chan int)
	go func() {
		n := 0
		defer func() { churned <- n }()
		for n < 2000 {
			select {
			case <-done:
				return
			default:
			}
			if err := exec.Command("true").Run(); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	for range 20 {
		tb, err := Scan(t.Context(), host.Live())
		if err != nil {
			t.Fatalf("scan during process churn: %v", err)
		}
		for _, p := range tb.Procs {
			if p.Comm == "" || p.PID <= 0 {
				t.Fatalf("half-read process %+v", p)
			}
		}
	}
	close(done)
	if n := <-churned; n == 0 {
		t.Error("no process was started during the scans")
	}
}

// TestScanBigTable counts a table big enough to be split between the
// workers exactly, inotify watches included.
func TestScanBigTable(t *testing.T) {
	const files, instances, watches = 3 * chunkFDs, 3, 90
	p := testload.Start(t, "-files", strconv.Itoa(files), "-instances", strconv.Itoa(instances), "-watches", strconv.Itoa(watches))
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(p.PID) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	bothPasses(t, func(t *testing.T, tb *Table) {
		me := tb.ByPID(p.PID)
		if me == nil {
			t.Fatalf("pid %d not in the table", p.PID)
		}
		if me.FDs != len(ents) || me.InotifyInstances != instances || me.InotifyWatches != watches {
			t.Errorf("got %d fds, %d instances, %d watches; want %d, %d, %d", me.FDs, me.InotifyInstances, me.InotifyWatches, len(ents), instances, watches)
		}
		if me.NofileSoft == 0 {
			t.Error("RLIMIT_NOFILE not read")
		}
	})
}

// TestScanSparseTable counts a table with a hole of 1,000 descriptors and
// an inotify instance far above every other descriptor: this test's own.
func TestScanSparseTable(t *testing.T) {
	high, want := testload.SparseTable(t)
	bothPasses(t, func(t *testing.T, tb *Table) {
		me := tb.ByPID(os.Getpid())
		if me == nil {
			t.Fatal("this process is not in the table")
		}
		if me.InotifyInstances != 1 || me.InotifyWatches != 3 {
			t.Errorf("%d inotify instances with %d watches; want the one at fd %d with 3", me.InotifyInstances, me.InotifyWatches, high)
		}
		// The scan's own descriptors (a few per worker) are open while it reads
		// this process, and counted with the rest.
		if slack := 4 * runtime.GOMAXPROCS(0); me.FDs < want || me.FDs > want+slack {
			t.Errorf("%d fds; want %d (up to %d more for the scan's own)", me.FDs, want, slack)
		}
	})
}

// TestParseStatAgreesWithProcfs reads every process's stat with hinomi's
// parser and with prometheus/procfs's.
func TestParseStatAgreesWithProcfs(t *testing.T) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	all, err := fs.AllProcs()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, pp := range all {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pp.PID) + "/stat")
		if err != nil {
			continue // gone
		}
		ps, err := pp.Stat()
		if err != nil {
			continue
		}
		got, err := parseStat(b)
		if err != nil {
			t.Errorf("pid %d: %v in %q", pp.PID, err, b)
			continue
		}
		// The process may change state and use more CPU between the two
		// reads; its identity may not, and its CPU time only grows.
		if got.comm != ps.Comm || got.ppid != ps.PPID || got.starttime != ps.Starttime || uint(got.flags) != ps.Flags || got.cpu > uint64(ps.UTime+ps.STime) {
			t.Errorf("pid %d: got %+v; procfs %+v", pp.PID, got, ps)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no process read")
	}
}

func TestScanCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Scan(ctx, host.Live()); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v; want context.Canceled", err)
	}
}

// TestScanFindsStuckThread finds a process whose main thread sleeps
// normally while another of its threads is stuck in D on a hung mount.
func TestScanFindsStuckThread(t *testing.T) {
	testload.RequireRoot(t, "it mounts FUSE")
	m := testload.MountHung(t, "nas-thread.example:/tank")
	m.Hang()
	p, tid := testload.StuckThread(t, m)
	bothPasses(t, func(t *testing.T, tb *Table) {
		me := tb.ByPID(p.PID)
		if me == nil {
			t.Fatalf("pid %d not in the table", p.PID)
		}
		if me.State == "D" {
			t.Fatalf("the main thread is in D: the test needs it sleeping normally")
		}
		want := []Thread{{TID: tid, Wchan: "request_wait_answer"}}
		if !slices.Equal(me.StuckThreads, want) || !me.InD() {
			t.Errorf("stuck threads %+v (InD %v); want %+v", me.StuckThreads, me.InD(), want)
		}
	})
}

// FuzzParseStat: any bytes give a stat or an error, never a panic, and a
// stat parsed has a state.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (systemd) S 0 1 1 0 -1 4194560 52341 3390810 107 1633 203 420 9114 4171 20 0 1 0 5 24371200 3291 18446744073709551615\n"))
	f.Add([]byte("42 (a) b) (c) D 1 42 42 0 -1 4194560 0 0 0 0 7 9 0 0 20 0 12 0 777 0 0\n"))
	f.Add([]byte("7 (x) R"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStat(b)
		if err == nil && st.state == "" {
			t.Fatalf("%q: parsed with no state", b)
		}
		_ = stateOf(b)
	})
}

// TestCommandReadOnDemand: on a live host the pass leaves command lines
// unread, and Command reads a process's when asked, redacted; a process
// that has exited since the pass has none (its pid is not read as whoever
// has it now).
func TestCommandReadOnDemand(t *testing.T) {
	start := func(args ...string) *exec.Cmd {
		cmd := exec.Command("sh", append([]string{"-c", "sleep 300; :"}, args...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	alive, gone := start("--password=hunter2"), start("x")
	tb, err := Scan(t.Context(), host.Live())
	if err != nil {
		t.Fatal(err)
	}
	a, g := tb.ByPID(alive.Process.Pid), tb.ByPID(gone.Process.Pid)
	if a == nil || g == nil {
		t.Fatal("the children are not in the table")
	}
	if a.Cmdline != "" {
		t.Errorf("the pass read the command line (%q); it is read on demand", a.Cmdline)
	}
	_ = gone.Process.Kill()
	_ = gone.Wait()
	if got, want := a.Command(), "sh -c sleep 300; : --password=<redacted>"; got != want {
		t.Errorf("Command() = %q; want %q", got, want)
	}
	if got := g.Command(); got != "" {
		t.Errorf("Command() of an exited process = %q; want empty", got)
	}
}

// TestScanReadsNetworkNamespace: the pass gives each live process's
// network namespace, as its ns/net link names it.
func TestScanReadsNetworkNamespace(t *testing.T) {
	tb, err := Scan(t.Context(), host.Live())
	if err != nil {
		t.Fatal(err)
	}
	link, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Skipf("no namespace links here: %v", err)
	}
	want := netnsOfLink([]byte(link))
	if want == 0 {
		t.Fatalf("%q does not parse as a namespace link", link)
	}
	if me := tb.ByPID(os.Getpid()); me == nil || me.NetNS != want {
		t.Errorf("own process: %+v; want NetNS %d (%s)", me, want, link)
	}
	if netnsOfLink([]byte("mnt:[4026531841]")) != 0 || netnsOfLink([]byte("net:[]")) != 0 {
		t.Error("a link that is not a network namespace's parsed as one")
	}
}

// bothPasses runs f on a table read each way: with the BPF pass (where it
// can run: as root, so always in CI) and from /proc alone.
func bothPasses(t *testing.T, f func(t *testing.T, tb *Table)) {
	t.Helper()
	for _, o := range []Options{{}, {NoBPF: true}} {
		name := "bpf"
		if o.NoBPF {
			name = "proc"
		}
		t.Run(name, func(t *testing.T) {
			tb, err := ScanWith(t.Context(), host.Live(), o)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case o.NoBPF && tb.Pass != "proc":
				t.Errorf("the BPF pass ran though turned off")
			case !o.NoBPF && os.Geteuid() == 0 && os.Getenv("CI") != "" && tb.Pass != "bpf":
				t.Errorf("the BPF pass did not run: %s", tb.PassNote)
			}
			f(t, tb)
		})
	}
}

// TestScanBPFAgreesWithProc reads a loaded program, its children (forked
// with a big table and few descriptors open) and a process with a thread
// stuck in D both ways: every count, limit and stuck thread is the same.
func TestScanBPFAgreesWithProc(t *testing.T) {
	testload.RequireRoot(t, "the BPF pass needs root, and the stuck thread a FUSE mount")
	load := testload.Start(t, "-files", "5000", "-instances", "6", "-watches", "3000", "-children", "20", "-threads", "4")
	m := testload.MountHung(t, "nas-agree.example:/tank")
	m.Hang()
	stuck, tid := testload.StuckThread(t, m)

	type view struct {
		fds, instances, watches, nofile int
		stuck                           string
	}
	mine := func(tb *Table) map[int]view {
		out := map[int]view{}
		for _, p := range tb.Procs {
			if p.PID == load.PID || p.PPID == load.PID || p.PID == stuck.PID {
				out[p.PID] = view{p.FDs, p.InotifyInstances, p.InotifyWatches, p.NofileSoft, fmt.Sprint(p.StuckThreads)}
			}
		}
		return out
	}
	scan := func(o Options) (*Table, map[int]view) {
		tb, err := ScanWith(t.Context(), host.Live(), o)
		if err != nil {
			t.Fatal(err)
		}
		return tb, mine(tb)
	}
	// The children may still be starting: the /proc scan is compared when
	// the BPF scans on either side of it agree.
	for range 50 {
		tb, before := scan(Options{})
		if tb.Pass != "bpf" {
			if os.Getenv("CI") != "" {
				t.Fatalf("the BPF pass did not run: %s", tb.PassNote)
			}
			t.Skipf("the BPF pass cannot run here: %s", tb.PassNote)
		}
		_, viaProc := scan(Options{NoBPF: true})
		if _, after := scan(Options{}); !maps.Equal(before, after) {
			continue
		}
		if len(before) != 22 {
			t.Fatalf("%d of the test's processes in the table, want 22: %v", len(before), before)
		}
		for pid, b := range before {
			if viaProc[pid] != b {
				t.Errorf("pid %d: BPF pass %+v, /proc %+v", pid, b, viaProc[pid])
			}
		}
		if want := fmt.Sprint([]Thread{{TID: tid, Wchan: "request_wait_answer"}}); before[stuck.PID].stuck != want {
			t.Errorf("stuck threads %s, want %s", before[stuck.PID].stuck, want)
		}
		if v := before[load.PID]; v.instances != 6 || v.watches != 3000 || v.fds < 5006 || v.nofile == 0 {
			t.Errorf("the loaded program: %+v", v)
		}
		return
	}
	t.Fatal("the test's processes kept changing over 50 rounds")
}

// TestScanWithoutLoadingBPF: a scan that may not load the BPF pass reads
// /proc until LoadBPF has loaded it, then uses it.
func TestScanWithoutLoadingBPF(t *testing.T) {
	testload.RequireRoot(t, "the BPF pass needs root")
	// The package's other tests may have loaded the shared pass: it is set
	// aside, and put back at the end.
	shared.Lock()
	kept, keptErr := shared.pass, shared.err
	shared.pass, shared.err = nil, nil
	shared.Unlock()
	t.Cleanup(func() {
		shared.Lock()
		if shared.pass != nil {
			shared.pass.Close()
		}
		shared.pass, shared.err = kept, keptErr
		shared.Unlock()
	})
	tb, err := ScanWith(t.Context(), host.Live(), Options{NoBPFLoad: true})
	if err != nil {
		t.Fatal(err)
	}
	if tb.Pass != "proc" || tb.PassNote != errNotLoaded.Error() {
		t.Errorf("before loading: pass %q (%s)", tb.Pass, tb.PassNote)
	}
	if err := LoadBPF(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("loading the BPF pass: %v", err)
		}
		t.Skipf("the BPF pass cannot run here: %v", err)
	}
	tb, err = ScanWith(t.Context(), host.Live(), Options{NoBPFLoad: true})
	if err != nil {
		t.Fatal(err)
	}
	if tb.Pass != "bpf" {
		t.Errorf("after loading: pass %q (%s)", tb.Pass, tb.PassNote)
	}
}
