package swarm

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// Report is what Diagnose found.
type Report struct {
	Findings []finding.Finding
	// Headroom are the healthy figures (managers reachable, nodes ready,
	// services at their replica count).
	Headroom []finding.Figure
	// Blind lists what the reading could not see, in plain words.
	Blind []string
}

// loopWindow is how far back failed tasks count towards a loop.
const loopWindow = time.Hour

// waitGrace is how long a service may be short of replicas with no failed
// task and no error before that is a finding: a task pulling its image.
const waitGrace = 5 * time.Minute

// Diagnose judges a swarm reading at now. It reads only what st holds: a
// node list alone gives node findings, tasks alone give service findings.
func Diagnose(st *State, now time.Time) Report {
	var r Report
	if st.Error != "" {
		r.Blind = append(r.Blind, "Swarm on this node reports an error: "+st.Error)
	}
	if st.LocalState == "locked" {
		r.Findings = append(r.Findings, lockedFinding(st))
	}
	for _, u := range st.Unread {
		r.Blind = append(r.Blind, "Swarm: "+u)
	}
	if st.LocalState == "active" && !st.Manager {
		where := "a manager"
		if len(st.RemoteManagers) > 0 {
			where = "a manager (" + strings.Join(st.RemoteManagers, ", ") + ")"
		}
		r.Blind = append(r.Blind, "This node is a Swarm worker: only managers can list the swarm's nodes, services and tasks, so down nodes, lost quorum and failing services are not visible here; run hinomi doctor on "+where+".")
	}
	r.nodes(st, now)
	r.services(st, now)
	return r
}

func lockedFinding(st *State) finding.Finding {
	return finding.Finding{
		Mode: "FM-D10", Severity: finding.High, Subject: "swarm node " + orUnknown(st.NodeID),
		Summary: "This Swarm manager is locked (autolock is on and dockerd restarted): until someone runs `docker swarm unlock` with the unlock key, it takes no part in the cluster and runs no tasks.",
		Evidence: finding.Evidence{
			Vars:  map[string]string{"platform": "swarm", "node_id": st.NodeID, "status": "locked"},
			Notes: []string{"The unlock key is printed by `docker swarm unlock-key` on another, unlocked manager."},
		},
	}
}

// nodes reports nodes Down, Unreachable or Disconnected, and a Raft
// majority lost or one failure away.
func (r *Report) nodes(st *State, now time.Time) {
	managers, reachable := 0, 0
	var bad []Node
	for _, n := range st.Nodes {
		down := n.State == "down" || n.State == "unknown" || n.State == "disconnected"
		unreach := n.Role == "manager" && n.Reachability == "unreachable"
		if n.Role == "manager" {
			managers++
			if n.Leader || n.Reachability == "reachable" || (n.Reachability == "" && n.State == "ready") {
				reachable++
			}
		}
		if down || unreach {
			bad = append(bad, n)
		}
	}
	if managers == 0 && st.Managers > 0 && st.NoLeader != "" {
		managers = st.Managers
	}
	quorum := managers/2 + 1
	lost := managers > 0 && reachable < quorum
	if lost || st.NoLeader != "" {
		r.Findings = append(r.Findings, quorumFinding(st, managers, reachable, quorum, lost))
	}
	if managers > 0 && !lost {
		r.Headroom = append(r.Headroom, finding.Figure{Name: "Swarm managers reachable", Value: float64(reachable), Limit: float64(managers), Source: st.Source})
	}
	if len(st.Nodes) > 0 {
		r.Headroom = append(r.Headroom, finding.Figure{Name: "Swarm nodes down or unreachable", Value: float64(len(bad)), Limit: float64(len(st.Nodes)), Source: st.Source})
	}
	for _, n := range bad {
		r.Findings = append(r.Findings, nodeFinding(st, n, managers, reachable, quorum, lost, now))
	}
}

