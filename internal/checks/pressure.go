package checks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
)

// psiLimits are the avg60 percentages from which pressure is a finding. A
// "full" stall means every runnable task waited at once: far worse than
// "some", hence the lower thresholds.
var psiLimits = []struct {
	resource string
	full     bool
	low, med float64
}{
	{"memory", true, 5, 20},
	{"io", true, 10, 30},
	{"memory", false, 20, 50},
	{"io", false, 30, 60},
	{"cpu", false, 50, 80},
}

// checkPressure is the PSI part of FM-B4: the share of the last minute in
// which tasks stalled waiting for CPU, memory or I/O. CPU pressure names
// who used the CPU over a sample, as every other finding names its
// culprit.
func checkPressure(ctx context.Context, env *Env) (Result, error) {
	var res Result
	pfs, err := env.Src.ProcFS()
	if err != nil {
		return res, err
	}
	for _, r := range []string{"cpu", "memory", "io"} {
		_, _ = env.Src.ReadFile("/proc/pressure/" + r) // recorded for snapshots
	}
	for _, l := range psiLimits {
		st, err := pfs.PSIStatsForResource(l.resource)
		if host.Missing(err) {
			return res, ErrNotApplicable // kernel without CONFIG_PSI or psi=0
		}
		if err != nil {
			return res, err
		}
		line, kind := st.Some, "some"
		if l.full {
			line, kind = st.Full, "full"
		}
		if line == nil {
			continue
		}
		fig := finding.Figure{Name: fmt.Sprintf("%s pressure (%s, avg60)", l.resource, kind), Value: line.Avg60, Unit: "%", Source: "/proc/pressure/" + l.resource}
		if l.full || l.resource == "cpu" {
			res.Headroom = append(res.Headroom, fig)
		}
		sev := finding.Severity(0)
		switch {
		case line.Avg60 >= l.med:
			sev = finding.Medium
		case line.Avg60 >= l.low:
			sev = finding.Low
		}
		if sev == 0 {
			continue
		}
		what := "some tasks"
		if l.full {
			what = "all runnable tasks"
		}
		f := finding.Finding{
			Mode: "FM-B4", Severity: sev, Subject: "psi " + l.resource + " " + kind,
			Summary: fmt.Sprintf("In the last minute %s stalled waiting for %s %.0f%% of the time (10 s: %.0f%%, 5 min: %.0f%%).",
				what, l.resource, line.Avg60, line.Avg10, line.Avg300),
			Evidence: finding.Evidence{Figures: []finding.Figure{fig}, Vars: map[string]string{"resource": "psi", "psi": l.resource, "used": fmt.Sprintf("%.1f", line.Avg60)}},
		}
		if l.resource == "cpu" {
			if blind := nameCPUUsers(ctx, env, &f); blind != "" {
				res.Blind = append(res.Blind, blind)
			}
		}
		res.Findings = append(res.Findings, f)
	}
	return res, nil
}

// cpuSample is the CPU time each process used over a sample: utime+stime
// of /proc/PID/stat (all its threads) read twice. Snapshots keep it as a
// probe, so a replay names the same users.
type cpuSample struct {
	Interval time.Duration `json:"interval_ns"`
	// Ticks are USER_HZ ticks of CPU time used during Interval, by pid.
	Ticks map[int]uint64 `json:"ticks"`
	// Busy are the ticks all CPUs spent out of idle and iowait (from
	// /proc/stat): what the processes' ticks leave unexplained went to
	// processes that came and went within the sample, or to interrupts.
	Busy uint64 `json:"busy"`
}

// userHZ is the unit of /proc/PID/stat's times on every architecture
// hinomi runs on.
const userHZ = 100

var errNoSample = errors.New("no sample taken (--sample 0)")

// sampleCPU reads every process's CPU time, waits env.SampleFor and reads
// it again. A process that started or ended in between counts for the
// part it was seen in both readings; a reused pid is told apart by its
// start time.
func sampleCPU(ctx context.Context, env *Env) (cpuSample, error) {
	s := cpuSample{Ticks: map[int]uint64{}}
	err := env.Src.Probe("cpu-users", &s, func() error {
		if env.SampleFor <= 0 {
			return errNoSample
		}
		type reading = proctable.CPUTime
		pids := make([]int, len(env.Procs.Procs))
		for i, p := range env.Procs.Procs {
			pids[i] = p.PID
		}
		read := func() map[int]reading { return proctable.ReadCPU(env.Src, pids) }
		busy := func() uint64 {
			// Read directly: a snapshot keeps the pass's /proc/stat.
			b, err := os.ReadFile(env.Src.Path("/proc/stat"))
			if err != nil {
				return 0
			}
			return proctable.BusyTicks(b)
		}
		// The process table's pass is the first reading when it has one:
		// the sample then overlaps the pass, and doctor does not wait a
		// whole SampleFor more after it.
		start, busy0, first := env.Procs.Start, env.Procs.Busy, map[int]reading{}
		for _, p := range env.Procs.Procs {
			if p.StartTicks > 0 || p.CPUTicks > 0 {
				first[p.PID] = reading{Start: p.StartTicks, Ticks: p.CPUTicks}
			}
		}
		if start.IsZero() || len(first) == 0 {
			start, busy0, first = time.Now(), busy(), read()
		}
		t := time.NewTimer(time.Until(start.Add(env.SampleFor)))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		second := read()
		if b := busy(); busy0 > 0 && b > busy0 {
			s.Busy = b - busy0
		}
		s.Interval = time.Since(start).Round(time.Millisecond)
		self := os.Getpid() // the diagnosis itself is busy while it samples
		for pid, b := range second {
			if a, ok := first[pid]; ok && pid != self && a.Start == b.Start && b.Ticks > a.Ticks {
				s.Ticks[pid] = b.Ticks - a.Ticks
			}
		}
		return nil
	})
	return s, err
}

