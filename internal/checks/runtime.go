package checks

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/proctable"
)

// runcStuckAfter is how long a runc process may live before it counts as
// stuck: runc starts or stops a container in milliseconds and exits.
const runcStuckAfter = time.Minute

// runtimes are the container engines whose presence inside an LXC guest
// puts the Proxmox host's kernel at risk: a hung runc there can panic it.
var runtimes = map[string]bool{"dockerd": true, "containerd": true, "podman": true, "crio": true, "k3s-server": true, "k3s-agent": true}

// checkRuntime is FM-C1: the build-up (processes in uninterruptible sleep,
// runc processes that do not exit) and the risk (a container runtime inside
// an LXC guest, which shares and can crash the Proxmox host's kernel).
func checkRuntime(_ context.Context, env *Env) (Result, error) {
	var res Result
	var dstate, waiting, runc, stuckRunc []*proctable.Proc
	shims := 0
	found := map[string]bool{}
	for _, p := range env.Procs.Procs {
		switch {
		case p.InD():
			dstate = append(dstate, p)
		case waitsOnStorage(p):
			waiting = append(waiting, p)
		}
		switch {
		case p.Comm == "runc" || p.Comm == "crun":
			runc = append(runc, p)
			if !p.Started.IsZero() && env.Now.Sub(p.Started) > runcStuckAfter {
				stuckRunc = append(stuckRunc, p)
			}
		case strings.HasPrefix(p.Comm, "containerd-shim"):
			shims++
		}
		if runtimes[p.Comm] && !p.Owner.IsContainer() {
			found[p.Comm] = true
		}
	}
	res.Headroom = append(res.Headroom,
		finding.Figure{Name: "processes in uninterruptible sleep (D)", Value: float64(len(dstate)), Source: "/proc/*/stat"},
	)
	figs := []finding.Figure{
		{Name: "D-state processes", Value: float64(len(dstate))},
		{Name: "processes waiting on a FUSE or NFS server", Value: float64(len(waiting))},
		{Name: "runc processes", Value: float64(len(runc))},
		{Name: "runc processes older than " + runcStuckAfter.String(), Value: float64(len(stuckRunc))},
		{Name: "containerd-shim processes", Value: float64(shims)},
	}
	vars := map[string]string{"runc_count": itoa(len(runc)), "dstate_count": itoa(len(dstate))}
	// The engine a user restarts: dockerd over the containerd under it,
	// the same one every run.
	for _, r := range []string{"dockerd", "podman", "crio", "k3s-server", "k3s-agent", "containerd"} {
		if found[r] {
			vars["runtime"] = r
			break
		}
	}

	// Build-up.
	sev := finding.Severity(0)
	switch {
	case len(stuckRunc) >= 5 || len(dstate)+len(waiting) >= 20:
		sev = finding.High
	case len(stuckRunc) > 0 || len(dstate)+len(waiting) >= 5:
		sev = finding.Medium
	}
	if sev > 0 {
		pile := append(append(append([]*proctable.Proc(nil), stuckRunc...), dstate...), waiting...)
		sort.Slice(pile, func(i, j int) bool { return pile[i].Started.Before(pile[j].Started) })
		var cons []finding.Consumer
		seen := map[int]bool{}
		for _, p := range pile {
			if seen[p.PID] || len(cons) >= 10 {
				continue
			}
			seen[p.PID] = true
			name := p.Comm
			if w := p.Wchans(); len(w) > 0 {
				name += " (waiting in " + strings.Join(w, ", ") + ")"
			}
			cons = append(cons, finding.Consumer{Kind: "process", Name: name, PID: p.PID, Owner: p.Owner.Label(), Value: env.Now.Sub(p.Started).Seconds(), Unit: "s"})
		}
		summary := fmt.Sprintf("%d processes are stuck in uninterruptible sleep, %d wait on a FUSE or NFS server and %d runc processes have not exited after %s: a runtime or storage hang is building up, and left alone such a pile-up can end in a kernel panic.",
			len(dstate), len(waiting), len(stuckRunc), runcStuckAfter)
		f := finding.Finding{
			Mode: "FM-C1", Severity: sev, Subject: "stuck processes", Summary: summary,
			Evidence: finding.Evidence{Figures: figs, Consumers: cons, Vars: vars,
				Notes: []string{"Consumer values are seconds since each process started."}},
		}
		if len(pile) > 0 {
			f.Since = timePtr(pile[0].Started)
		}
		res.Findings = append(res.Findings, f)
	}

	// Risk: a container runtime inside an LXC guest.
	if guest, how := detectLXC(env); guest && len(found) > 0 {
		names := make([]string, 0, len(found))
		for r := range found {
			names = append(names, r)
		}
		sort.Strings(names)
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-C1", Severity: finding.High, Subject: "runtime in LXC",
			Summary: fmt.Sprintf("This is an LXC guest running %s: its containers share the Proxmox host's kernel, and a hung runc here can panic that kernel and take the whole host down.", strings.Join(names, ", ")),
			Evidence: finding.Evidence{Figures: figs, Vars: vars,
				Notes: []string{"LXC detected from " + how + ".", "Run container engines in a VM (qm) instead of an LXC guest."}},
		})
	}
	return res, nil
}

// detectLXC reports whether this host is an LXC guest, and from what.
func detectLXC(env *Env) (bool, string) {
	if b, err := env.Src.ReadFile("/run/systemd/container"); err == nil && strings.TrimSpace(string(b)) == "lxc" {
		return true, "/run/systemd/container"
	}
	ms, err := mounts(env)
	if err == nil {
		for _, m := range ms {
			if m.FSType == "fuse.lxcfs" && strings.HasPrefix(m.MountPoint, "/proc/") {
				return true, "lxcfs mounted over " + m.MountPoint
			}
		}
	}
	return false, ""
}

// waitsOnStorage reports whether any thread of the process (the main one
// or one stuck in D) waits on a network or user-space file server.
func waitsOnStorage(p *proctable.Proc) bool {
	return slices.ContainsFunc(p.Wchans(), storageWait)
}

// storageWait reports whether a kernel wait channel is a wait for a network
// or user-space file server: NFS/RPC waits (D state) and FUSE's
// request_wait_answer (S state until a signal arrives).
func storageWait(wchan string) bool {
	return wchan == "request_wait_answer" || strings.Contains(wchan, "fuse") ||
		strings.Contains(wchan, "nfs") || strings.Contains(wchan, "rpc_wait")
}