func quorumFinding(st *State, managers, reachable, quorum int, counted bool) finding.Finding {
	var sum string
	if counted {
		sum = fmt.Sprintf("The swarm has lost its Raft majority: %d of %d managers are reachable and %d are needed.", reachable, managers, quorum)
	} else {
		sum = "The swarm's managers answered that they have no leader: the Raft majority is lost"
		switch {
		case len(st.Nodes) > 0:
			sum += fmt.Sprintf(" (the node list read with it shows %d of %d managers reachable; %d are needed)", reachable, managers, quorum)
		case st.Managers > 0:
			sum += fmt.Sprintf(" (%d managers, %d needed)", st.Managers, st.Managers/2+1)
		}
		sum += "."
	}
	sum += " Running tasks keep running, but no service can be created, updated, scaled or rescheduled, and a failed task is not replaced. Bring the lost managers back; if they are gone for good, re-create the cluster from one surviving manager with `docker swarm init --force-new-cluster`."
	vars := map[string]string{"platform": "swarm", "status": "quorum lost", "managers": itoa(managers), "reachable": itoa(reachable), "quorum": itoa(quorum)}
	ev := finding.Evidence{
		Figures: []finding.Figure{{Name: "Swarm managers reachable", Value: float64(reachable), Limit: float64(managers), Source: st.Source},
			{Name: "managers needed for a majority", Value: float64(quorum)}},
		Vars:  vars,
		Notes: []string{"quorum = floor(managers/2)+1: 3 managers survive the loss of 1, 5 of 2; an even count adds no tolerance."},
	}
	if st.NoLeader != "" {
		ev.Lines = append(ev.Lines, finding.Line{Source: st.Source, Text: st.NoLeader})
	}
	return finding.Finding{Mode: "FM-D10", Severity: finding.Catastrophic, Subject: "swarm managers", Summary: sum, Evidence: ev}
}

func nodeFinding(st *State, n Node, managers, reachable, quorum int, lost bool, now time.Time) finding.Finding {
	status := titleCase(n.State)
	if n.Role == "manager" && n.Reachability == "unreachable" {
		if n.State == "ready" {
			status = "Unreachable"
		} else {
			status += "/Unreachable"
		}
	}
	role := n.Role
	if role == "" {
		role = "node"
	}
	name := n.Hostname
	if name == "" {
		name = n.ID
	}
	sum := fmt.Sprintf("Swarm node %s (%s, ID %s) is %s", name, role, n.ID, status)
	if n.Message != "" {
		sum += " (" + n.Message + ")"
	}
	var since *time.Time
	if !n.Updated.IsZero() && n.Updated.Before(now) {
		since = &n.Updated
		sum += " since " + n.Updated.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + finding.HumanDuration(now.Sub(n.Updated)) + ")"
	}
	sum += ": its tasks are moved to other nodes only if they can run them."
	if n.Role == "manager" {
		switch {
		case lost && reachable < quorum:
			sum += fmt.Sprintf(" With it the swarm lost its Raft majority (%d of %d managers reachable, %d needed).", reachable, managers, quorum)
		case reachable == quorum:
			sum += fmt.Sprintf(" %d of %d managers remain reachable, exactly the %d a majority needs: losing one more stops the cluster.", reachable, managers, quorum)
		default:
			sum += fmt.Sprintf(" %d of %d managers remain reachable (%d needed).", reachable, managers, quorum)
		}
		sum += " If the node is gone for good, demote and remove it, then rebuild and join a new one."
	} else {
		sum += " If the node is gone for good, remove it (`docker node rm`) and join a new one."
	}
	vars := map[string]string{"platform": "swarm", "node": name, "node_id": n.ID, "status": status, "role": role}
	if since != nil {
		vars["since"] = since.UTC().Format(time.RFC3339)
	}
	ev := finding.Evidence{Vars: vars,
		Figures: []finding.Figure{{Name: "Swarm managers reachable", Value: float64(reachable), Limit: float64(managers), Source: st.Source}}}
	if n.Message != "" {
		ev.Lines = append(ev.Lines, finding.Line{Time: since, Source: "node " + name, Text: n.Message})
	}
	if since != nil {
		ev.Notes = append(ev.Notes, "Since is the node's last status change as the managers recorded it.")
	}
	return finding.Finding{Mode: "FM-D10", Severity: finding.High, Subject: "swarm node " + name, Summary: sum, Since: since, Evidence: ev}
}

