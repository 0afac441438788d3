package storage

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
)

// The FM-D8 cases, as the runbook's sections name them (var "case").
const (
	DRBDAllOutdated  = "outdated"     // every copy Outdated: nobody may be Primary
	DRBDHalfOpen     = "wfbitmap"     // stuck at WFBitMapS/T: reconnect from the healthy side
	DRBDStandAlone   = "standalone"   // split brain or refused connection
	DRBDResync       = "resync"       // a resync runs (or stalls)
	DRBDInconsistent = "inconsistent" // local Inconsistent/Outdated, no resync
	DRBDDiskless     = "diskless"     // local disk missing or failed
	DRBDDisconnected = "disconnected" // a peer is not connected
	DRBDPeerDisk     = "peer-disk"    // a connected peer's disk is not UpToDate
)

// DRBDSource names where a view came from, for the evidence.
type DRBDSource string

// DiagnoseDRBD judges each resource as this node sees it. prev is an
// earlier reading of the same node (nil when there is none): with it, a
// resync is judged moving or stalled and a half-open state as lasting.
// source is the command that printed rs.
func DiagnoseDRBD(rs, prev []DRBDResource, source string) []finding.Finding {
	var out []finding.Finding
	for _, r := range rs {
		var before *DRBDResource
		for i := range prev {
			if prev[i].Name == r.Name && prev[i].Minor == r.Minor {
				before = &prev[i]
			}
		}
		if f, ok := diagnoseResource(r, before, source); ok {
			out = append(out, f)
		}
	}
	return dedupe(out)
}

// dedupe keeps one finding per key, the worst (the later on a tie).
func dedupe(fs []finding.Finding) []finding.Finding {
	idx := map[string]int{}
	var out []finding.Finding
	for _, f := range fs {
		k := finding.MakeKey(f.Mode, f.Subject)
		f.Key = k
		if i, ok := idx[k]; ok {
			if f.Severity >= out[i].Severity {
				out[i] = f
			}
			continue
		}
		idx[k] = len(out)
		out = append(out, f)
	}
	return out
}

// DRBDSubject is how findings name a resource: its name, or its minor
// when DRBD 8's /proc/drbd is all there is.
func DRBDSubject(r DRBDResource) string {
	if r.Name != "" {
		return "drbd " + r.Name
	}
	return fmt.Sprintf("drbd minor %d", r.Minor)
}

