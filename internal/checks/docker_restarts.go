package checks

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/hinomi/hinomi/internal/finding"
)

// loopMinRestarts is how many restarts make a running container a loop
// when it has been up less than loopUptime (see restarting).
const (
	loopMinRestarts = 3
	loopUptime      = 10 * time.Minute
)

// checkDockerRestarts is FM-C4 for plain Docker containers: a container in
// a restart loop, one whose restart policy gave up on it, and one whose
// health check fails, each with its exit code, OOM flag, the engine's
// error and the failing probe's output, in full.
func checkDockerRestarts(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := docker(ctx, env)
	if err != nil {
		return res, err
	}
	if st.Absent || st.Hung != "" {
		return res, ErrNotApplicable // no engine here, or docker-api reports the hang
	}
	if st.Error != "" {
		res.Blind = append(res.Blind, "Docker API at "+st.Endpoint+": "+st.Error)
		return res, nil
	}
	for _, u := range st.Unseen {
		res.Blind = append(res.Blind, "Docker: "+u)
	}
	looping := 0
	for i := range st.Containers {
		f, ok := liveRestartFinding(&st.Containers[i], env.Kernel, env.Now)
		if !ok {
			continue
		}
		looping++
		res.Findings = append(res.Findings, f)
	}
	res.Headroom = append(res.Headroom, finding.Figure{
		Name: "Docker containers looping, given up or unhealthy", Value: float64(looping),
		Limit: float64(len(st.Containers)), Source: "Docker API " + st.Endpoint,
	})
	return res, nil
}

// DockerInspectFindings diagnoses containers as `docker inspect` prints
// them (the API's container JSON) with the live check's rules, judged at
// now. It also returns one plain sentence per container on its state, and
// the mounts of those with a finding are added to its notes.
func DockerInspectFindings(cs []container.InspectResponse, now time.Time) ([]finding.Finding, []string) {
	var out []finding.Finding
	var states []string
	for _, ic := range cs {
		c := fromInspect(ic, ic.Image)
		states = append(states, c.stateSentence())
		f, ok := restartFinding(c, now)
		if !ok {
			continue
		}
		if m := mountsText(ic.Mounts); m != "" {
			f.Evidence.Notes = append(f.Evidence.Notes, "Its mounts: "+m+".")
		}
		out = append(out, f)
	}
	return out, states
}

// DockerListed is one container as a `docker ps -a` row shows it: less
// than inspect says (no restart count, restart policy or probe output).
type DockerListed struct {
	ID, Name, Image string
	// State is running, restarting, exited, created, paused, removing or
	// dead.
	State string
	// ExitCode is the code in "Exited (N)" or "Restarting (N)".
	ExitCode int
	// Health is healthy, unhealthy or starting, or empty without a health
	// check.
	Health string
	// Status is the STATUS column as printed: "Restarting (3) 5 seconds ago".
	Status string
}

// DockerListedFindings diagnoses `docker ps -a` rows with the live check's
// rules: a container the engine is restarting is a loop, an unhealthy one
// is unhealthy. A container that exited with an error, which the live
// check judges by its restart policy, is a low finding here: the list does
// not show the policy.
func DockerListedFindings(cs []DockerListed, now time.Time) []finding.Finding {
	var out []finding.Finding
	for _, l := range cs {
		c := &dockerContainer{
			ID: l.ID, Name: l.Name, Image: l.Image, Status: l.State,
			Running: l.State == "running", Restarting: l.State == "restarting",
			ExitCode: l.ExitCode, restartsUnknown: true,
		}
		if l.Health != "" {
			c.Health = &dockerHealth{Status: l.Health}
		}
		line := finding.Line{Source: "docker ps -a", Text: l.Status}
		if f, ok := restartFinding(c, now); ok {
			f.Evidence.Lines = append([]finding.Line{line}, f.Evidence.Lines...)
			out = append(out, f)
			continue
		}
		if l.State != "exited" || l.ExitCode == 0 {
			continue
		}
		name := c.label()
		vars := map[string]string{"image": c.Image, "state": "exited", "exit_code": itoa(l.ExitCode),
			"reason": "exit code " + itoa(l.ExitCode) + exitMeaning(l.ExitCode)}
		c.ownerVars(vars)
		out = append(out, finding.Finding{
			Mode: "FM-C4", Severity: finding.Low, Subject: "container " + name,
			Summary: fmt.Sprintf("Container %s%s exited with exit code %d%s and is stopped; the list does not show whether its restart policy should have restarted it (docker inspect %s does).",
				name, c.imageText(), l.ExitCode, exitMeaning(l.ExitCode), name),
			Evidence: finding.Evidence{
				Figures: []finding.Figure{{Name: "last exit code", Value: float64(l.ExitCode), Source: "docker ps -a"}},
				Lines:   []finding.Line{line},
				Vars:    vars,
			},
		})
	}
	return out
}

