package pve

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// Scope is what every diagnosis of a cluster needs to name things: the node
// that read the state, its cluster, and the configured nodes.
type Scope struct {
	// Node is the local node's name (the host name on PVE).
	Node string
	// Cluster is the cluster's name (corosync.conf's cluster_name, or
	// pvecm's "Name:"). Every finding carries it in Vars["cluster"] so
	// that findings of one cluster can be grouped.
	Cluster string
	Conf    *CorosyncConf
	Now     time.Time
}

// Vars are the runbook values every finding of the scope carries:
// cluster and node.
func (s Scope) Vars() map[string]string { return s.vars() }

func (s Scope) vars(kv ...string) map[string]string {
	v := map[string]string{}
	if s.Cluster != "" {
		v["cluster"] = s.Cluster
	}
	if s.Node != "" {
		v["node"] = s.Node
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v[kv[i]] = kv[i+1]
		}
	}
	return v
}

func (s Scope) clusterSubject() string {
	if s.Cluster != "" {
		return "cluster " + s.Cluster
	}
	return "corosync cluster"
}

// nodeName names a corosync node ID by corosync.conf.
func (s Scope) nodeName(id string) string {
	if s.Conf != nil {
		for _, n := range s.Conf.Nodes {
			if strconv.FormatUint(uint64(n.ID), 10) == id {
				return n.Label()
			}
		}
	}
	return "node " + id
}

func mk(mode string, sev finding.Severity, subject, summary string, ev finding.Evidence) finding.Finding {
	return finding.Finding{Key: finding.MakeKey(mode, subject), Mode: mode, Severity: sev, Subject: subject, Summary: summary, Evidence: ev, Runbook: mode}
}

// MissingNodes are the configured nodes absent from the membership.
func MissingNodes(q *Quorum, conf *CorosyncConf) []ConfNode {
	if conf == nil || len(q.Members) == 0 {
		return nil
	}
	present := map[uint32]bool{}
	for _, m := range q.Members {
		present[m.NodeID] = true
	}
	var out []ConfNode
	for _, n := range conf.Nodes {
		if !present[n.ID] {
			out = append(out, n)
		}
	}
	return out
}

// DiagnoseQuorum is FM-D5: no quorum (catastrophic), or quorum held with
// votes missing (high when one more loss blocks the cluster, else medium).
// lostAt, when not zero, is when the log says quorum went.
func DiagnoseQuorum(q *Quorum, sc Scope, lostAt time.Time) []finding.Finding {
	if sc.Cluster == "" {
		sc.Cluster = q.Cluster
	}
	missing := MissingNodes(q, sc.Conf)
	var names []string
	for _, n := range missing {
		names = append(names, n.Label())
	}
	quorate := !q.HasQuorate || q.Quorate
	if quorate && (!q.HasVotes || q.TotalVotes >= q.ExpectedVotes) && len(missing) == 0 {
		return nil
	}
	ev := finding.Evidence{
		Figures: []finding.Figure{
			{Name: "votes present", Value: float64(q.TotalVotes), Limit: float64(q.ExpectedVotes), Source: "corosync votequorum"},
			{Name: "votes needed for quorum", Value: float64(q.QuorumVotes)},
		},
		Vars: sc.vars("expected_votes", itoa(q.ExpectedVotes), "total_votes", itoa(q.TotalVotes), "quorum", itoa(q.QuorumVotes), "missing", strings.Join(names, ",")),
	}
	for _, m := range q.Members {
		role := ""
		if m.Local {
			role = " (this node)"
		}
		ev.Consumers = append(ev.Consumers, finding.Consumer{Kind: "node", Name: m.Name + role, ID: strconv.FormatUint(uint64(m.NodeID), 10), Value: float64(m.Votes), Unit: "votes"})
	}
	flags := strings.Join(q.Flags, " ")
	if flags == "" {
		flags = "(none)"
	}
	ev.Notes = append(ev.Notes, fmt.Sprintf("Quorate: %s; Quorum: %d%s; Flags: %s", yesNo(quorate), q.QuorumVotes, map[bool]string{true: " Activity blocked"}[q.Blocked], flags))
	missingText := ""
	if len(names) > 0 {
		missingText = "; missing: " + strings.Join(names, ", ")
	} else if q.HasVotes && q.TotalVotes < q.ExpectedVotes {
		missingText = fmt.Sprintf("; %d vote(s) missing", q.ExpectedVotes-q.TotalVotes)
	}
	if !quorate {
		f := mk("FM-D5", finding.Catastrophic, sc.clusterSubject(),
			fmt.Sprintf("Cluster %s has no quorum on %s: %d of %d votes present, %d needed%s. /etc/pve is read-only, nothing can be started, changed or migrated, and HA nodes may fence themselves.",
				orUnknown(sc.Cluster), orUnknown(sc.Node), q.TotalVotes, q.ExpectedVotes, q.QuorumVotes, missingText), ev)
		if !lostAt.IsZero() {
			f.Since = &lostAt
		}
		return []finding.Finding{f}
	}
	sev, margin := finding.Medium, q.TotalVotes-q.QuorumVotes
	tail := fmt.Sprintf("it can lose %d more vote(s) before it blocks", margin)
	if margin <= 0 {
		sev, tail = finding.High, "one more lost vote and the whole cluster blocks"
	}
	return []finding.Finding{mk("FM-D5", sev, sc.clusterSubject(),
		fmt.Sprintf("Cluster %s is quorate with %d of %d votes%s: %s.", orUnknown(sc.Cluster), q.TotalVotes, q.ExpectedVotes, missingText, tail), ev)}
}

