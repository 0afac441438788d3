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

	res.Findings = append(res.Findings, cgroupPidsFindings(env)...)
	return res, nil
}

// pidsGroup is one pids cgroup that holds processes, directly or below it.
type pidsGroup struct {
	path string
	v1   bool
	// top is the process with the most threads in the cgroup or below it.
	top *proctable.Proc
	// procs are every process in the cgroup or below it.
	procs []*proctable.Proc
}

// cgroupPidsFindings checks pids.max of every cgroup that holds processes
// and of each of its ancestors: the limit may sit on the container's own
// cgroup (docker run --pids-limit), on a parent (a Kubernetes pod, a
// systemd slice's TasksMax) or on a cgroup made by hand, and pids.current
// counts the whole subtree.
func cgroupPidsFindings(env *Env) []finding.Finding {
	groups := map[string]*pidsGroup{}
	for _, p := range env.Procs.Procs {
		if p.PidsCgroup == "" || p.PidsCgroup == "/" {
			continue
		}
		for cg := p.PidsCgroup; cg != "/" && cg != "." && cg != ""; cg = path.Dir(cg) {
			g := groups[cg]
			if g == nil {
				g = &pidsGroup{path: cg, v1: p.PidsV1}
				groups[cg] = g
			}
			g.procs = append(g.procs, p)
			if g.top == nil || p.Threads > g.top.Threads {
				g.top = p
			}
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []finding.Finding
	for _, k := range keys {
		g := groups[k]
		dir := "/sys/fs/cgroup" + g.path
		if g.v1 {
			dir = "/sys/fs/cgroup/pids" + g.path
		}
		lim, err := readInt(env.Src, path.Join(dir, "pids.max"))
		if err != nil || lim <= 0 {
			continue // no limit here ("max"), or no pids controller
		}
		cur, err := readInt(env.Src, path.Join(dir, "pids.current"))
		if err != nil {
			continue
		}
		sev := finding.ForRatio(float64(cur), float64(lim))
		if sev == 0 {
			continue
		}
		out = append(out, pidsFinding(env, g, dir, sev, cur, lim))
	}
	return out
}

func pidsFinding(env *Env, g *pidsGroup, dir string, sev finding.Severity, cur, lim int64) finding.Finding {
	fig := finding.Figure{Name: "cgroup tasks", Value: float64(cur), Limit: float64(lim), Source: path.Join(dir, "pids.max")}
	figs := []finding.Figure{fig}
	// pids.events counts the forks the limit refused: proof that the
	// limit has bitten, not only that it is close.
	if refused, ok := pidsRefused(env, path.Join(dir, "pids.events")); ok {
		figs = append(figs, finding.Figure{Name: "forks refused at the limit", Value: float64(refused), Source: path.Join(dir, "pids.events")})
	}
	vars := map[string]string{"resource": "cgroup-pids", "used": itoa(cur), "limit": itoa(lim),
		"cgroup": strings.TrimPrefix(g.path, "/"), "cgroup_dir": dir}
	varsOfProcess(vars, g.top)
	t := newTally()
	for _, p := range g.procs {
		t.add(p, float64(p.Threads), "")
	}
	ev := finding.Evidence{Figures: figs, Vars: vars, Consumers: t.top(5), Lines: forkRejected(env, g.path)}

	// A container's or service's own cgroup is named after it; any other
	// cgroup (a parent slice, a pod, one made by hand) by its path.
	owner := proctable.OwnerOfPath(g.path)
	own := owner.IsContainer() || owner.Kind == "service"
	if own && proctable.OwnerOfPath(path.Dir(g.path)) == owner {
		own = false // a sub-cgroup of the owner's
	}
	if own {
		if g.top.Owner.Kind == owner.Kind && g.top.Owner.ID == owner.ID {
			owner = g.top.Owner // with its resolved name
		}
		if owner.Kind == "service" {
			vars["unit"] = owner.ID
		}
		return finding.Finding{
			Mode: "FM-B4", Severity: sev, Subject: "pids " + owner.Label(),
			Summary: fmt.Sprintf("%s runs %d tasks of its cgroup limit pids.max %d; at the limit it cannot start processes or threads.",
				owner.Label(), cur, lim),
			Evidence: ev,
		}
	}
	return finding.Finding{
		Mode: "FM-B4", Severity: sev, Subject: "pids cgroup " + g.path,
		Summary: fmt.Sprintf("cgroup %s holds %d tasks of its limit pids.max %d; at the limit nothing in it can start processes or threads. The biggest is %s (pid %d, %s) with %d threads.",
			g.path, cur, lim, g.top.Comm, g.top.PID, g.top.Owner.Label(), g.top.Threads),
		Evidence: ev,
	}
}

// forkRejected is the kernel's line for a cgroup, which it writes once,
// naming the cgroup whose limit refused the fork.
func forkRejected(env *Env, cgPath string) []finding.Line {
	var out []finding.Line
	for _, l := range env.Kernel.Matching("fork rejected by pids controller in " + cgPath) {
		if strings.HasSuffix(strings.TrimSpace(l.Text), " in "+cgPath) {
			out = append(out, l)
		}
	}
	return out
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