// imageText is " (image NAME)", or nothing when the image is not known.
func (c *dockerContainer) imageText() string {
	if c.Image == "" {
		return ""
	}
	return " (image " + c.Image + ")"
}

// stateSentence says in one sentence what the engine says of c.
func (c *dockerContainer) stateSentence() string {
	s := fmt.Sprintf("container %s%s: %s", c.label(), c.imageText(), c.Status)
	switch {
	case c.Status == "exited" || (!c.Running && !c.Restarting && !c.FinishedAt.IsZero()):
		s += fmt.Sprintf(", exit code %d%s at %s", c.ExitCode, exitMeaning(c.ExitCode), fmtWhen(c.FinishedAt))
	case c.Running:
		s += " since " + fmtWhen(c.StartedAt)
	}
	if c.OOMKilled {
		s += ", OOM-killed"
	}
	s += fmt.Sprintf(", %d %s", c.RestartCount, plural(c.RestartCount, "restart", "restarts"))
	if c.RestartPolicy != "" {
		s += ", restart policy " + policyText(c)
	}
	if c.Health != nil {
		s += ", health " + c.Health.Status
	}
	if c.Error != "" {
		s += ", error: " + c.Error
	}
	return s
}

// mountsText lists a container's mounts: "volume ldap_data at /data, bind
// /srv/conf at /etc/app (read-only)".
func mountsText(ms []container.MountPoint) string {
	var parts []string
	for _, m := range ms {
		src := m.Name
		if src == "" {
			src = m.Source
		}
		p := fmt.Sprintf("%s %s at %s", m.Type, src, m.Destination)
		if m.Type == "" {
			p = fmt.Sprintf("%s at %s", src, m.Destination)
		}
		if !m.RW {
			p += " (read-only)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

func restartFinding(c *dockerContainer, now time.Time) (finding.Finding, bool) {
	loop := c.restarting(now)
	policy := c.RestartPolicy != "" && c.RestartPolicy != "no"
	gaveUp := !loop && c.Status == "exited" && c.ExitCode != 0 && policy &&
		(c.RestartCount > 0 || c.Error != "" || c.OOMKilled)
	// An exited container keeps the health it last had: stale, not failing.
	unhealthy := c.Health != nil && c.Health.Status == "unhealthy" && (c.Running || c.Restarting)
	if !loop && !gaveUp && !unhealthy {
		return finding.Finding{}, false
	}
	state := "unhealthy"
	switch {
	case loop:
		state = "loop"
	case gaveUp:
		state = "gave-up"
	}

	name := c.label()
	vars := map[string]string{"image": c.Image, "restarts": itoa(c.RestartCount), "state": state}
	c.ownerVars(vars)
	// A running container's exit code is reset: its last death says more.
	// A running container's exit code is reset to 0: its last death, from
	// the events, says more, and without it the code is not known.
	code, known := c.ExitCode, true
	// One the engine waits to restart still holds its last exit code.
	if c.Running && (!c.Restarting || len(c.Exits) > 0) {
		known = len(c.Exits) > 0
		if known {
			code = c.Exits[len(c.Exits)-1].Code
		}
	}
	if known {
		vars["exit_code"] = itoa(code)
	}
	var figs []finding.Figure
	var lines []finding.Line
	var notes []string
	var since *time.Time
	var parts []string
	sev := finding.Medium

	exit := "exit code " + itoa(code) + exitMeaning(code)
	if !known {
		exit = "an exit code the engine no longer reports (it resets it on restart, and its event log no longer holds the death)"
	}
	if c.OOMKilled {
		exit += ", killed by the OOM killer (the container's memory limit or the host's memory ran out)"
		vars["oom"] = "true"
	}
	reason := c.Error
	if reason == "" {
		reason = exit
	}
	vars["reason"] = reason

	if loop || gaveUp {
		sev = finding.High
		rate := 0.0
		if !c.Created.IsZero() && now.After(c.Created) {
			rate = float64(c.RestartCount) / max(now.Sub(c.Created).Hours(), 1.0/3600)
			since = timePtr(c.Created)
		}
		vars["rate"] = strconv.FormatFloat(rate, 'f', 1, 64)
		figs = append(figs,
			finding.Figure{Name: "restarts", Value: float64(c.RestartCount), Source: "docker inspect .RestartCount"},
			finding.Figure{Name: "restarts per hour", Value: rate},
		)
		if known {
			figs = append(figs, finding.Figure{Name: "last exit code", Value: float64(code)})
		}
		count := fmt.Sprintf("%d %s since %s (%.0f per hour)", c.RestartCount, plural(c.RestartCount, "restart", "restarts"), fmtWhen(c.Created), rate)
		if c.restartsUnknown {
			// docker ps shows neither the count nor the creation time.
			delete(vars, "restarts")
			delete(vars, "rate")
			figs = figs[:0]
			if known {
				figs = append(figs, finding.Figure{Name: "last exit code", Value: float64(code)})
			}
			count = "how many times is not shown (docker inspect " + name + " shows it)"
		}
		if len(c.Exits) > 0 {
			var codes []string
			for _, e := range c.Exits[max(0, len(c.Exits)-10):] {
				codes = append(codes, itoa(e.Code))
				lines = append(lines, finding.Line{Time: timePtr(e.Time), Source: "docker events", Text: "container died with exit code " + itoa(e.Code)})
			}
			vars["exit_codes"] = strings.Join(codes, " ")
			count += "; last exit codes " + strings.Join(codes, ", ")
		}
		switch {
		case loop:
			state := "running again since " + fmtWhen(c.StartedAt)
			if c.Restarting {
				state = "waiting to be restarted"
			}
			parts = append(parts, fmt.Sprintf("Container %s%s is in a restart loop: %s; it last died with %s and is %s.", name, c.imageText(), count, exit, state))
		default:
			parts = append(parts, fmt.Sprintf("Container %s%s exited with %s at %s and its restart policy %q no longer restarts it (%s).", name, c.imageText(), exit, fmtWhen(c.FinishedAt), policyText(c), count))
		}
		if c.Error != "" {
			parts = append(parts, "The engine's error: "+c.Error)
			lines = append(lines, finding.Line{Time: timePtr(c.FinishedAt), Source: "docker inspect .State.Error", Text: c.Error})
		}
		if !c.restartsUnknown {
			notes = append(notes, "dockerd counts restarts from the container's last start by hand; the rate is over the time since the container was created.")
		}
	}

	if unhealthy {
		h := c.Health
		fails := failingProbes(h)
		last := ""
		if len(fails) > 0 {
			lp := fails[len(fails)-1]
			last = strings.TrimRight(lp.Output, "\n")
			if since == nil {
				since = timePtr(fails[0].Start)
			}
		}
		vars["health"] = h.Status
		vars["probe_output"] = last
		if c.Error == "" && !loop && !gaveUp {
			vars["reason"] = strings.TrimSuffix("health check failing: "+last, ": ")
		}
		if h.FailingStreak > 0 {
			figs = append(figs, finding.Figure{Name: "consecutive failed health checks", Value: float64(h.FailingStreak), Source: "docker inspect .State.Health.FailingStreak"})
		}
		for _, p := range fails {
			lines = append(lines, finding.Line{Time: timePtr(p.Start), Source: fmt.Sprintf("health check (exit %d)", p.ExitCode), Text: strings.TrimRight(p.Output, "\n")})
		}
		msg := fmt.Sprintf("Container %s%s is unhealthy: its health check failed %d times in a row", name, c.imageText(), h.FailingStreak)
		switch {
		case h.FailingStreak == 0 && len(h.Log) == 0:
			// docker ps says "(unhealthy)" and nothing more.
			delete(vars, "probe_output")
			msg = fmt.Sprintf("Container %s%s is unhealthy: its health check fails; the probe's output is not shown here (docker inspect %s shows it)", name, c.imageText(), name)
		case last != "":
			msg += "; the last probe said: " + last
		default:
			msg += "; the last probe printed nothing"
		}
		parts = append(parts, msg+".")
	}

	consumer := finding.Consumer{Kind: "container", Name: name, ID: c.ID, Owner: c.Image, Value: float64(c.RestartCount), Unit: "restarts"}
	if !loop && !gaveUp {
		consumer.Value, consumer.Unit = float64(c.Health.FailingStreak), "failed health checks"
	}
	var consumers []finding.Consumer
	// From docker ps neither figure is known: the subject names it alone.
	if !c.restartsUnknown || (!loop && !gaveUp && c.Health.FailingStreak > 0) {
		consumers = append(consumers, consumer)
	}
	return finding.Finding{
		Mode: "FM-C4", Severity: sev, Subject: "container " + name,
		Summary: strings.Join(parts, " "), Since: since,
		Evidence: finding.Evidence{
			Figures: figs, Lines: lines, Notes: notes, Vars: vars,
			Consumers: consumers,
		},
	}, true
}

// failingProbes are the health log's entries of the current failing
// streak (the log keeps the last five).
func failingProbes(h *dockerHealth) []dockerProbe {
	var out []dockerProbe
	for _, p := range h.Log {
		if p.ExitCode == 0 {
			out = out[:0]
			continue
		}
		out = append(out, p)
	}
	return out
}

func policyText(c *dockerContainer) string {
	if c.RestartPolicy == "on-failure" && c.MaxRetries > 0 {
		return fmt.Sprintf("on-failure:%d", c.MaxRetries)
	}
	return c.RestartPolicy
}

// exitMeaning says what a shell-style exit status above 128 means.
func exitMeaning(code int) string {
	switch code {
	case 137:
		return " (SIGKILL)"
	case 143:
		return " (SIGTERM)"
	case 139:
		return " (SIGSEGV)"
	case 134:
		return " (SIGABRT)"
	}
	return ""
}

func fmtWhen(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// liveRestartFinding is restartFinding on a live host, whose kernel log
// can say that a death the engine did not flag was an OOM kill.
func liveRestartFinding(c *dockerContainer, kl *KernelLog, now time.Time) (finding.Finding, bool) {
	oom := kernelOOM(kl, c)
	if oom != nil {
		// The engine's state is shared with the other checks: the
		// finding is made from a copy that says what the kernel saw.
		cc := *c
		cc.OOMKilled = true
		c = &cc
	}
	f, ok := restartFinding(c, now)
	if ok && oom != nil {
		f.Evidence.Lines = append(f.Evidence.Lines, oom...)
		f.Evidence.Notes = append(f.Evidence.Notes, "The engine did not mark the container as OOM-killed (its flag comes from an event that can arrive after the exit is recorded); the kernel's log names the container's memory cgroup in the kill shown.")
	}
	return f, ok
}

// oomWindow is how long before a container's recorded death the kernel's
// kill of its process may be dated: the log's times come from the boot
// time in whole seconds and the kernel's own clock, which drift from the
// wall clock by seconds on a long-running host.
const oomWindow = 30 * time.Second

// kernelOOM returns the kernel log's lines of the OOM kill behind c's last
// death when it died with exit code 137 (SIGKILL) and the engine did not
// mark it as OOM-killed: Docker sets that mark from the runtime's OOM
// event, which can come after the exit is recorded, and then never sets
// it. The kill is the latest "oom-kill:" line whose memory cgroup is the
// container's (its full ID in the path: /docker/ID, docker-ID.scope)
// dated from oomWindow before the death to 10 s after it, with the
// "Killed process" line that follows it. nil when there is none.
func kernelOOM(kl *KernelLog, c *dockerContainer) []finding.Line {
	if kl == nil || c.OOMKilled || len(c.ID) < 64 {
		return nil
	}
	died, code := c.FinishedAt, c.ExitCode
	if len(c.Exits) > 0 && (c.Running || c.Restarting) {
		e := c.Exits[len(c.Exits)-1]
		died, code = e.Time, e.Code
	}
	if code != 137 || died.IsZero() {
		return nil
	}
	for i := len(kl.Lines) - 1; i >= 0; i-- {
		l := kl.Lines[i]
		if l.Time == nil || !strings.Contains(l.Text, "oom-kill:") {
			continue
		}
		if l.Time.Before(died.Add(-oomWindow)) || l.Time.After(died.Add(10*time.Second)) {
			continue
		}
		if _, memcg := parseOOMKill(l.Text); !strings.Contains(memcg, c.ID) {
			continue
		}
		out := []finding.Line{l}
		for _, k := range kl.Lines[i+1 : min(i+4, len(kl.Lines))] {
			if strings.Contains(k.Text, "Killed process") {
				out = append(out, k)
				break
			}
		}
		return out
	}
	return nil
}
