package doctor

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/testload"
)

// BenchmarkDoctorUnderLoad runs the real hinomi binary against this host
// under a real load of at least 2,000 processes, 100,000 open descriptors
// and 50,000 inotify watches and, in the same run, the baseline (a bare
// single-threaded pass over /proc that lists every fd directory and reads
// every link, nothing else) and the two tools an operator would reach for:
// `lsof -n | wc -l`, and the usual shell pipeline over /proc/*/fdinfo that
// counts inotify watches. It reports doctor's wall time, CPU time and peak
// RSS and the ratios; docs/benchmarks.md records the figures. Doctor runs
// with the BPF pass (procbpf), which it uses where it can, and, alternated
// with it, with --no-bpf: the /proc pass of hosts where it cannot.
//
//	go test -run '^$' -bench DoctorUnderLoad -benchtime 1x ./internal/doctor
func BenchmarkDoctorUnderLoad(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: it raises RLIMIT_NOFILE for its load")
	}
	for _, tool := range []string{"lsof", "find", "xargs", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is not installed (scripts/test installs it): %v", tool, err)
		}
	}
	const wantProcs, wantFDs, wantWatches = 2000, 100_000, 50_000

	testload.StartHostLoad(b, wantProcs, wantFDs, wantWatches)
	tb, err := proctable.ScanWith(b.Context(), host.Live(), proctable.Options{NoBPF: true})
	if err != nil {
		b.Fatal(err)
	}
	var nfds, nwatches int
	for _, p := range tb.Procs {
		nfds += max(p.FDs, 0)
		nwatches += p.InotifyWatches
	}
	if len(tb.Procs) < wantProcs || nfds < wantFDs || nwatches < wantWatches {
		b.Fatalf("load too small: %d processes, %d fds, %d watches", len(tb.Procs), nfds, nwatches)
	}

	bin := buildHinomi(b)
	run := func(name string, argv ...string) (time.Duration, time.Duration, int64) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = nil, nil
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		if ee, ok := err.(*exec.ExitError); err != nil && !(ok && name == "doctor" && ee.ExitCode() == ExitFindings) {
			b.Fatalf("%s: %v", name, err)
		}
		ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		var rss int64
		var cpu time.Duration
		if ru != nil {
			rss = ru.Maxrss * 1024
			cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		return took, cpu, rss
	}
	// The default run must be the BPF pass's, or the figures say nothing.
	out, err := exec.Command(bin, "doctor", "--json", "--sample", "0").Output()
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == ExitFindings) {
		b.Fatal(err)
	}
	var rep struct {
		Pass string `json:"process_pass"`
		Note string `json:"process_pass_note"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		b.Fatal(err)
	}
	if rep.Pass != "bpf" {
		if os.Getenv("CI") != "" {
			b.Fatalf("doctor did not use the BPF pass: %s", rep.Note)
		}
		b.Logf("doctor did not use the BPF pass: %s", rep.Note)
	}
	// The baseline: what `ls -l /proc/*/fd` does, on one thread.
	bare := func() (time.Duration, time.Duration, int) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var ru0, ru1 syscall.Rusage
		_ = syscall.Getrusage(rusageThread, &ru0)
		start := time.Now()
		links := 0
		procs, err := os.ReadDir("/proc")
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range procs {
			if _, err := strconv.Atoi(p.Name()); err != nil {
				continue
			}
			dir := "/proc/" + p.Name() + "/fd"
			fds, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, fd := range fds {
				if _, err := os.Readlink(dir + "/" + fd.Name()); err == nil {
					links++
				}
			}
		}
		took := time.Since(start)
		_ = syscall.Getrusage(rusageThread, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		return took, cpu, links
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}

	b.ResetTimer()
	for b.Loop() {
		var doctorT, doctorCPU, bareT, bareCPU, noSampleT, shellT, procT, procCPU []time.Duration
		var peak int64
		var links int
		// Alternated, so that the machine's other load weighs on both alike.
		for range 5 {
			t, cpu, rss := run("doctor", bin, "doctor")
			doctorT = append(doctorT, t)
			doctorCPU = append(doctorCPU, cpu)
			peak = max(peak, rss)
			bt, bc, n := bare()
			bareT, bareCPU, links = append(bareT, bt), append(bareCPU, bc), n
			// Without the 0.5 s second sample of the packet-drop counters,
			// which sets a floor under the default run's wall time.
			t, _, _ = run("doctor", bin, "doctor", "--sample", "0")
			noSampleT = append(noSampleT, t)
			t, cpu, _ = run("doctor", bin, "doctor", "--no-bpf")
			procT, procCPU = append(procT, t), append(procCPU, cpu)
		}
		for range 3 {
			t, _, _ := run("shell", "sh", "-c", `find /proc/[0-9]*/fd -lname 'anon_inode:inotify' -printf '%hinfo/%f\n' 2>/dev/null | xargs cat 2>/dev/null | grep -c '^inotify wd:'`)
			shellT = append(shellT, t)
		}
		lsofT := timeLsof(b)
		d, s, bp, dc, bc, ns := median(doctorT), median(shellT), median(bareT), median(doctorCPU), median(bareCPU), median(noSampleT)
		pt, pc := median(procT), median(procCPU)
		b.ReportMetric(d.Seconds(), "doctor-s")
		b.ReportMetric(dc.Seconds(), "doctor-CPU-s")
		b.ReportMetric(bp.Seconds(), "bare-pass-s")
		b.ReportMetric(d.Seconds()/bp.Seconds(), "doctor/bare-pass")
		b.ReportMetric(bc.Seconds(), "bare-pass-CPU-s")
		b.ReportMetric(ns.Seconds(), "doctor-sample0-s")
		b.ReportMetric(ns.Seconds()/bp.Seconds(), "doctor-sample0/bare-pass")
		b.ReportMetric(float64(peak)/(1<<20), "doctor-peak-RSS-MB")
		b.ReportMetric(pt.Seconds(), "doctor-no-bpf-s")
		b.ReportMetric(pt.Seconds()/bp.Seconds(), "doctor-no-bpf/bare-pass")
		b.ReportMetric(lsofT.Seconds(), "lsof-s")
		b.ReportMetric(lsofT.Seconds()/d.Seconds(), "x-faster-than-lsof")
		b.ReportMetric(s.Seconds(), "shell-fdinfo-s")
		b.ReportMetric(s.Seconds()/d.Seconds(), "x-faster-than-shell")
		b.Logf("load: %d processes, %d open fds, %d inotify watches; doctor (%s pass) median of 5 %.3f s wall, %.3f s CPU (peak RSS %.1f MB), with --sample 0 %.3f s, with --no-bpf %.3f s wall, %.3f s CPU (%.2f of the bare pass); bare single-threaded readdir+readlink pass median of 5 %.3f s wall, %.3f s CPU (%d links); doctor/bare %.2f (target <= 0.6), with --sample 0 %.2f; lsof -n | wc -l %.3f s (%.1fx); shell fdinfo pipeline median of 3 %.3f s (%.1fx)",
			len(tb.Procs), nfds, nwatches, rep.Pass, d.Seconds(), dc.Seconds(), float64(peak)/(1<<20), ns.Seconds(), pt.Seconds(), pc.Seconds(), pt.Seconds()/bp.Seconds(), bp.Seconds(), bc.Seconds(), links, d.Seconds()/bp.Seconds(), ns.Seconds()/bp.Seconds(),
			lsofT.Seconds(), lsofT.Seconds()/d.Seconds(), s.Seconds(), s.Seconds()/d.Seconds())
	}
}

// lsofLimit bounds the lsof run: lsof stats every mount point, and a hung
// FUSE or NFS mount (another test's, on a shared machine) blocks it until
// the mount answers. Its time is then reported as the limit, a lower bound.
const lsofLimit = 3 * time.Minute

// timeLsof times `lsof -n | wc -l`, for at most lsofLimit.
func timeLsof(b *testing.B) time.Duration {
	cmd := exec.Command("sh", "-c", "lsof -n 2>/dev/null | wc -l")
	// Its own process group, so that lsof is killed with the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatalf("lsof: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(lsofLimit)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			b.Fatalf("lsof: %v", err)
		}
		return time.Since(start)
	case <-timer.C:
		// A process stuck on a hung mount may not die before the mount
		// answers: it is not waited for.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		b.Logf("lsof -n did not finish within %s (a hung mount on this machine?): its time is reported as %s", lsofLimit, lsofLimit)
		return lsofLimit
	}
}

// rusageThread is RUSAGE_THREAD: the CPU time of the calling thread only.
const rusageThread = 1

func buildHinomi(b *testing.B) string {
	b.Helper()
	root, err := testload.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "hinomi")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/hinomi")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
