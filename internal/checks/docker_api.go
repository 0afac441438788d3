package checks

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/proctable"
)

// checkDockerAPI is FM-E7: the Docker API does not answer within its
// deadline. It names the daemon that still runs behind it and the runc
// and shim processes stuck for minutes, and doctor moves on: every call
// is bounded (see docker.go).
func checkDockerAPI(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := docker(ctx, env)
	if err != nil {
		return res, err
	}
	daemon := findDaemon(env.Procs)
	switch {
	case st.Absent && daemon != nil:
		res.Blind = append(res.Blind, fmt.Sprintf("Docker API at %s: dockerd (pid %d) runs but nothing answers there: %s", st.Endpoint, daemon.PID, st.Error))
		return res, nil
	case st.Absent:
		return res, ErrNotApplicable
	case st.Hung == "":
		return res, nil
	}

	vars := map[string]string{"runtime": "dockerd", "endpoint": st.Endpoint, "call": st.Hung}
	var cons []finding.Consumer
	var figs []finding.Figure
	who := "and no dockerd process runs: something else holds the socket and does not answer"
	if daemon != nil {
		who = fmt.Sprintf("while dockerd (pid %d) runs", daemon.PID)
		if !daemon.Started.IsZero() {
			who = fmt.Sprintf("while dockerd (pid %d, up %s) runs", daemon.PID, finding.HumanDuration(env.Now.Sub(daemon.Started)))
		}
		vars["pid"], vars["comm"] = itoa(daemon.PID), daemon.Comm
		cons = append(cons, finding.Consumer{Kind: "process", Name: daemon.Comm + " (state " + daemon.State + ")", PID: daemon.PID, Value: env.Now.Sub(daemon.Started).Seconds(), Unit: "s"})
	}
	stuck := stuckRuntimeProcs(env)
	var oldest time.Duration
	for _, p := range stuck {
		age := env.Now.Sub(p.Started)
		oldest = max(oldest, age)
		name := p.Comm + " (state " + p.State
		if p.Wchan != "" {
			name += ", waiting in " + p.Wchan
		}
		cons = append(cons, finding.Consumer{Kind: "process", Name: name + ")", PID: p.PID, Owner: p.Owner.Label(), Value: age.Seconds(), Unit: "s"})
	}
	figs = append(figs,
		finding.Figure{Name: "Docker API deadline", Value: st.Timeout, Unit: "s", Source: st.Endpoint},
		finding.Figure{Name: "runc or shim processes stuck for minutes", Value: float64(len(stuck))},
	)
	summary := fmt.Sprintf("The Docker API at %s did not answer %s within %s %s: docker ps, and every container start, stop, inspect and health check, hang.",
		st.Endpoint, apiCall(st.Hung), finding.HumanDuration(time.Duration(st.Timeout*float64(time.Second))), who)
	if len(stuck) > 0 {
		first := stuck[0]
		vars["pid"], vars["comm"] = itoa(first.PID), first.Comm
		vars["stuck_for"] = finding.HumanDuration(oldest)
		var names []string
		for _, p := range stuck[:min(5, len(stuck))] {
			names = append(names, fmt.Sprintf("%s (pid %d, %s, state %s)", p.Comm, p.PID, finding.HumanDuration(env.Now.Sub(p.Started)), p.State))
		}
		summary += fmt.Sprintf(" %d runtime processes are stuck: %s.", len(stuck), strings.Join(names, ", "))
	}
	res.Findings = append(res.Findings, finding.Finding{
		Mode: "FM-E7", Severity: finding.High, Subject: "docker API",
		Summary: summary,
		Evidence: finding.Evidence{Figures: figs, Consumers: cons, Vars: vars,
			Lines: []finding.Line{{Source: "Docker API", Text: st.Error}},
			Notes: []string{"Consumer values are seconds since each process started."}},
	})
	return res, nil
}

func apiCall(call string) string {
	switch call {
	case "ping":
		return "a ping (GET /_ping)"
	case "list":
		return "the container list (docker ps -a)"
	case "inspect":
		return "any container inspect"
	}
	return call
}

// findDaemon returns the host's dockerd, or nil.
func findDaemon(t *proctable.Table) *proctable.Proc {
	if t == nil {
		return nil
	}
	for _, p := range t.Procs {
		if p.Comm == "dockerd" && !p.Owner.IsContainer() {
			return p
		}
	}
	return nil
}

// stuckRuntimeProcs are runc processes older than runcStuckAfter (runc
// exits within milliseconds) and shims in uninterruptible sleep, oldest
// first.
func stuckRuntimeProcs(env *Env) []*proctable.Proc {
	if env.Procs == nil {
		return nil
	}
	var out []*proctable.Proc
	for _, p := range env.Procs.Procs {
		old := !p.Started.IsZero() && env.Now.Sub(p.Started) > runcStuckAfter
		switch {
		case (p.Comm == "runc" || p.Comm == "crun") && old:
			out = append(out, p)
		case strings.HasPrefix(p.Comm, "containerd-shim") && p.State == "D":
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}
