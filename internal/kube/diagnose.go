package kube

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/finding"
)

// Thresholds of the diagnosis.
const (
	// PendingAfter is how long a pod may wait to be scheduled or to get
	// its containers created before it is a finding: image pulls and
	// volume attachments take a minute or two.
	PendingAfter = 5 * time.Minute
	// TerminatingAfter is how long past its grace period a pod may stay
	// Terminating: kubelet kills the containers at its end, so a pod
	// still there minutes later waits for something that will not come
	// (a dead node, a finalizer, a hung volume unmount).
	TerminatingAfter = 5 * time.Minute
	// RecentOOM is how long an OOM kill of a container that is running
	// again stays worth a finding.
	RecentOOM = time.Hour
)

// Waiting reasons that mean the image cannot be had.
var imageReasons = map[string]bool{
	"ImagePullBackOff": true, "ErrImagePull": true, "InvalidImageName": true,
	"ErrImageNeverPull": true, "RegistryUnavailable": true,
}

// Waiting reasons that mean the container cannot be created or started
// as configured.
var configReasons = map[string]bool{
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
	"ContainerCannotRun": true, "PreStartHookError": true, "PostStartHookError": true,
}

// Pod states that say the node lost track of the pod.
var lostStatus = map[string]bool{"Unknown": true, "NodeLost": true}

// Diagnose judges a cluster reading at now. It is the one diagnosis of
// both the live check and `hinomi explain`.
func Diagnose(c *Cluster, now time.Time) []finding.Finding {
	var out []finding.Finding
	down := map[string]bool{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if f, ok := nodeFinding(c, n, now); ok {
			out = append(out, f)
			if f.Severity >= finding.High {
				down[n.Name] = true
			}
		}
		if f, ok := addressFinding(c, n); ok {
			out = append(out, f)
		}
	}
	for i := range c.Pods {
		p := &c.Pods[i]
		// A dead node's pods go Terminating or Unknown: the node's
		// finding names them; one finding per pod would drown it.
		if down[p.Node] && (p.Terminating || lostStatus[p.Status]) {
			continue
		}
		if f, ok := podFinding(c, p, now); ok {
			out = append(out, f)
		}
	}
	for i := range out {
		out[i].Key = finding.MakeKey(out[i].Mode, out[i].Subject)
		out[i].Runbook = out[i].Mode
	}
	finding.Sort(out)
	return out
}

// culprit is the container of a pod that explains its trouble.
type culprit struct {
	c     *Container
	state string // crashloop, oom, image, config
	sev   finding.Severity
}

func pickCulprit(p *Pod, now time.Time) (culprit, bool) {
	var best culprit
	for i := range p.Containers {
		c := &p.Containers[i]
		var k culprit
		switch {
		case c.State == "waiting" && c.Reason == "CrashLoopBackOff":
			k = culprit{c, "crashloop", finding.High}
		case c.State == "terminated" && c.Reason == "OOMKilled":
			k = culprit{c, "oom", finding.High}
		case c.State == "waiting" && imageReasons[c.Reason]:
			k = culprit{c, "image", finding.Medium}
		case c.State == "waiting" && configReasons[c.Reason]:
			k = culprit{c, "config", finding.Medium}
		case c.State == "terminated" && configReasons[c.Reason]:
			k = culprit{c, "config", finding.Medium}
		case c.State == "running" && c.Last != nil && c.Last.Reason == "OOMKilled" &&
			(c.Last.Finished.IsZero() || now.Sub(c.Last.Finished) < RecentOOM):
			k = culprit{c, "oom", finding.Medium}
		default:
			continue
		}
		if best.c == nil || k.sev > best.sev || (k.sev == best.sev && c.Restarts > best.c.Restarts) {
			best = k
		}
	}
	return best, best.c != nil
}