// nameCPUUsers adds to a CPU-pressure finding the processes and the
// containers, guests and units that used the most CPU over a sample, and
// points its runbook at the biggest. It returns what it could not see.
func nameCPUUsers(ctx context.Context, env *Env, f *finding.Finding) (blind string) {
	s, err := sampleCPU(ctx, env)
	if err != nil {
		return "who uses the CPU: " + err.Error()
	}
	if s.Interval <= 0 {
		return "who uses the CPU: empty sample"
	}
	t := newTally()
	byOwner := map[string]*proctable.Proc{} // the busiest process of each owner
	ownerUse := map[string]float64{}
	pct := map[int]float64{}
	for _, pid := range slices.Sorted(maps.Keys(s.Ticks)) { // ties print alike in a replay
		ticks := s.Ticks[pid]
		p := env.Procs.ByPID(pid)
		if p == nil {
			continue
		}
		v := 100 * float64(ticks) / userHZ / s.Interval.Seconds()
		pct[pid] = v
		t.add(p, v, "%")
		if p.Owner.IsContainer() || p.Owner.Kind == "service" {
			key := p.Owner.Kind + ":" + p.Owner.ID
			ownerUse[key] += v
			if q := byOwner[key]; q == nil || v > pct[q.PID] {
				byOwner[key] = p
			}
		}
	}
	if len(t.procs) == 0 {
		f.Evidence.Notes = append(f.Evidence.Notes, fmt.Sprintf("No process used measurable CPU time in a %s sample: the pressure comes from short-lived processes or the kernel.", s.Interval))
		return ""
	}
	top := t.top(5)
	f.Evidence.Consumers = top
	n := cpus(env)
	f.Evidence.Notes = append(f.Evidence.Notes, fmt.Sprintf("CPU use over a %s sample, in %% of one CPU (all %d CPUs busy is %d%%).", s.Interval, n, 100*n))
	if s.Busy > 0 {
		busy := 100 * float64(s.Busy) / userHZ / s.Interval.Seconds()
		named := 0.0
		for _, pid := range slices.Sorted(maps.Keys(pct)) { // one order: a replay sums alike
			named += pct[pid]
		}
		f.Evidence.Figures = append(f.Evidence.Figures,
			finding.Figure{Name: "CPU busy during the sample", Value: busy, Limit: float64(100 * n), Unit: "%", Source: "/proc/stat"},
			finding.Figure{Name: "of which by processes alive through it", Value: min(named, busy), Unit: "%", Source: "/proc/*/stat"})
		if named < busy/2 {
			f.Evidence.Notes = append(f.Evidence.Notes, "Most of the CPU time went to processes that started and ended within the sample (builds, cron jobs, health checks spawning commands) or to interrupts: look at their parent with `ps -eo pid,ppid,etime,comm --sort=start_time | tail`.")
		}
	}

	// The runbook caps the biggest user: a container, guest or unit when
	// its processes together use more than the busiest single process.
	busiest, most := env.Procs.ByPID(t.procs[0].PID), t.procs[0].Value
	keys := slices.Sorted(maps.Keys(ownerUse))
	for _, key := range keys {
		if v := ownerUse[key]; v > most {
			busiest, most = byOwner[key], v
		}
	}
	varsOfProcess(f.Evidence.Vars, busiest)
	names := make([]string, 0, 3)
	for _, c := range t.procs[:min(3, len(t.procs))] {
		who := fmt.Sprintf("%s (pid %d", c.Name, c.PID)
		if c.Owner != "host" {
			who += ", " + c.Owner
		}
		names = append(names, fmt.Sprintf("%s) %.0f%%", who, c.Value))
	}
	f.Summary += fmt.Sprintf(" Busiest over %s: %s of one CPU.", s.Interval, strings.Join(names, ", "))
	return ""
}

// cpus counts the CPUs in /proc/stat.
func cpus(env *Env) int {
	b, err := env.Src.ReadFile("/proc/stat")
	if err != nil {
		return 1
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "cpu") && len(l) > 3 && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}