func diagnoseResource(r DRBDResource, prev *DRBDResource, source string) (finding.Finding, bool) {
	name := r.Name
	if name == "" {
		name = fmt.Sprintf("minor %d", r.Minor)
	}
	local := "UpToDate"
	client := ""
	quorumLost := false
	for _, v := range r.Volumes {
		if v.Disk != "UpToDate" && local == "UpToDate" {
			local, client = v.Disk, v.Client
		}
		if v.Quorum == "no" {
			quorumLost = true
		}
	}
	if len(r.Volumes) == 0 {
		local = "unknown"
	}
	// Copies that are UpToDate, here and on the peers this node sees.
	copies := 0
	if local == "UpToDate" {
		copies++
	}
	var upPeers []string
	for _, p := range r.Peers {
		for _, pv := range p.Volumes {
			if pv.PeerDisk == "UpToDate" {
				upPeers = append(upPeers, pname(&p))
				copies++
				break
			}
		}
	}
	localClient := local == "Diskless" && client == "yes"

	type hit struct {
		cas   string
		peer  *DRBDPeer
		pv    *DRBDPeerVolume
		sev   finding.Severity
		words string
	}
	var h *hit
	set := func(c string, p *DRBDPeer, pv *DRBDPeerVolume, sev finding.Severity, words string) {
		if h == nil {
			h = &hit{c, p, pv, sev, words}
		}
	}
	peerState := func(p *DRBDPeer) (*DRBDPeerVolume, string) {
		for i := range p.Volumes {
			pv := &p.Volumes[i]
			return pv, pv.PeerDisk
		}
		return nil, ""
	}
	// 1. Every copy Outdated: the seed's first pattern.
	if (local == "Outdated" || local == "Consistent") && copies == 0 && len(r.Peers) > 0 {
		allOut := true
		for _, p := range r.Peers {
			if _, d := peerState(&p); d != "Outdated" && d != "Consistent" && d != "DUnknown" {
				allOut = false
			}
		}
		if allOut {
			var names []string
			for _, p := range r.Peers {
				_, d := peerState(&p)
				names = append(names, pname(&p)+" "+d)
			}
			set(DRBDAllOutdated, &r.Peers[0], nil, finding.Catastrophic,
				fmt.Sprintf("DRBD resource %s has no UpToDate copy: the disk here is %s and the peers are %s, so no node may become Primary and the volume is unusable.", name, local, strings.Join(names, ", ")))
		}
	}
	// 2. Half-open: one side waits for the bitmap exchange forever.
	for i := range r.Peers {
		p := &r.Peers[i]
		for j := range p.Volumes {
			pv := &p.Volumes[j]
			if pv.Replication == "WFBitMapS" || pv.Replication == "WFBitMapT" {
				set(DRBDHalfOpen, p, pv, finding.High,
					fmt.Sprintf("DRBD resource %s is stuck half-open towards %s (replication:%s peer-disk:%s): the bitmap exchange never finished, so nothing replicates; reconnect it on %s, the side that looks healthy.", name, pname(p), pv.Replication, pv.PeerDisk, pname(p)))
			}
		}
	}
	// 3. StandAlone: split brain, or a connection DRBD refused.
	for i := range r.Peers {
		p := &r.Peers[i]
		if p.Connection == "StandAlone" {
			pv, _ := peerState(p)
			set(DRBDStandAlone, p, pv, finding.High,
				fmt.Sprintf("DRBD resource %s is StandAlone towards %s: the nodes stopped replicating (split brain or a refused connection) and will not reconnect by themselves.", name, pname(p)))
		}
	}
	// 4. A resync runs: moving, stalled, or not yet known.
	for i := range r.Peers {
		p := &r.Peers[i]
		for j := range p.Volumes {
			pv := &p.Volumes[j]
			if !syncing(pv.Replication) {
				continue
			}
			words := fmt.Sprintf("DRBD resource %s is resyncing with %s (%s", name, pname(p), pv.Replication)
			if pv.Done >= 0 {
				words += fmt.Sprintf(", %.1f%% done", pv.Done)
			}
			if pv.OutOfSyncKiB > 0 {
				words += ", " + finding.HumanBytes(float64(pv.OutOfSyncKiB)*1024) + " out of sync"
			}
			words += ")"
			sev := finding.Medium
			switch moved := resyncMoved(prev, p.Name, pv); {
			case strings.HasPrefix(pv.Replication, "Paused"):
				sev = finding.High
				words += fmt.Sprintf(": the resync is paused (resync-suspended:%s).", orDefault(pv.ResyncSuspended, "?"))
			case moved == 1:
				words += ": it is moving; until it ends there is one good copy."
			case moved == 0:
				sev = finding.High
				words += ": it has not moved between two readings, the resync is stalled."
			default:
				words += ": one reading cannot tell whether it moves."
			}
			set(DRBDResync, p, pv, sev, words)
		}
	}
	// 5. The local disk is not usable and nothing repairs it.
	switch {
	case local == "Inconsistent" || local == "Outdated" && copies > 0:
		set(DRBDInconsistent, nil, nil, finding.High,
			fmt.Sprintf("DRBD resource %s: the disk here is %s and no resync is running to repair it.", name, local))
	case local == "Failed" || local == "Detaching" || local == "Diskless" && client == "no":
		set(DRBDDiskless, nil, nil, finding.High,
			fmt.Sprintf("DRBD resource %s has lost its local disk (disk:%s): this node reads and writes over the network only.", name, local))
	case local == "Diskless" && client == "":
		set(DRBDDiskless, nil, nil, finding.Medium,
			fmt.Sprintf("DRBD resource %s has no local disk here (disk:Diskless); if this node is not a diskless client by design, its backing disk is gone.", name))
	}
	// 6. A peer is not connected, or its disk is not UpToDate.
	for i := range r.Peers {
		p := &r.Peers[i]
		if p.Connection != "Connected" {
			set(DRBDDisconnected, p, firstPV(p), finding.High,
				fmt.Sprintf("DRBD resource %s is not connected to %s (connection:%s): nothing replicates to it.", name, pname(p), p.Connection))
		}
	}
	for i := range r.Peers {
		p := &r.Peers[i]
		for j := range p.Volumes {
			pv := &p.Volumes[j]
			d := pv.PeerDisk
			if d == "UpToDate" || d == "" || d == "Diskless" && pv.PeerClient != "no" {
				continue
			}
			set(DRBDPeerDisk, p, pv, finding.High,
				fmt.Sprintf("DRBD resource %s: the disk of %s is %s, so it holds no good copy.", name, pname(p), d))
		}
	}
	if h == nil && quorumLost {
		set(DRBDDisconnected, nil, nil, finding.High, fmt.Sprintf("DRBD resource %s has lost quorum here: I/O is frozen or fails.", name))
	}
	if h == nil {
		return finding.Finding{}, false
	}
	if copies <= 1 && h.sev < finding.Catastrophic && !(h.cas == DRBDResync && h.sev == finding.Medium) && !localClient {
		h.sev = finding.Catastrophic
	}
	vars := map[string]string{"resource": r.Name, "case": h.cas, "disk_state": local}
	if r.Node != "" {
		vars["node"] = r.Node
	}
	peer := h.peer
	if peer == nil && len(r.Peers) > 0 {
		peer = &r.Peers[0]
	}
	if peer != nil {
		vars["peer"], vars["connection"] = peer.Name, peer.Connection
		pv := h.pv
		if pv == nil {
			pv = firstPV(peer)
		}
		if pv != nil {
			vars["peer_disk"], vars["replication"] = pv.PeerDisk, pv.Replication
		}
	}
	if r.Name == "" {
		// DRBD 8's /proc/drbd names no resource; the runbook keeps its
		// placeholder rather than guess.
		delete(vars, "resource")
		vars["minor"] = fmt.Sprint(r.Minor)
	}
	if vars["peer"] == "" {
		delete(vars, "peer")
	}
	f := finding.Finding{
		Mode: "FM-D8", Severity: h.sev, Subject: DRBDSubject(r), Summary: h.words,
		Evidence: finding.Evidence{Vars: vars, Lines: drbdLines(r, source)},
	}
	if copies == 0 {
		f.Evidence.Notes = append(f.Evidence.Notes, "No UpToDate copy is visible from this node.")
	} else if copies == 1 && !localClient {
		who := "this node"
		if local != "UpToDate" && len(upPeers) > 0 {
			who = upPeers[0]
		}
		f.Evidence.Notes = append(f.Evidence.Notes, "The only UpToDate copy visible from here is on "+who+": one more failure loses the data.")
	}
	if quorumLost {
		f.Evidence.Notes = append(f.Evidence.Notes, "Quorum is lost here (quorum:no): I/O on this node is frozen or fails.")
	}
	if h.cas == DRBDAllOutdated || h.cas == DRBDStandAlone {
		f.Evidence.Notes = append(f.Evidence.Notes, "Before forcing anything, compare the nodes: the one with the newest data must win, and the others' changes since the split are lost.")
	}
	for _, p := range r.Peers {
		for _, pv := range p.Volumes {
			if pv.OutOfSyncKiB > 0 {
				f.Evidence.Figures = append(f.Evidence.Figures, finding.Figure{Name: "out of sync with " + pname(&p), Value: float64(pv.OutOfSyncKiB) * 1024, Unit: "bytes", Source: source})
			}
			if pv.Done >= 0 {
				f.Evidence.Figures = append(f.Evidence.Figures, finding.Figure{Name: "resync with " + pname(&p), Value: pv.Done, Limit: 100, Unit: "%", Source: source})
			}
		}
	}
	return f, true
}