// services reports services whose tasks are rejected or fail, and those
// short of replicas.
func (r *Report) services(st *State, now time.Time) {
	byName := map[string][]*Task{}
	for i := range st.Tasks {
		t := &st.Tasks[i]
		byName[t.Service] = append(byName[t.Service], t)
	}
	svcs := append([]Service(nil), st.Services...)
	known := map[string]bool{}
	for _, s := range svcs {
		known[s.Name] = true
	}
	// Tasks of services not listed (a pasted docker service ps): the
	// newest task of each replica says what runs.
	var extra []string
	for name := range byName {
		if !known[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		svcs = append(svcs, serviceFromTasks(name, byName[name]))
	}
	ok := 0
	for _, s := range svcs {
		f, bad := serviceFinding(st, s, byName[s.Name], now)
		if !bad {
			ok++
			continue
		}
		r.Findings = append(r.Findings, f)
	}
	if len(svcs) > 0 {
		r.Headroom = append(r.Headroom, finding.Figure{Name: "Swarm services at their replica count", Value: float64(ok), Limit: float64(len(svcs)), Source: st.Source})
	}
}

// serviceFromTasks infers a service from its tasks: each replica's newest
// task is running, or not.
func serviceFromTasks(name string, ts []*Task) Service {
	s := Service{Name: name, Desired: 0}
	for _, t := range ts {
		if !t.Current || t.DesiredState == "shutdown" || t.DesiredState == "remove" {
			continue
		}
		s.Desired++
		if t.State == "running" {
			s.Running++
		}
		if s.Image == "" {
			s.Image = t.Image
		}
	}
	return s
}

func serviceFinding(st *State, s Service, ts []*Task, now time.Time) (finding.Finding, bool) {
	var fails, waiting []*Task
	for _, t := range ts {
		switch {
		case t.failed() && (t.Time.IsZero() || now.Sub(t.Time) <= loopWindow):
			fails = append(fails, t)
		case t.waiting() && t.DesiredState != "shutdown":
			waiting = append(waiting, t)
		}
	}
	sort.SliceStable(fails, func(i, j int) bool { return fails[i].Time.Before(fails[j].Time) })
	short := s.Desired > 0 && s.Running < s.Desired
	job := strings.HasSuffix(s.Mode, "-job")
	var stuck *Task // a waiting task that says why it waits
	for _, t := range waiting {
		if t.Err != "" {
			stuck = t
		}
	}
	switch {
	case len(fails) >= 2, len(fails) == 1 && short, stuck != nil && short:
	case short && !job && len(ts) == 0 && len(st.Tasks) == 0:
		// docker service ls alone: nothing says why.
	case short && !job && len(waiting) == 0 && (s.Updated.IsZero() || now.Sub(s.Updated) > waitGrace) && len(ts) > 0:
	default:
		return finding.Finding{}, false
	}

	var last *Task
	switch {
	case stuck != nil && (len(fails) == 0 || stuck.Time.After(fails[len(fails)-1].Time)):
		last = stuck
	case len(fails) > 0:
		last = fails[len(fails)-1]
	}
	vars := map[string]string{"platform": "swarm", "owner": "swarm", "service": s.Name}
	if s.Image != "" {
		vars["image"] = s.Image
	}
	if s.Desired >= 0 && s.Mode != "global" {
		vars["replicas"] = itoa(s.Desired)
	}
	vars["running"] = itoa(s.Running)
	c := cause{mode: "FM-C4", plain: "nothing in what was read says why", vars: map[string]string{}}
	if last != nil && last.Err != "" {
		c = explainErr(last.Err, last.Truncated)
		vars["reason"] = last.Err
		vars["line"] = last.Err
	}
	for k, v := range c.vars {
		vars[k] = v
	}
	if c.mode == "FM-C5" {
		for _, m := range s.Mounts {
			if m.Type == "volume" && (m.Source == vars["volume"] || vars["volume"] == "") && m.Device != "" && vars["device"] == "" {
				vars["device"] = m.Device
			}
		}
	}

	replicas := fmt.Sprintf("runs %d of %d replicas", s.Running, s.Desired)
	if s.Desired < 0 {
		replicas = fmt.Sprintf("runs %d replicas", s.Running)
	}
	var parts []string
	var figs []finding.Figure
	var lines []finding.Line
	var notes []string
	var since *time.Time
	if len(fails) > 0 {
		first, newest := fails[0], fails[len(fails)-1]
		n := len(fails)
		vars["restarts"] = itoa(n)
		verb := "failed"
		if allState(fails, "rejected") {
			verb = "were rejected"
		} else if allState(fails, "failed") {
			verb = "failed"
		} else {
			verb = "were rejected or failed"
		}
		attempts := fmt.Sprintf("%d tasks %s", n, verb)
		if n == 1 {
			attempts = "1 task " + strings.NewReplacer("were", "was").Replace(verb)
		}
		if !first.Time.IsZero() && !newest.Time.IsZero() {
			span := newest.Time.Sub(first.Time)
			since = &first.Time
			if n > 1 {
				attempts += " in " + finding.HumanDuration(span) + ", the last"
			}
			if !now.Before(newest.Time) {
				attempts += " " + ago(now.Sub(newest.Time))
			}
			if span > 0 && n > 1 {
				rate := float64(n-1) / span.Hours()
				vars["rate"] = strconv.FormatFloat(rate, 'f', 0, 64)
				figs = append(figs, finding.Figure{Name: "failed tasks per hour", Value: rate})
			}
			figs = append(figs, finding.Figure{Name: "seconds from first to last failed task", Value: span.Seconds(), Unit: "s"})
			vars["since"] = first.Time.UTC().Format(time.RFC3339)
		}
		if newest.Node != "" {
			attempts += " (on " + strings.Join(nodesOf(fails), ", ") + ")"
		}
		figs = append(figs, finding.Figure{Name: "failed tasks", Value: float64(n), Source: st.Source})
		parts = append(parts, fmt.Sprintf("Swarm service %s %s: %s", s.Name, replicas, attempts))
		for _, t := range fails {
			lines = append(lines, finding.Line{Time: timePtr(t.Time), Source: taskSource(t), Text: titleCase(t.State) + ": " + t.Err})
		}
		if lim := st.HistoryLimit; lim > 0 {
			notes = append(notes, fmt.Sprintf("Swarm keeps only the last %d tasks of each replica (task history retention limit), so there were at least %d attempts and the loop began at the latest at the first one shown.", lim, n))
		} else {
			notes = append(notes, "Swarm keeps only the last few tasks of each replica (5 by default), so the count and the start are lower bounds.")
		}
	} else {
		parts = append(parts, fmt.Sprintf("Swarm service %s %s", s.Name, replicas))
	}
	if stuck != nil {
		lines = append(lines, finding.Line{Time: timePtr(stuck.Time), Source: taskSource(stuck), Text: titleCase(stuck.State) + ": " + stuck.Err})
		if len(fails) == 0 && !stuck.Time.IsZero() {
			since = &stuck.Time
		}
	}
	if last != nil && last.Err != "" {
		all := true
		for _, t := range fails {
			if t.Err != last.Err {
				all = false
			}
		}
		which := "the last one said"
		if all && len(fails) > 1 {
			which = "every one said"
		}
		if last == stuck {
			which = "its task waits with"
		}
		parts[len(parts)-1] += "; " + which + ": " + sentence(last.Err)
		if c.plain != "" {
			parts = append(parts, "That means "+c.plain+".")
		}
	} else {
		parts[len(parts)-1] += "; " + c.plain + "."
		parts = append(parts, "Run `docker service ps --no-trunc "+s.Name+"` for the tasks' full errors.")
	}
	if last != nil && last.Truncated {
		parts = append(parts, "The error is cut short (docker service ps truncates it without --no-trunc): run `docker service ps --no-trunc "+s.Name+"` for the full text.")
		notes = append(notes, "The ERROR column was truncated: run docker service ps --no-trunc "+s.Name+".")
		vars["truncated"] = "true"
	}
	figs = append(figs, finding.Figure{Name: "replicas running", Value: float64(s.Running), Limit: float64(max(s.Desired, 0)), Source: st.Source})

	sev := finding.High
	if !short {
		sev = finding.Medium
		parts = append(parts, "Its replicas run now but keep being replaced.")
	}
	return finding.Finding{
		Mode: c.mode, Severity: sev, Subject: "swarm service " + s.Name,
		Summary: strings.Join(parts, " "), Since: since,
		Evidence: finding.Evidence{Figures: figs, Lines: lines, Notes: notes, Vars: vars,
			Consumers: []finding.Consumer{{Kind: "service", Name: s.Name, Owner: s.Image, Value: float64(len(fails)), Unit: "failed tasks"}}},
	}, true
}

func taskSource(t *Task) string {
	s := "task " + t.ID
	if t.Node != "" {
		s += " on " + t.Node
	}
	return s
}

func nodesOf(ts []*Task) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range ts {
		if t.Node != "" && !seen[t.Node] {
			seen[t.Node] = true
			out = append(out, t.Node)
		}
	}
	sort.Strings(out)
	return out
}

func allState(ts []*Task, state string) bool {
	for _, t := range ts {
		if t.State != state {
			return false
		}
	}
	return true
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func itoa(n int) string { return strconv.Itoa(n) }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ago says how long ago, as the CLI would.
func ago(d time.Duration) string {
	if d < time.Second {
		return "less than a second ago"
	}
	return finding.HumanDuration(d) + " ago"
}

// sentence ends s with a full stop unless it ends a sentence already.
func sentence(s string) string {
	if strings.HasSuffix(s, ".") || strings.HasSuffix(s, "!") || strings.HasSuffix(s, "?") {
		return s
	}
	return s + "."
}
