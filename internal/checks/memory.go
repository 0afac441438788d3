package checks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/proctable"
)

// checkMemory is the OOM part of FM-B4 (and the since-boot view of FM-E4):
// OOM kills counted by the kernel since boot, with the victims the kernel
// log still names.
func checkMemory(ctx context.Context, env *Env) (Result, error) {
	var res Result
	b, err := env.Src.ReadFile("/proc/vmstat")
	if err != nil {
		return res, err
	}
	vm := ParseVmstat(b)
	kills, ok := vm["oom_kill"]
	if !ok {
		return res, ErrNotApplicable // kernels before 4.13
	}
	res.Headroom = append(res.Headroom, finding.Figure{Name: "OOM kills since boot", Value: float64(kills), Source: "/proc/vmstat"})
	if kills == 0 {
		return res, nil
	}
	lines := env.Kernel.Matching("Killed process", "Out of memory", "oom-kill:")
	vars := map[string]string{"resource": "oom", "used": itoa(kills)}
	// The "oom-kill:" line before each kill names the victim's cgroup,
	// which names its container.
	memcgOf := map[string]string{}
	for _, l := range env.Kernel.Matching("oom-kill:") {
		if pid, cg := parseOOMKill(l.Text); pid != "" && cg != "" {
			memcgOf[pid] = cg
		}
	}
	owners := &ownerNamer{ctx: ctx, env: env, asked: map[string]proctable.Owner{}}
	var victims, ctrs []finding.Consumer
	last := ""
	for _, l := range lines {
		m := reKilled.FindStringSubmatch(l.Text)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		v := finding.Consumer{Kind: "process", Name: m[2], PID: pid, Value: 1}
		vars["pid"], vars["comm"] = m[1], m[2]
		delete(vars, "container")
		last = fmt.Sprintf("%s (pid %d)", m[2], pid)
		if o, ok := owners.of(memcgOf[m[1]]); ok {
			v.Owner = o.Label()
			vars["container"] = containerRef(o)
			last += " in " + ownerWords(o)
			ctrs = addKill(ctrs, o)
		}
		victims = append(victims, v)
	}
	victims = append(victims, ctrs...)
	sev := finding.Low
	since := (*finding.Line)(nil)
	if len(lines) > 0 {
		since = &lines[0]
		last := lines[len(lines)-1]
		if last.Time != nil && env.Now.Sub(*last.Time) < oomRecent {
			sev = finding.Medium
		}
	}
	f := finding.Finding{
		Mode: "FM-B4", Severity: sev, Subject: "oom",
		Summary: fmt.Sprintf("The kernel has killed %d process(es) for lack of memory since boot (%s)%s.", kills, env.Procs.Boot.Format("2006-01-02 15:04 MST"), lastWords(last)),
		Evidence: finding.Evidence{
			Figures:   []finding.Figure{{Name: "OOM kills since boot", Value: float64(kills), Source: "/proc/vmstat oom_kill"}},
			Consumers: victims, Lines: lines, Vars: vars,
		},
	}
	if since != nil {
		f.Since = since.Time
	}
	if len(lines) == 0 {
		f.Evidence.Notes = append(f.Evidence.Notes, "The kernel log no longer holds the kill messages (or could not be read): see journalctl -k | grep -i 'killed process'.")
	}
	res.Findings = append(res.Findings, f)
	return res, nil
}

// oomRecent is how recent a kill must be to count as ongoing trouble.
const oomRecent = time.Hour

// The comm may itself hold parentheses ("((resolved))"): match up to the
// ")" that the kernel follows with the memory figures.
var reKilled = regexp.MustCompile(`Killed process (\d+)(?:, UID \d+,)? \((.+?)\)(?:\s+total-vm|,\s|\s*$)`)

// ParseVmstat reads /proc/vmstat's "name value" lines.
func ParseVmstat(b []byte) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// lastWords is the summary's tail naming the latest victim, if known.
func lastWords(last string) string {
	if last == "" {
		return ""
	}
	return "; the last was " + last
}

// ownerWords names an owner in a sentence ("container web", "service
// cron.service", "LXC 105 (db)").
func ownerWords(o proctable.Owner) string {
	switch {
	case o.Kind == "service" || o.Kind == "session" || o.Kind == "lxc" || o.Kind == "vm":
		return o.Label()
	case o.Name != "":
		return "container " + o.Name
	}
	return o.Label()
}

// addKill counts one kill against its container or service.
func addKill(cs []finding.Consumer, o proctable.Owner) []finding.Consumer {
	for i := range cs {
		if cs[i].ID == o.ID {
			cs[i].Value++
			return cs
		}
	}
	kind := "container"
	switch o.Kind {
	case "service":
		kind = "service"
	case "lxc", "vm":
		kind = "guest"
	}
	return append(cs, finding.Consumer{Kind: kind, Name: o.Label(), ID: o.ID, Value: 1})
}

// parseOOMKill reads the victim's pid and memory cgroup from the kernel's
// summary line of a kill (4.19 and later):
//
//	oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=…,mems_allowed=0,oom_memcg=/docker/ID,task_memcg=/docker/ID,task=java,pid=4242,uid=0
//
// The cpuset may itself hold commas, so the fields are found by name.
func parseOOMKill(text string) (pid, memcg string) {
	_, rest, ok := strings.Cut(text, "oom-kill:")
	if !ok {
		return "", ""
	}
	if m := reTaskMemcg.FindStringSubmatch(rest); m != nil {
		memcg = m[1]
	}
	if m := reOOMPid.FindStringSubmatch(rest); m != nil {
		pid = m[1]
	}
	return pid, memcg
}

var (
	reTaskMemcg = regexp.MustCompile(`(?:^|,)task_memcg=([^,]*)`)
	reOOMPid    = regexp.MustCompile(`,pid=(\d+)(?:,|$)`)
)

// ownerNamer turns a victim's memory cgroup into its owner, with the
// owner's name. The victim is gone and its container may have exited with
// it, so the name comes from a process still in that container or else
// from the container engine (which keeps exited containers): the list the
// process table was named from, else (a pod's container, when no process
// of the table needed crictl) the same resolver asked for it alone.
type ownerNamer struct {
	ctx   context.Context
	env   *Env
	asked map[string]proctable.Owner // by container ID
}

func (n *ownerNamer) of(memcg string) (proctable.Owner, bool) {
	if memcg == "" {
		return proctable.Owner{}, false
	}
	o := proctable.OwnerOfPath(memcg)
	if !o.IsContainer() && o.Kind != "service" {
		return o, false
	}
	for _, p := range n.env.Procs.Procs {
		if p.Owner.Kind == o.Kind && p.Owner.ID == o.ID && p.Owner.Name != "" {
			return p.Owner, true
		}
	}
	if !o.IsContainer() {
		return o, true
	}
	// The engines' list, asked once for the process table, names exited
	// containers too.
	if name, ok := n.env.Procs.Names[o.ID]; ok {
		o.Name = name
		return o, true
	}
	if o.Kind == "docker" || o.Kind == "podman" {
		// Not in the engines' list of every container, exited ones too:
		// removed since (or the engine did not answer); asking again
		// would cost a round trip per container after the pass.
		return o, true
	}
	if named, ok := n.asked[o.ID]; ok {
		return named, true
	}
	t := &proctable.Table{Procs: []*proctable.Proc{{Owner: o}}}
	proctable.ResolveNames(n.ctx, n.env.Src, t)
	n.asked[o.ID] = t.Procs[0].Owner
	return t.Procs[0].Owner, true
}