// DiagnoseClusterLog is FM-D6: token losses, link flaps per peer, quorum
// flaps and pmxcfs CPG storms in the window of t. A node that only joins
// (links coming up, new memberships) is not a finding.
func DiagnoseClusterLog(t *Trend, sc Scope) []finding.Finding {
	tokens, downs, flaps, cpg, locks := t.Counts[TokenLost], t.Counts[LinkDown], t.Counts[QuorumLost], t.Counts[CPGFailed], t.Counts[HALostLock]+t.Counts[WatchdogExp]
	left := t.Counts[MembersLeft]
	if tokens+downs+flaps+cpg+locks+left == 0 {
		return nil
	}
	sev := finding.High
	var why []string
	if tokens <= 2 && downs+flaps+cpg+locks+left == 0 {
		// One or two late tokens and nothing else: a short stall (a
		// loaded CPU, a network hiccup), worth knowing, not a page; many
		// an hour are what ends in a fence.
		sev = finding.Low
		why = append(why, "isolated: no link went down and no node left; many late tokens an hour are what ends in a fence")
	}
	if flaps >= 2 {
		sev = finding.Catastrophic
		why = append(why, fmt.Sprintf("quorum was lost %d times (flapping)", flaps))
	}
	if cpg >= 10 {
		sev = finding.Catastrophic
		why = append(why, fmt.Sprintf("the cluster filesystem (pmxcfs) failed to send %d messages (a cpg_send_message storm)", cpg))
	}
	if locks > 0 && flaps > 0 {
		sev = finding.Catastrophic
		why = append(why, "HA lost its lock while quorum was gone: HA nodes fence (hard-reset) when this lasts")
	}
	if t.Timed && t.Last != nil && !t.Last.Time.IsZero() && t.Last.Time.Before(t.To.Add(-6*time.Hour)) {
		sev = finding.Medium
		why = append(why, "calm since "+t.Last.Time.UTC().Format(time.RFC3339))
	}
	span := "in this log"
	if t.Timed {
		span = fmt.Sprintf("in the last %.0f hours", t.To.Sub(t.From).Hours())
	}
	worst := t.WorstPeer()
	peer, peerName := "", ""
	parts := []string{fmt.Sprintf("%d token losses", tokens), fmt.Sprintf("%d link-downs", downs), fmt.Sprintf("%d membership changes", t.Counts[Membership]), fmt.Sprintf("%d quorum losses", flaps)}
	if cpg > 0 {
		parts = append(parts, fmt.Sprintf("%d cpg_send_message failures", cpg))
	}
	summary := fmt.Sprintf("Corosync on %s sees an unstable cluster network %s: %s", orUnknown(sc.Node), span, strings.Join(parts, ", "))
	if worst != nil {
		peer, peerName = worst.ID, sc.nodeName(worst.ID)
		who := peerName + " (nodeid " + peer + ")"
		if peerName == "node "+peer {
			who, peerName = "nodeid "+peer, ""
		}
		summary += fmt.Sprintf("; worst peer %s: %d link-downs, left the membership %d time(s)", who, worst.LinkDowns, worst.Departures)
	}
	summary += "."
	if len(why) > 0 {
		summary += " " + strings.ToUpper(why[0][:1]) + why[0][1:] + "."
	}
	ev := finding.Evidence{
		Vars: sc.vars("peer", peer, "peer_name", peerName, "token_losses", itoa(t.LastHour[TokenLost]), "membership_changes", itoa(t.LastHour[Membership])),
	}
	if !t.Timed {
		ev.Vars["token_losses"], ev.Vars["membership_changes"] = itoa(tokens), itoa(t.Counts[Membership])
	}
	for _, k := range []EventKind{TokenLost, LinkDown, MembersLeft, Membership, QuorumLost, CPGFailed, HALostLock, Retransmit} {
		if n := t.Counts[k]; n > 0 {
			f := finding.Figure{Name: kindLabel[k] + " " + span, Value: float64(n), Source: "corosync/pmxcfs/pve-ha log"}
			ev.Figures = append(ev.Figures, f)
		}
	}
	if t.Timed {
		ev.Figures = append(ev.Figures, finding.Figure{Name: "token losses in the last hour", Value: float64(t.LastHour[TokenLost])})
		if t.PeakHourCount > 0 {
			ev.Notes = append(ev.Notes, fmt.Sprintf("Worst hour: %s with %d token losses and link-downs.", t.PeakHour.UTC().Format("2006-01-02 15:00 UTC"), t.PeakHourCount))
		}
	}
	ids := make([]string, 0, len(t.Peers))
	for id := range t.Peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p := t.Peers[id]
		ev.Consumers = append(ev.Consumers, finding.Consumer{Kind: "node", Name: sc.nodeName(id), ID: id, Value: float64(p.LinkDowns), Unit: fmt.Sprintf("link-downs, left %d time(s)", p.Departures)})
	}
	if worst != nil && worst.Link != "" {
		ev.Vars["link"] = worst.Link
	}
	for _, w := range why[min(1, len(why)):] {
		ev.Notes = append(ev.Notes, strings.ToUpper(w[:1])+w[1:]+".")
	}
	ev.Lines = sampleLines(t)
	f := mk("FM-D6", sev, "corosync network of "+orUnknown(sc.Node), summary, ev)
	if t.First != nil && !t.First.Time.IsZero() {
		s := t.First.Time
		f.Since = &s
	}
	return []finding.Finding{f}
}

