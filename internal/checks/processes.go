package checks

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/proctable"
)

// checkProcesses is the pids part of FM-B4: processes against
// kernel.pid_max, threads against kernel.threads-max, and each container's
// or service's cgroup pids.current against its pids.max.
func checkProcesses(_ context.Context, env *Env) (Result, error) {
	var res Result
	threads := 0
	for _, p := range env.Procs.Procs {
		threads += p.Threads
	}
	// Every thread takes a PID, so pid_max bounds threads, not processes.
	if pidMax, err := readInt(env.Src, "/proc/sys/kernel/pid_max"); err == nil {
		fig := finding.Figure{Name: "PIDs in use (threads)", Value: float64(threads), Limit: float64(pidMax), Source: "/proc/sys/kernel/pid_max"}
		res.Headroom = append(res.Headroom, fig)
		if sev := finding.ForRatio(float64(threads), float64(pidMax)); sev > 0 {
			res.Findings = append(res.Findings, limitFinding(env, sev, "pids", fig, "kernel.pid_max", pidMax, threads,
				"new processes and threads fail with \"fork: Resource temporarily unavailable\""))
		}
	}
	if thrMax, err := readInt(env.Src, "/proc/sys/kernel/threads-max"); err == nil {
		fig := finding.Figure{Name: "threads", Value: float64(threads), Limit: float64(thrMax), Source: "/proc/sys/kernel/threads-max"}
		if sev := finding.ForRatio(float64(threads), float64(thrMax)); sev > 0 {
			res.Findings = append(res.Findings, limitFinding(env, sev, "threads", fig, "kernel.threads-max", thrMax, threads,
				"no new thread can be created anywhere on the host"))
		}
	}

	// cgroup pids.max per container or service.
	type group struct {
		path  string
		v1    bool
		owner proctable.Owner
		proc  *proctable.Proc
	}
	groups := map[string]*group{}
	for _, p := range env.Procs.Procs {
		if p.PidsCgroup == "" || p.PidsCgroup == "/" || !(p.Owner.IsContainer() || p.Owner.Kind == "service") {
			continue
		}
		if g := groups[p.PidsCgroup]; g == nil || p.Threads > g.proc.Threads {
			groups[p.PidsCgroup] = &group{path: p.PidsCgroup, v1: p.PidsV1, owner: p.Owner, proc: p}
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := groups[k]
		dir := "/sys/fs/cgroup" + g.path
		if g.v1 {
			dir = "/sys/fs/cgroup/pids" + g.path
		}
		cur, err1 := readInt(env.Src, path.Join(dir, "pids.current"))
		lim, err2 := readInt(env.Src, path.Join(dir, "pids.max"))
		if err1 != nil || err2 != nil || lim <= 0 {
			continue
		}
		sev := finding.ForRatio(float64(cur), float64(lim))
		if sev == 0 {
			continue
		}
		fig := finding.Figure{Name: "cgroup tasks", Value: float64(cur), Limit: float64(lim), Source: path.Join(dir, "pids.max")}
		figs := []finding.Figure{fig}
		// pids.events counts the forks the limit refused: proof that the
		// limit has bitten, not only that it is close.
		if refused, ok := pidsRefused(env, path.Join(dir, "pids.events")); ok {
			figs = append(figs, finding.Figure{Name: "forks refused at the limit", Value: float64(refused), Source: path.Join(dir, "pids.events")})
		}
		vars := map[string]string{"resource": "cgroup-pids", "used": itoa(cur), "limit": itoa(lim), "cgroup": dir}
		varsOfProcess(vars, g.proc)
		if g.owner.Kind == "service" {
			vars["unit"] = g.owner.ID
		}
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-B4", Severity: sev, Subject: "pids " + g.owner.Label(),
			Summary: fmt.Sprintf("%s runs %d tasks of its cgroup limit pids.max %d; at the limit it cannot start processes or threads.",
				g.owner.Label(), cur, lim),
			Evidence: finding.Evidence{Figures: figs, Vars: vars,
				// The kernel says it once per cgroup, naming the cgroup path.
				Lines: env.Kernel.Matching("fork rejected by pids controller in " + g.path)},
		})
	}
	return res, nil
}

// pidsRefused reads the "max" count of a cgroup's pids.events.
func pidsRefused(env *Env, file string) (int64, bool) {
	b, err := env.Src.ReadFile(file)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == "max" {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// limitFinding is a system-wide "x of its sysctl" finding with the top
// thread holders as consumers.
func limitFinding(env *Env, sev finding.Severity, resource string, fig finding.Figure, sysctl string, limit int64, used int, effect string) finding.Finding {
	t := newTally()
	for _, p := range env.Procs.Procs {
		t.add(p, float64(p.Threads), "")
	}
	vars := map[string]string{
		"resource": resource, "used": itoa(used), "limit": itoa(limit),
		"sysctl": sysctl, "sysctl_new": itoa(suggest(int64(used), limit, 4194304)),
	}
	top := t.top(5)
	if len(top) > 0 {
		varsOfProcess(vars, env.Procs.ByPID(top[0].PID))
	}
	return finding.Finding{
		Mode: "FM-B4", Severity: sev, Subject: resource,
		Summary:  fmt.Sprintf("%s: %d of %s %d (%.0f%%) are in use; at the limit %s.", fig.Name, used, sysctl, limit, fig.Percent(), effect),
		Evidence: finding.Evidence{Figures: []finding.Figure{fig}, Consumers: top, Vars: vars},
	}
}