func podFinding(cl *Cluster, p *Pod, now time.Time) (finding.Finding, bool) {
	vars := map[string]string{
		"owner": "kubernetes", "owner_label": p.Ref(), "pod": p.Name,
		"restarts": itoa(p.Restarts),
	}
	if p.Namespace != "" {
		vars["namespace"] = p.Namespace
	}
	if p.Node != "" {
		vars["node"] = p.Node
	}
	if p.Workload != "" {
		vars["workload"] = p.Workload
	}
	f := finding.Finding{Mode: "FM-C4", Subject: "pod " + p.Ref()}
	var notes []string
	var lines []finding.Line
	var figs []finding.Figure
	events := podEvents(cl, p)

	k, ok := pickCulprit(p, now)
	switch {
	case ok:
		c := k.c
		vars["state"] = k.state
		vars["restarts"] = itoa(c.Restarts)
		if c.Name != "" {
			vars["container"] = c.Name
		}
		if c.ID != "" {
			vars["container_id"] = c.ID
		}
		if c.Image != "" {
			vars["image"] = c.Image
		}
		f.Severity = k.sev
		what := "container " + c.Name
		if c.Name == "" {
			what = "its container"
		}
		if c.Init {
			what = "init " + what
		}
		last := c.Last
		if c.State == "terminated" {
			last = c.Exit
		}
		ended := ""
		if last != nil {
			vars["exit_code"] = itoa(last.ExitCode)
			ended = describeTermination(last)
			if last.Reason == "OOMKilled" {
				vars["oom"] = "true"
			}
			if last.Message != "" {
				lines = append(lines, finding.Line{Time: timePtr(last.Finished), Source: "terminated: " + last.Reason, Text: strings.TrimSpace(last.Message)})
			}
			figs = append(figs, finding.Figure{Name: "last exit code", Value: float64(last.ExitCode)})
		}
		if c.Restarts > 0 || k.state == "crashloop" {
			figs = append(figs, finding.Figure{Name: "restarts", Value: float64(c.Restarts), Source: "status.containerStatuses[].restartCount"})
		}
		if !p.Created.IsZero() && now.After(p.Created) && c.Restarts > 0 {
			rate := float64(c.Restarts) / max(now.Sub(p.Created).Hours(), 1.0/60)
			vars["rate"] = strconv.FormatFloat(rate, 'f', 1, 64)
			figs = append(figs, finding.Figure{Name: "restarts per hour", Value: rate})
		}
		var s string
		switch k.state {
		case "crashloop":
			s = fmt.Sprintf("Pod %s is in CrashLoopBackOff: %s has restarted %d %s", p.Ref(), what, c.Restarts, plural(c.Restarts, "time", "times"))
			if ended != "" {
				s += "; its last run " + ended
			} else {
				s += "; how its last run ended is not shown"
			}
			s += ". Kubelet waits longer before each new try, up to 5 minutes."
			vars["reason"] = firstNonEmpty(reasonText(last), c.Message, c.Reason)
		case "oom":
			if c.State == "running" {
				s = fmt.Sprintf("Pod %s: %s was killed for running out of memory (OOMKilled) %s and runs again (%d %s).",
					p.Ref(), what, ago(now, last.Finished), c.Restarts, plural(c.Restarts, "restart", "restarts"))
			} else {
				s = fmt.Sprintf("Pod %s: %s was killed for running out of memory (OOMKilled)", p.Ref(), what)
				if ended != "" {
					s += "; it " + ended
				}
				s += fmt.Sprintf(" (%d %s).", c.Restarts, plural(c.Restarts, "restart", "restarts"))
			}
			vars["oom"] = "true"
			vars["reason"] = "OOMKilled: the container reached its memory limit (or the node ran out of memory)"
			notes = append(notes, "Raise the container's memory limit or find what makes it grow; exit code 137 is the SIGKILL the OOM killer sends.")
		case "image":
			s = fmt.Sprintf("Pod %s cannot start: the image of %s cannot be pulled (%s)", p.Ref(), what, c.Reason)
			if c.Message != "" {
				s += ": " + strings.TrimRight(c.Message, ". ")
			}
			s += "."
			vars["reason"] = firstNonEmpty(c.Message, c.Reason)
		case "config":
			s = fmt.Sprintf("Pod %s cannot start %s (%s)", p.Ref(), what, c.Reason)
			if c.Message != "" {
				s += ": " + strings.TrimRight(c.Message, ". ")
			}
			s += "."
			vars["reason"] = firstNonEmpty(c.Message, c.Reason)
		}
		if c.State == "waiting" && c.Message != "" && k.state == "crashloop" {
			lines = append(lines, finding.Line{Source: "waiting: " + c.Reason, Text: c.Message})
		}
		f.Summary = s
		if ready, ok := p.Condition("Ready"); ok && ready.Status == "False" && !ready.Since.IsZero() {
			f.Since = timePtr(ready.Since)
		} else if k.state == "oom" && last != nil {
			f.Since = timePtr(last.Finished)
		}
	case p.Terminating:
		over := time.Duration(-1)
		if !p.Deleting.IsZero() {
			over = now.Sub(p.Deleting)
			if over < TerminatingAfter {
				return finding.Finding{}, false
			}
			f.Since = timePtr(p.Deleting.Add(-time.Duration(p.GraceSeconds) * time.Second))
		}
		vars["state"] = "terminating"
		vars["reason"] = "stuck Terminating"
		f.Severity = finding.Medium
		if over < 0 {
			f.Severity = finding.Low
			f.Summary = fmt.Sprintf("Pod %s is Terminating; the paste does not say since when (its deletionTimestamp is in `kubectl get pod -o json`).", p.Ref())
		} else {
			f.Summary = fmt.Sprintf("Pod %s has been Terminating for %s past its grace period: something holds it (its node, a finalizer, a volume that does not unmount).", p.Ref(), finding.HumanDuration(over))
			figs = append(figs, finding.Figure{Name: "seconds past the grace period", Value: over.Seconds(), Unit: "s"})
		}
		if p.Node != "" {
			notes = append(notes, "It runs on node "+p.Node+"; if that node is gone for good, the pod can be force-deleted (see FM-D10).")
		}
	case pending(p) && (!p.Created.IsZero() && now.Sub(p.Created) >= PendingAfter || p.Created.IsZero() && len(events) > 0):
		// A paste may show only the events: the scheduler's refusal is
		// worth saying even when the pod's age is not known.
		age := time.Duration(0)
		if !p.Created.IsZero() {
			age = now.Sub(p.Created)
		}
		vars["state"] = "pending"
		f.Severity = finding.Medium
		f.Since = timePtr(p.Created)
		why := ""
		if sc, ok := p.Condition("PodScheduled"); ok && sc.Status == "False" {
			why = firstNonEmpty(sc.Message, sc.Reason)
			if sc.Reason != "" && sc.Message != "" {
				why = sc.Reason + ": " + sc.Message
			}
		}
		for _, e := range events {
			if why == "" {
				why = e.Reason + ": " + e.Message
			}
			lines = append(lines, finding.Line{Time: timePtr(e.Last), Source: "event " + e.Reason, Text: e.Message})
		}
		state := firstNonEmpty(p.Status, p.Phase)
		f.Summary = fmt.Sprintf("Pod %s has been %s for %s", p.Ref(), state, finding.HumanDuration(age))
		if p.Created.IsZero() {
			f.Summary = fmt.Sprintf("Pod %s is %s (for how long is not shown)", p.Ref(), state)
		}
		if why != "" {
			f.Summary += ": " + strings.TrimRight(why, ". ")
			vars["reason"] = why
		} else {
			f.Summary += "; the reason is in its events (kubectl describe pod)"
			vars["reason"] = state
		}
		f.Summary += "."
		if age > 0 {
			figs = append(figs, finding.Figure{Name: "seconds pending", Value: age.Seconds(), Unit: "s"})
		}
	default:
		return finding.Finding{}, false
	}
	if vars["reason"] == "" {
		delete(vars, "reason")
	}
	if ok {
		for _, e := range events {
			lines = append(lines, finding.Line{Time: timePtr(e.Last), Source: "event " + e.Reason, Text: e.Message})
		}
	}
	if cl.Source != "" {
		notes = append(notes, "Read from "+cl.Source+".")
	}
	f.Evidence = finding.Evidence{Figures: figs, Lines: lines, Notes: notes, Vars: vars}
	name := p.Ref()
	if k.c != nil && k.c.Name != "" {
		name += "/" + k.c.Name
	}
	if n := atoiOr(vars["restarts"]); n > 0 {
		f.Evidence.Consumers = []finding.Consumer{{Kind: "pod", Name: name, Owner: p.Node, Value: float64(n), Unit: "restarts"}}
	}
	return f, true
}