// kindLabel names an event kind in a figure.
var kindLabel = map[EventKind]string{
	TokenLost: "token losses", LinkDown: "knet link-downs", MembersLeft: "departures",
	Membership: "membership changes", QuorumLost: "quorum losses", CPGFailed: "cpg_send_message failures",
	HALostLock: "HA lock losses", Retransmit: "retransmit lists",
}

// sampleLines keeps the first and last trouble lines as evidence.
func sampleLines(t *Trend) []finding.Line {
	var out []finding.Line
	for _, e := range []*Event{t.First, t.Last} {
		if e == nil {
			continue
		}
		l := finding.Line{Source: "cluster log", Text: e.Text}
		if !e.Time.IsZero() {
			tt := e.Time
			l.Time = &tt
		}
		if len(out) == 1 && out[0].Text == l.Text {
			continue
		}
		out = append(out, l)
	}
	return out
}

// DiagnoseHA reads `ha-manager status`: an LRM the manager no longer hears
// (its node will be fenced), resources being fenced or recovered, and
// resources in the error state (FM-D7's aftermath).
func DiagnoseHA(s *HAStatus, sc Scope) []finding.Finding {
	var out []finding.Finding
	fencing := map[string]bool{}
	for _, svc := range s.Services {
		if svc.State == "fence" || svc.State == "recovery" {
			fencing[svc.Node] = true
		}
	}
	for _, l := range s.LRMs {
		if !l.Dead() || fencing[l.Node] {
			continue // a node being fenced gets the one, worse, finding below
		}
		var guests []finding.Consumer
		for _, svc := range s.Services {
			if svc.Node == l.Node {
				guests = append(guests, finding.Consumer{Kind: "guest", Name: svc.SID, Value: 1, Unit: svc.State})
			}
		}
		out = append(out, mk("FM-D7", finding.High, "node "+l.Node,
			fmt.Sprintf("HA has not heard from node %s (lrm %s): HA fences it and restarts its HA guests on other nodes; %d HA guests are placed there.", l.Node, l.State, len(guests)),
			finding.Evidence{Consumers: guests, Vars: sc.vars("node", l.Node), Lines: []finding.Line{{Source: "ha-manager status", Text: "lrm " + l.Node + " (" + l.State + ")"}}}))
	}
	byNode := map[string][]HAService{}
	for _, svc := range s.Services {
		switch svc.State {
		case "fence", "recovery":
			byNode[svc.Node] = append(byNode[svc.Node], svc)
		case "error":
			guest := svc.SID
			if _, id, ok := strings.Cut(svc.SID, ":"); ok {
				guest = id
			}
			out = append(out, mk("FM-D7", finding.Medium, "HA resource "+svc.SID,
				fmt.Sprintf("HA resource %s on %s is in the error state: HA gave up starting it and will not move it until it is disabled and enabled again.", svc.SID, svc.Node),
				finding.Evidence{Vars: sc.vars("node", svc.Node, "sid", svc.SID, "guest", guest), Lines: []finding.Line{{Source: "ha-manager status", Text: fmt.Sprintf("service %s (%s, %s)", svc.SID, svc.Node, svc.State)}}}))
		}
	}
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		var cs []finding.Consumer
		for _, svc := range byNode[n] {
			cs = append(cs, finding.Consumer{Kind: "guest", Name: svc.SID, Value: 1, Unit: svc.State})
		}
		out = append(out, mk("FM-D7", finding.Catastrophic, "node "+n,
			fmt.Sprintf("HA is fencing node %s: %d of its HA guests are in fence or recovery and will be restarted elsewhere once the fence is acknowledged.", n, len(cs)),
			finding.Evidence{Consumers: cs, Vars: sc.vars("node", n)}))
	}
	return out
}