// pname is how a sentence names a peer; DRBD 8's /proc/drbd has no name
// for it.
func pname(p *DRBDPeer) string {
	if p.Name == "" {
		return "the peer"
	}
	return p.Name
}

func firstPV(p *DRBDPeer) *DRBDPeerVolume {
	if len(p.Volumes) == 0 {
		return nil
	}
	return &p.Volumes[0]
}

// resyncMoved compares a resync with the earlier reading: 1 it moved, 0
// it did not, -1 there is nothing to compare with.
func resyncMoved(prev *DRBDResource, peer string, now *DRBDPeerVolume) int {
	if prev == nil {
		return -1
	}
	for _, p := range prev.Peers {
		if p.Name != peer {
			continue
		}
		for _, pv := range p.Volumes {
			if pv.Volume != now.Volume {
				continue
			}
			switch {
			case !syncing(pv.Replication):
				return 1 // it started between the readings
			case pv.Done >= 0 && now.Done >= 0 && pv.Done != now.Done:
				return 1
			case pv.OutOfSyncKiB >= 0 && now.OutOfSyncKiB >= 0 && pv.OutOfSyncKiB != now.OutOfSyncKiB:
				return 1
			}
			return 0
		}
	}
	return -1
}

// drbdLines renders a view the way drbdadm status prints it, for the
// evidence.
func drbdLines(r DRBDResource, source string) []finding.Line {
	var ls []finding.Line
	add := func(s string) { ls = append(ls, finding.Line{Source: source, Text: s}) }
	add(DRBDSubject(r)[len("drbd "):] + " role:" + r.Role)
	for _, v := range r.Volumes {
		s := "  disk:" + v.Disk
		if len(r.Volumes) > 1 {
			s = fmt.Sprintf("  volume:%d disk:%s", v.Volume, v.Disk)
		}
		add(s)
	}
	for _, p := range r.Peers {
		s := "  " + orDefault(p.Name, "(peer)")
		if p.Role != "" {
			s += " role:" + p.Role
		}
		if p.Connection != "Connected" {
			s += " connection:" + p.Connection
		}
		add(s)
		for _, pv := range p.Volumes {
			s := "    "
			if len(p.Volumes) > 1 {
				s += fmt.Sprintf("volume:%d ", pv.Volume)
			}
			if pv.Replication != "Established" && pv.Replication != "Off" && pv.Replication != "" {
				s += "replication:" + pv.Replication + " "
			}
			s += "peer-disk:" + pv.PeerDisk
			if pv.Done >= 0 {
				s += fmt.Sprintf(" done:%.2f", pv.Done)
			}
			add(s)
		}
		if len(ls) > 12 {
			break
		}
	}
	return ls
}