// pending reports whether the pod has not got its containers running yet.
func pending(p *Pod) bool {
	switch p.Status {
	case "Pending", "ContainerCreating", "PodInitializing":
		return true
	}
	if strings.HasPrefix(p.Status, "Init:") {
		return true
	}
	return p.Phase == "Pending" && p.Status == ""
}

// podEvents are the Warning events about p, newest first, at most five.
func podEvents(cl *Cluster, p *Pod) []Event {
	var out []Event
	for _, e := range cl.Events {
		if e.Kind == "Pod" && e.Name == p.Name && (e.Namespace == p.Namespace || p.Namespace == "") {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	return out[:min(len(out), 5)]
}

// describeTermination says how a container instance ended: "ended with
// Error, exit code 1, at …: message".
func describeTermination(x *Termination) string {
	s := "ended"
	if x.Reason != "" {
		s += " with " + x.Reason + ","
	}
	s += " exit code " + itoa(x.ExitCode) + exitMeaning(x.ExitCode)
	if !x.Finished.IsZero() {
		s += " at " + x.Finished.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if m := strings.TrimSpace(x.Message); m != "" {
		s += ": " + oneLine(m, 300)
	}
	return s
}

func reasonText(x *Termination) string {
	if x == nil {
		return ""
	}
	s := x.Reason
	if s == "" {
		s = "exit code " + itoa(x.ExitCode)
	} else {
		s += ", exit code " + itoa(x.ExitCode)
	}
	if m := strings.TrimSpace(x.Message); m != "" {
		s += ": " + m
	}
	return s
}

// Conditions under which a node is short of something: kubelet evicts
// pods and refuses new ones.
var pressureConditions = []string{"MemoryPressure", "DiskPressure", "PIDPressure"}

// Taints the node controller puts on a node it lost.
var lostTaints = map[string]bool{"node.kubernetes.io/unreachable": true, "node.kubernetes.io/not-ready": true}

func nodeFinding(cl *Cluster, n *Node, now time.Time) (finding.Finding, bool) {
	vars := map[string]string{"node": n.Name, "platform": "kubernetes"}
	var notes []string
	var lines []finding.Line
	var since *time.Time
	sev := finding.Severity(0)
	status := ""

	ready, hasReady := n.Condition("Ready")
	switch {
	case hasReady && ready.Status != "True":
		sev = finding.High
		status = "NotReady"
		if ready.Status == "Unknown" {
			status = "Unknown"
		}
		since = timePtr(ready.Since)
		lines = append(lines, condLine(ready))
	case !hasReady && n.Status != "" && !statusReady(n.Status):
		sev = finding.High
		status, _, _ = strings.Cut(n.Status, ",")
	}
	var pressures []string
	for _, t := range pressureConditions {
		if c, ok := n.Condition(t); ok && c.Status == "True" {
			pressures = append(pressures, t)
			lines = append(lines, condLine(c))
			if since == nil {
				since = timePtr(c.Since)
			}
		}
	}
	var lost []string
	for _, t := range n.Taints {
		if lostTaints[t.Key] {
			lost = append(lost, t.Key+":"+t.Effect)
			if since == nil && !t.Since.IsZero() {
				since = timePtr(t.Since)
			}
		}
	}
	if sev == 0 && len(lost) > 0 {
		sev, status = finding.High, "Unreachable"
	}
	if sev == 0 && len(pressures) > 0 {
		sev, status = finding.Medium, strings.Join(pressures, ",")
	}
	if sev == 0 {
		return finding.Finding{}, false
	}
	vars["status"] = status
	if since != nil {
		vars["since"] = since.UTC().Format(time.RFC3339)
	}

	var s string
	switch {
	case status == "Unknown":
		s = fmt.Sprintf("Kubernetes node %s is Unknown: kubelet stopped posting its status", n.Name)
	case sev >= finding.High:
		s = fmt.Sprintf("Kubernetes node %s is %s", n.Name, status)
		if ready.Message != "" {
			s += ": " + strings.TrimRight(ready.Message, ". ")
		}
	default:
		s = fmt.Sprintf("Kubernetes node %s is under %s: kubelet evicts pods from it and it takes no new ones", n.Name, strings.Join(pressures, ", "))
	}
	if since != nil {
		s += fmt.Sprintf(", since %s (%s ago)", since.UTC().Format("2006-01-02 15:04:05 UTC"), finding.HumanDuration(now.Sub(*since)))
	}
	s += "."
	if sev >= finding.High && len(pressures) > 0 {
		s += " It also reports " + strings.Join(pressures, ", ") + "."
	}
	if len(lost) > 0 {
		notes = append(notes, "Taints "+strings.Join(lost, ", ")+": the node controller evicts its pods once their tolerations (300 s by default) run out.")
	}
	if n.ControlPlane() {
		notes = append(notes, "It is a control-plane node: the API server, etcd and the scheduler may be on it.")
	}

	var cons []finding.Consumer
	for i := range cl.Pods {
		p := &cl.Pods[i]
		if p.Node != n.Name {
			continue
		}
		cons = append(cons, finding.Consumer{Kind: "pod", Name: p.Ref(), Owner: firstNonEmpty(p.Status, p.Phase), Value: float64(p.Restarts), Unit: "restarts"})
	}
	if len(cons) > 0 {
		notes = append(notes, fmt.Sprintf("%d %s on it.", len(cons), plural(len(cons), "pod runs", "pods run")))
	}
	if cl.Source != "" {
		notes = append(notes, "Read from "+cl.Source+".")
	}
	return finding.Finding{
		Mode: "FM-D10", Severity: sev, Subject: "node " + n.Name, Summary: s, Since: since,
		Evidence: finding.Evidence{Lines: lines, Notes: notes, Vars: vars, Consumers: cons},
	}, true
}

// statusReady reads kubectl's node STATUS column ("Ready",
// "Ready,SchedulingDisabled").
func statusReady(s string) bool {
	first, _, _ := strings.Cut(s, ",")
	return first == "Ready"
}

func condLine(c Condition) finding.Line {
	text := c.Type + "=" + c.Status
	if c.Reason != "" {
		text += " " + c.Reason
	}
	if c.Message != "" {
		text += ": " + c.Message
	}
	return finding.Line{Time: timePtr(c.Since), Source: "node condition", Text: text}
}

// addressFinding is FM-C7: the node's InternalIP is not the address other
// parts of the cluster recorded for it: a CNI or installer annotation, the
// advertise address of its kube-apiserver static pod, or (control-plane
// nodes) the addresses the API server's certificate was issued for.
func addressFinding(cl *Cluster, n *Node) (finding.Finding, bool) {
	if len(n.InternalIPs) == 0 {
		return finding.Finding{}, false
	}
	own := map[string]bool{}
	for _, a := range append(append([]string(nil), n.InternalIPs...), n.ExternalIPs...) {
		own[canonIP(a)] = true
	}
	type seen struct{ addr, where string }
	var old []seen
	keys := make([]string, 0, len(n.SeenAddrs))
	for k := range n.SeenAddrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a := n.SeenAddrs[k]
		if net.ParseIP(a) != nil && !own[canonIP(a)] {
			old = append(old, seen{a, "annotation " + k})
		}
	}
	for _, mv := range cl.Moved {
		if mv.Node == n.Name && net.ParseIP(mv.Old) != nil && !own[canonIP(mv.Old)] {
			old = append(old, seen{mv.Old, "this agent saw it until " + mv.At.UTC().Format("2006-01-02 15:04:05 UTC")})
		}
	}
	for i := range cl.Pods {
		p := &cl.Pods[i]
		if p.Node == n.Name && p.AdvertiseAddr != "" && net.ParseIP(p.AdvertiseAddr) != nil && !own[canonIP(p.AdvertiseAddr)] {
			old = append(old, seen{p.AdvertiseAddr, "the advertise address of " + p.Ref()})
		}
	}
	var certNote string
	if n.ControlPlane() && len(cl.CertIPs) > 0 {
		in := false
		for _, a := range cl.CertIPs {
			in = in || own[canonIP(a)]
		}
		if !in {
			certNote = fmt.Sprintf("The API server's certificate is valid for %s, not for %s.", strings.Join(cl.CertIPs, ", "), strings.Join(n.InternalIPs, ", "))
			if len(old) == 0 {
				if srv := serverIP(cl.Server); srv != "" && !own[canonIP(srv)] {
					old = append(old, seen{srv, "the kubeconfig's API server address and its certificate"})
				} else {
					old = append(old, seen{cl.CertIPs[0], "the API server's certificate"})
				}
			}
		}
	}
	if len(old) == 0 {
		return finding.Finding{}, false
	}
	newAddr := n.InternalIPs[0]
	vars := map[string]string{"node": n.Name, "old_addr": old[0].addr, "new_addr": newAddr}
	var wheres []string
	var notes []string
	for _, o := range old {
		wheres = append(wheres, o.where+" says "+o.addr)
	}
	if certNote != "" {
		notes = append(notes, certNote)
	}
	notes = append(notes, "Annotations are written by components when they start; a multi-homed node whose CNI uses another interface names another address on purpose.")
	if cl.Source != "" {
		notes = append(notes, "Read from "+cl.Source+".")
	}
	s := fmt.Sprintf("Kubernetes node %s now has address %s, but %s: the node's address changed after the cluster recorded it, and what pinned the old address (API server certificate, kubeconfigs, CNI) breaks.", n.Name, newAddr, strings.Join(wheres, "; "))
	return finding.Finding{
		Mode: "FM-C7", Severity: finding.High, Subject: "node " + n.Name, Summary: s,
		Evidence: finding.Evidence{
			Figures: nil, Notes: notes, Vars: vars,
			Lines: []finding.Line{{Source: "node " + n.Name + " InternalIP", Text: strings.Join(n.InternalIPs, ", ")}},
		},
	}, true
}

func canonIP(s string) string {
	if ip := net.ParseIP(strings.TrimSpace(s)); ip != nil {
		return ip.String()
	}
	return s
}

// serverIP is the API server's host when it is an IP address.
func serverIP(server string) string {
	h := server
	if _, after, ok := strings.Cut(h, "://"); ok {
		h = after
	}
	h, _, _ = strings.Cut(h, "/")
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.Trim(h, "[]")
	if net.ParseIP(h) == nil {
		return ""
	}
	return h
}

// exitMeaning names the signal a shell-style exit status above 128
// stands for: 137 is " (SIGKILL)".
func exitMeaning(code int) string {
	if code <= 128 || code > 128+64 {
		return ""
	}
	if name := unix.SignalName(syscall.Signal(code - 128)); name != "" {
		return " (" + name + ")"
	}
	return ""
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return finding.HumanDuration(now.Sub(t)) + " ago"
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func itoa(v int) string { return strconv.Itoa(v) }

func atoiOr(s string) int {
	v, _ := strconv.Atoi(s)
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func sortStrings(s []string) { sort.Strings(s) }