// reDataset finds the ZFS dataset a replication error names.
var reDataset = regexp.MustCompile(`(?:snapshot of |dataset |volume )'?([\w.-]+/[\w./:-]*\w)`)

// DiagnoseReplication is FM-D4: replication jobs whose last runs failed,
// with the error, the fail count and the age of the last good sync.
func DiagnoseReplication(jobs []ReplJob, sc Scope) []finding.Finding {
	var out []finding.Finding
	for _, j := range jobs {
		if !j.Failed() {
			continue
		}
		age := "it never synced"
		var since *time.Time
		if !j.LastSync.IsZero() {
			age = "last good sync " + finding.HumanDuration(sc.Now.Sub(j.LastSync)) + " ago (" + j.LastSync.Format("2006-01-02 15:04") + ")"
			t := j.LastSync
			since = &t
		}
		dataset := ""
		if m := reDataset.FindStringSubmatch(j.State); m != nil {
			dataset = m[1]
		}
		errText := j.State
		if errText == "" || errText == "OK" {
			errText = "(no error text)"
		}
		f := mk("FM-D4", finding.Catastrophic, "replication job "+j.ID,
			fmt.Sprintf("Replication job %s of guest %s to %s has failed %d time(s) in a row, %s: %s", j.ID, j.Guest, j.Target, j.FailCount, age, errText),
			finding.Evidence{
				Figures: []finding.Figure{{Name: "failed runs in a row", Value: float64(j.FailCount), Source: "pvesr status"}},
				Vars:    sc.vars("guest", j.Guest, "repl_job", j.ID, "repl_target", j.Target, "error", errText, "dataset", dataset),
			})
		if !j.LastSync.IsZero() {
			f.Evidence.Figures = append(f.Evidence.Figures, finding.Figure{Name: "since the last good sync", Value: sc.Now.Sub(j.LastSync).Seconds(), Unit: "s"})
		}
		if !j.Enabled {
			f.Evidence.Notes = append(f.Evidence.Notes, "The job is disabled.")
		}
		f.Since = since
		out = append(out, f)
	}
	return out
}