// LatestViews keeps, of several readings pasted together, the last one of
// each node's view of a resource (a node's view is told apart by the set
// of peers it lists), and names each view's node when the views of the
// others reveal it: the member of the resource that a view does not list
// as a peer.
func LatestViews(rs []DRBDResource) []DRBDResource {
	key := func(r DRBDResource) string {
		var ps []string
		for _, p := range r.Peers {
			ps = append(ps, p.Name)
		}
		slices.Sort(ps)
		return fmt.Sprintf("%s/%d/%s", r.Name, r.Minor, strings.Join(ps, ","))
	}
	last := map[string]int{}
	for i, r := range rs {
		last[key(r)] = i
	}
	var out []DRBDResource
	for i, r := range rs {
		if last[key(r)] == i {
			out = append(out, r)
		}
	}
	// Node names: each resource's members are the union of the peers of
	// its views; a view's own node is the one member it does not list.
	members := map[string]map[string]bool{}
	for _, r := range out {
		if members[r.Name] == nil {
			members[r.Name] = map[string]bool{}
		}
		for _, p := range r.Peers {
			members[r.Name][p.Name] = true
		}
	}
	for i, r := range out {
		if r.Node != "" {
			continue
		}
		var missing []string
		for m := range members[r.Name] {
			if !slices.ContainsFunc(r.Peers, func(p DRBDPeer) bool { return p.Name == m }) {
				missing = append(missing, m)
			}
		}
		if len(missing) == 1 {
			out[i].Node = missing[0]
		}
	}
	return out
}
