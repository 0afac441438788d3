package kube

import (
	"fmt"
	"strings"
	"time"
)

// Parsed is what a text parser read: the cluster as far as the paste
// shows it, and notes about the reading (lines skipped, what is missing).
type Parsed struct {
	Cluster Cluster
	Notes   []string
	// Command is the command line a prompt in the paste named.
	Command string
}

// ParseGetPods reads `kubectl get pods` output: plain, wide (-o wide),
// all namespaces (-A), with or without its header, `--watch` (the last
// line of a pod wins), and `kubectl get all`'s pod/NAME lines.
func ParseGetPods(text string, now time.Time) (Parsed, error) {
	lines, cmd := cleanLines(text)
	out := Parsed{Command: cmd, Cluster: Cluster{Source: "kubectl get pods"}}
	var cols []string // header columns, when seen
	index := map[string]int{}
	seen := map[string]int{}
	skipped := 0
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		f := headerFields(l)
		if len(f) >= 3 && f[0] == "NAME" || len(f) >= 4 && f[0] == "NAMESPACE" && f[1] == "NAME" {
			if !contains(f, "STATUS") {
				cols = nil // another table (services, deployments): not pods
				index = map[string]int{}
				continue
			}
			cols = f
			index = map[string]int{}
			for j, c := range f {
				index[c] = j
			}
			continue
		}
		row := fields(l)
		p, ok := podRow(row, cols, index, now)
		if !ok && i+1 < len(lines) {
			// A terminal may have wrapped the line: try it joined with
			// the next one.
			if p2, ok2 := podRow(fields(l+" "+lines[i+1]), cols, index, now); ok2 {
				p, ok = p2, true
				i++
			}
		}
		if !ok {
			skipped++
			continue
		}
		key := p.Ref()
		if j, dup := seen[key]; dup {
			out.Cluster.Pods[j] = p
			continue
		}
		seen[key] = len(out.Cluster.Pods)
		out.Cluster.Pods = append(out.Cluster.Pods, p)
	}
	if len(out.Cluster.Pods) == 0 {
		return out, fmt.Errorf("no pod line found (want NAME READY STATUS RESTARTS AGE)")
	}
	if skipped > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d %s not read as pods.", skipped, plural(skipped, "line was", "lines were")))
	}
	if cols == nil {
		out.Notes = append(out.Notes, "No header line: columns were taken in kubectl's default order.")
	}
	out.Notes = append(out.Notes, "Ages are taken as of now; a table only shows each pod's STATUS, so reasons, exit codes and messages are in `kubectl describe pod` or `-o json`.")
	return out, nil
}

// podRow reads one row, by the header when there is one, else by shape:
// [NAMESPACE] NAME READY STATUS RESTARTS AGE [IP NODE …].
func podRow(row, cols []string, index map[string]int, now time.Time) (Pod, bool) {
	get := func(name string, fallback int) string {
		if cols != nil {
			j, ok := index[name]
			if !ok || j >= len(row) {
				return ""
			}
			return row[j]
		}
		if fallback < len(row) {
			return row[fallback]
		}
		return ""
	}
	off := 0
	if cols == nil {
		switch {
		case len(row) >= 5 && reREADY.MatchString(row[1]):
		case len(row) >= 6 && reREADY.MatchString(row[2]):
			off = 1
		default:
			return Pod{}, false
		}
	} else if len(row) < min(len(cols), 5) {
		return Pod{}, false
	}
	ns := ""
	if off == 1 || (cols != nil && index["NAMESPACE"] == 0 && cols[0] == "NAMESPACE") {
		ns = get("NAMESPACE", 0)
	}
	name, ready, status := get("NAME", off), get("READY", off+1), get("STATUS", off+2)
	if name == "" || !reREADY.MatchString(ready) || status == "" {
		return Pod{}, false
	}
	restarts, ok := parseRestarts(get("RESTARTS", off+3))
	if !ok {
		return Pod{}, false
	}
	age, hasAge := ParseAge(get("AGE", off+4))
	node := get("NODE", off+6)
	return PodFromStatus(ns, name, status, restarts, age, hasAge, node, now), true
}

// ParseGetNodes reads `kubectl get nodes` (plain or -o wide), with or
// without its header.
func ParseGetNodes(text string) (Parsed, error) {
	lines, cmd := cleanLines(text)
	out := Parsed{Command: cmd, Cluster: Cluster{Source: "kubectl get nodes"}}
	var index map[string]int
	skipped := 0
	for _, l := range lines {
		f := headerFields(l)
		if len(f) >= 3 && f[0] == "NAME" && f[1] == "STATUS" {
			index = map[string]int{}
			for j, c := range f {
				index[c] = j
			}
			continue
		}
		row := strings.Fields(l)
		if len(row) < 3 || !nodeStatusWord(row[1]) {
			skipped++
			continue
		}
		n := Node{Name: strings.TrimPrefix(row[0], "node/"), Status: row[1]}
		if strings.Contains(row[1], "SchedulingDisabled") {
			n.Unschedulable = true
		}
		at := func(name string, fallback int) string {
			j := fallback
			if index != nil {
				var ok bool
				if j, ok = index[name]; !ok {
					return ""
				}
			}
			if j < len(row) {
				return row[j]
			}
			return ""
		}
		if r := at("ROLES", 2); r != "" && r != "<none>" {
			n.Roles = strings.Split(r, ",")
		}
		n.Version = at("VERSION", 4)
		if ip := at("INTERNAL-IP", 5); ip != "" && ip != "<none>" {
			n.InternalIPs = []string{ip}
		}
		if ip := at("EXTERNAL-IP", 6); ip != "" && ip != "<none>" {
			n.ExternalIPs = []string{ip}
		}
		out.Cluster.Nodes = append(out.Cluster.Nodes, n)
	}
	if len(out.Cluster.Nodes) == 0 {
		return out, fmt.Errorf("no node line found (want NAME STATUS ROLES AGE VERSION)")
	}
	if skipped > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d %s not read as nodes.", skipped, plural(skipped, "line was", "lines were")))
	}
	out.Notes = append(out.Notes, "A table shows only each node's STATUS: since when and why are in `kubectl describe node`.")
	return out, nil
}

func nodeStatusWord(s string) bool {
	first, _, _ := strings.Cut(s, ",")
	switch first {
	case "Ready", "NotReady", "Unknown", "SchedulingDisabled":
		return true
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