// DiagnoseStorage is FM-C6's Proxmox form: storages `pvesm status` shows
// inactive or unknown (the question mark in the web UI). mountDir names
// the directory a network storage is mounted at (/mnt/pve/ID).
func DiagnoseStorage(st []Storage, sc Scope) []finding.Finding {
	var out []finding.Finding
	for _, s := range st {
		if !s.Down() {
			continue
		}
		mount := ""
		if MountedType(s.Type) {
			mount = "/mnt/pve/" + s.Name
		}
		out = append(out, mk("FM-C6", finding.High, "storage "+s.Name,
			fmt.Sprintf("Proxmox storage %s (%s) is %s on %s: PVE cannot reach it, so guests, backups and templates on it fail; the web UI shows it with a question mark.", s.Name, s.Type, s.Status, orUnknown(sc.Node)),
			finding.Evidence{
				Lines: []finding.Line{{Source: "pvesm status", Text: fmt.Sprintf("%s %s %s", s.Name, s.Type, s.Status)}},
				Vars:  sc.vars("storage", s.Name, "fstype", s.Type, "mount", mount),
			}))
	}
	return out
}

// MountedType reports whether PVE mounts a storage of this type under
// /mnt/pve/ID.
func MountedType(t string) bool {
	switch t {
	case "nfs", "cifs", "cephfs", "glusterfs":
		return true
	}
	return false
}

// GuestLock is a lock found in a guest's config.
type GuestLock struct {
	Guest string // VMID / CTID
	// Kind is "qemu" or "lxc".
	Kind, Node, Lock string
	// Since is the config file's modification time: the lock was set
	// then or earlier.
	Since time.Time
}

// StaleLockAge is how long a lock may be held before it is reported: a
// backup, clone or migration holds it legitimately while it runs.
const StaleLockAge = time.Hour

// DiagnoseLocks is FM-D1: guest config locks held longer than
// StaleLockAge. "suspended" is the state of a hibernated VM, not a stuck
// task, and is left alone.
func DiagnoseLocks(locks []GuestLock, sc Scope) []finding.Finding {
	var out []finding.Finding
	for _, l := range locks {
		if l.Lock == "" || l.Lock == "suspended" {
			continue
		}
		held := sc.Now.Sub(l.Since)
		if !l.Since.IsZero() && held < StaleLockAge {
			continue
		}
		tool, what := "qm", "VM"
		if l.Kind == "lxc" {
			tool, what = "pct", "CT"
		}
		heldFor := "an unknown time"
		if !l.Since.IsZero() {
			heldFor = finding.HumanDuration(held)
		}
		f := mk("FM-D1", finding.Low, "guest "+l.Guest,
			fmt.Sprintf("%s %s on %s has been locked (%s) for %s: backups, snapshots, migrations and config changes of it fail with \"%s is locked (%s)\" until `%s unlock %s`.", what, l.Guest, l.Node, l.Lock, heldFor, what, l.Lock, tool, l.Guest),
			finding.Evidence{Vars: sc.vars("guest", l.Guest, "guest_kind", l.Kind, "lock", l.Lock, "lock_held", "config", "held_for", heldFor, "node", l.Node)})
		if !l.Since.IsZero() {
			t := l.Since
			f.Since = &t
			f.Evidence.Figures = []finding.Figure{{Name: "lock held", Value: held.Seconds(), Unit: "s", Source: "mtime of the guest config"}}
			f.Evidence.Notes = []string{"The time is the config file's last change: the lock is at least this old."}
		}
		out = append(out, f)
	}
	return out
}

