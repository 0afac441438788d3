package checks

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/proctable"
)

// checkRuntimeInGuests is FM-C1 seen from the Proxmox host: a container
// runtime (dockerd, containerd and its shims, runc, podman, CRI-O, k3s)
// running inside an LXC guest, found in the host's process table by the
// guest's cgroup (/lxc/<id>/… on Proxmox, /lxc.payload.<id>/… with LXC 4
// and later). Such a runtime shares the host's kernel: a runc hung there
// can panic it and take every guest down, as in seed 000, where doctor on
// the host used to say "All clear". Each guest is one finding naming its
// ID, its hostname when /etc/pve says it, and the runtime's processes.
func checkRuntimeInGuests(_ context.Context, env *Env) (Result, error) {
	var res Result
	if env.Procs == nil {
		return res, ErrNotApplicable
	}
	type guest struct {
		id, name      string
		runtimes      []*proctable.Proc
		runc, stuck   int
		dstate, procs int
	}
	guests := map[string]*guest{}
	anyGuest := false
	for _, p := range env.Procs.Procs {
		id, ok := LXCGuestOfCgroup(p.Cgroup)
		if !ok {
			continue
		}
		anyGuest = true
		g := guests[id]
		if g == nil {
			g = &guest{id: id}
			guests[id] = g
		}
		if p.Owner.Kind == "lxc" && p.Owner.Name != "" {
			g.name = p.Owner.Name
		}
		g.procs++
		if p.InD() {
			g.dstate++
		}
		if !guestRuntime(p.Comm) {
			continue
		}
		g.runtimes = append(g.runtimes, p)
		if p.Comm == "runc" || p.Comm == "crun" {
			g.runc++
			if !p.Started.IsZero() && env.Now.Sub(p.Started) > runcStuckAfter {
				g.stuck++
			}
		}
	}
	if !anyGuest {
		return res, ErrNotApplicable // no LXC guest runs here
	}
	ids := make([]string, 0, len(guests))
	for id, g := range guests {
		if len(g.runtimes) > 0 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	res.Headroom = append(res.Headroom, finding.Figure{Name: "LXC guests running a container runtime", Value: float64(len(ids)), Limit: float64(len(guests)), Source: "/proc/*/cgroup"})
	for _, id := range ids {
		g := guests[id]
		sort.Slice(g.runtimes, func(i, j int) bool { return g.runtimes[i].Started.Before(g.runtimes[j].Started) })
		label := "LXC " + id
		if g.name != "" {
			label += " (" + g.name + ")"
		}
		// The engine to stop: dockerd over the containerd under it.
		engine := ""
		counts := map[string]int{}
		for _, p := range g.runtimes {
			counts[runtimeName(p.Comm)]++
		}
		for _, r := range []string{"dockerd", "podman", "crio", "k3s-server", "k3s-agent", "containerd", "containerd-shim", "conmon", "runc", "crun"} {
			if counts[r] > 0 && engine == "" {
				engine = r
			}
		}
		var parts []string
		for _, r := range []string{"dockerd", "containerd", "containerd-shim", "runc", "crun", "podman", "conmon", "crio", "k3s-server", "k3s-agent"} {
			switch n := counts[r]; {
			case n == 1:
				parts = append(parts, r)
			case n > 1:
				parts = append(parts, fmt.Sprintf("%d %s", n, r))
			}
		}
		vars := map[string]string{"runtime": engine, "runc_count": itoa(g.runc), "dstate_count": itoa(g.dstate)}
		OwnerVars(vars, proctable.Owner{Kind: "lxc", ID: id, Name: g.name})
		var cons []finding.Consumer
		for _, p := range g.runtimes[:min(10, len(g.runtimes))] {
			cons = append(cons, finding.Consumer{Kind: "process", Name: p.Comm + " (state " + p.State + ", cgroup " + p.Cgroup + ")", PID: p.PID, Owner: label, Value: env.Now.Sub(p.Started).Seconds(), Unit: "s"})
		}
		summary := fmt.Sprintf("Guest %s runs a container runtime (%s) on this Proxmox host's own kernel: a runc hung there can panic the host and take every guest down with it.",
			label, strings.Join(parts, ", "))
		sev := finding.High
		if g.stuck > 0 || g.dstate >= 5 {
			summary += fmt.Sprintf(" It is building up now: %d runc processes older than %s and %d processes in D state in that guest.", g.stuck, runcStuckAfter, g.dstate)
			sev = finding.Catastrophic
		}
		f := finding.Finding{
			Mode: "FM-C1", Severity: sev, Subject: "runtime in LXC " + id,
			Summary: summary,
			Evidence: finding.Evidence{
				Figures: []finding.Figure{
					{Name: "container runtime processes in the guest", Value: float64(len(g.runtimes)), Source: "/proc/*/cgroup"},
					{Name: "runc processes in the guest", Value: float64(g.runc)},
					{Name: "runc processes older than " + runcStuckAfter.String(), Value: float64(g.stuck)},
					{Name: "D-state processes in the guest", Value: float64(g.dstate), Limit: float64(g.procs)},
				},
				Consumers: cons,
				Vars:      vars,
				Notes: []string{
					"Found from this host's process table: the processes' cgroups lie under the guest's (/lxc/" + id + "/… or /lxc.payload." + id + "/…).",
					"Consumer values are seconds since each process started.",
					"Run container engines in a VM (qm) instead of an LXC guest.",
				},
			},
		}
		if len(g.runtimes) > 0 && !g.runtimes[0].Started.IsZero() {
			f.Since = timePtr(g.runtimes[0].Started.Truncate(time.Second))
		}
		res.Findings = append(res.Findings, f)
	}
	return res, nil
}

// guestRuntime reports whether comm is a container runtime's process.
func guestRuntime(comm string) bool {
	switch runtimeName(comm) {
	case "dockerd", "containerd", "containerd-shim", "runc", "crun", "podman", "conmon", "crio", "k3s-server", "k3s-agent":
		return true
	}
	return false
}

// runtimeName folds the shims' names (containerd-shim-runc-v2, truncated
// to 15 characters in comm) into one.
func runtimeName(comm string) string {
	if strings.HasPrefix(comm, "containerd-shim") {
		return "containerd-shim"
	}
	return comm
}

// reGuestCgroup finds an LXC guest's payload cgroup in a cgroup path:
// /lxc/<id>/… (Proxmox, LXC before 4), /lxc.payload.<id>/… (LXC 4 and
// later) or /lxc.payload/<id>/…. The monitor's cgroup (lxc.monitor.<id>)
// holds lxc-start on the host side, not the guest.
var reGuestCgroup = regexp.MustCompile(`(?:^|/)lxc(?:\.payload)?[./]([^/]+)`)

// LXCGuestOfCgroup returns the LXC guest whose cgroup holds path (a path
// from /proc/PID/cgroup, or one whole line of it), or false.
func LXCGuestOfCgroup(path string) (string, bool) {
	if i := strings.LastIndex(path, ":/"); i >= 0 && !strings.HasPrefix(path, "/") {
		path = path[i+1:] // "12:pids:/lxc/105/…"
	}
	path = strings.TrimSpace(path)
	m := reGuestCgroup.FindStringSubmatch(path)
	if m == nil || m[1] == "" || strings.HasPrefix(m[1], "monitor") || strings.HasPrefix(m[1], "pivot") || m[1] == "payload" {
		return "", false
	}
	return m[1], true
}