// ServiceOrder is the order the seed restarts PVE's services in: stop
// top-down (pveproxy first), start bottom-up (corosync first).
var ServiceOrder = []string{"pveproxy", "spiceproxy", "pvestatd", "pvedaemon", "pve-ha-crm", "pve-ha-lrm", "pve-cluster", "corosync"}

// UnitState is one unit as `systemctl show` describes it.
type UnitState struct {
	Name, Load, Active, Sub string
}

// DiagnoseServices is FM-D2: PVE's own services that are loaded but not
// running. One finding names them all, with the lowest one in the stack
// (the one to start first) in Vars["service"].
func DiagnoseServices(units []UnitState, sc Scope) []finding.Finding {
	down := map[string]UnitState{}
	for _, u := range units {
		name := strings.TrimSuffix(u.Name, ".service")
		if u.Load == "not-found" || u.Load == "" || u.Active == "active" || u.Active == "reloading" || u.Active == "activating" {
			continue
		}
		down[name] = u
	}
	if len(down) == 0 {
		return nil
	}
	var names []string
	lowest := ""
	for i := len(ServiceOrder) - 1; i >= 0; i-- {
		if _, ok := down[ServiceOrder[i]]; ok {
			names = append(names, ServiceOrder[i])
			if lowest == "" {
				lowest = ServiceOrder[i]
			}
		}
	}
	for n := range down {
		if !containsStr(names, n) {
			names = append(names, n)
			if lowest == "" {
				lowest = n
			}
		}
	}
	ev := finding.Evidence{Vars: sc.vars("service", lowest)}
	for _, n := range names {
		u := down[n]
		ev.Consumers = append(ev.Consumers, finding.Consumer{Kind: "service", Name: n + ".service", Value: 1, Unit: u.Active + "/" + u.Sub})
	}
	ev.Notes = []string{"Restart order: stop top-down (" + strings.Join(ServiceOrder, ", ") + "), start bottom-up; guests keep running meanwhile."}
	return []finding.Finding{mk("FM-D2", finding.Medium, "Proxmox services on "+orUnknown(sc.Node),
		fmt.Sprintf("Proxmox services down on %s: %s. The web UI and qm/pct/pvesh on this node fail or hang; running guests are not affected.", orUnknown(sc.Node), strings.Join(names, ", ")), ev)}
}

// ParseUnitStates reads `systemctl show -p Id -p LoadState -p ActiveState
// -p SubState UNIT…`: blocks of KEY=value separated by blank lines.
func ParseUnitStates(text string) []UnitState {
	var out []UnitState
	var cur UnitState
	flush := func() {
		if cur.Name != "" {
			out = append(out, cur)
		}
		cur = UnitState{}
	}
	for _, l := range lines(text) {
		if strings.TrimSpace(l) == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok {
			continue
		}
		switch k {
		case "Id":
			if cur.Name != "" {
				flush()
			}
			cur.Name = v
		case "LoadState":
			cur.Load = v
		case "ActiveState":
			cur.Active = v
		case "SubState":
			cur.Sub = v
		}
	}
	flush()
	return out
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func itoa(v int) string { return strconv.Itoa(v) }

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func orUnknown(s string) string {
	if s == "" {
		return "this node"
	}
	return s
}
