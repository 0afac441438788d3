package pve

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
)

// Guest is where a guest's config lives and what it holds.
type Guest struct {
	ID   string
	Kind string // qemu or lxc
	Node string
	Conf GuestConfig
}

// HAConfig is the HA and replication configuration of a cluster, as read
// from /etc/pve: ha/resources.cfg, ha/groups.cfg (PVE ≤ 8), ha/rules.cfg
// (PVE 9), replication.cfg and storage.cfg, plus the guests' configs.
type HAConfig struct {
	Resources, Groups, Rules, Replication, Storage []Section
	Guests                                         map[string]Guest
	// Nodes are the cluster's node names (for a resource HA may place
	// anywhere).
	Nodes []string
}

// nodePrio is one node of a group or rule with its priority.
type nodePrio struct {
	Node string
	Prio int
}

// parseNodes reads "pve1:2,pve2:1,pve3" (priority 0 when left out).
func parseNodes(s string) []nodePrio {
	var out []nodePrio
	for _, it := range strings.Split(s, ",") {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		n, p, _ := strings.Cut(it, ":")
		prio, _ := strconv.Atoi(p)
		out = append(out, nodePrio{Node: n, Prio: prio})
	}
	return out
}

// placement is where HA may run a resource: the group or node-affinity
// rule that places it, and its nodes; empty nodes means anywhere.
func (c *HAConfig) placement(sid string, res Section) (kind, name, spec string, nodes []nodePrio) {
	for _, r := range c.Rules {
		if r.Type != "node-affinity" || r.Props["disable"] == "1" {
			continue
		}
		for _, s := range strings.Split(r.Props["resources"], ",") {
			if strings.TrimSpace(s) == sid {
				return "rule", r.ID, r.Props["nodes"], parseNodes(r.Props["nodes"])
			}
		}
	}
	if g := res.Props["group"]; g != "" {
		for _, s := range c.Groups {
			if s.ID == g {
				return "group", g, s.Props["nodes"], parseNodes(s.Props["nodes"])
			}
		}
		return "group", g, "", nil
	}
	return "", "", "", nil
}

// DiagnoseHAReplication is FM-D3: every HA guest with disks on local
// storage whose failover node (the node HA prefers after the one it runs
// on) holds no replica of them. Proxmox does not cross-check the two.
func DiagnoseHAReplication(c *HAConfig, sc Scope) []finding.Finding {
	shared := SharedStorages(c.Storage)
	jobs := map[string][]Section{}
	for _, j := range c.Replication {
		if j.Props["disable"] == "1" || j.Props["remove_job"] != "" {
			continue
		}
		g, _, _ := strings.Cut(j.ID, "-")
		jobs[g] = append(jobs[g], j)
	}
	var out []finding.Finding
	for _, res := range c.Resources {
		if res.Type != "vm" && res.Type != "ct" {
			continue
		}
		if st := res.Props["state"]; st == "ignored" || st == "disabled" || st == "stopped" {
			continue
		}
		sid := res.Type + ":" + res.ID
		g, ok := c.Guests[res.ID]
		if !ok {
			continue
		}
		var local []string
		for _, d := range g.Conf.Disks {
			if d.Replicate && !shared[d.Storage] {
				local = append(local, d.Storage+":"+d.Volume)
			}
		}
		if len(local) == 0 {
			continue // on shared storage: every node sees its disks
		}
		targets := map[string]string{} // node → job
		var targetList []string
		for _, j := range jobs[res.ID] {
			targets[j.Props["target"]] = j.ID
			targetList = append(targetList, j.Props["target"])
		}
		sort.Strings(targetList)
		kind, name, spec, nodes := c.placement(sid, res)
		cands := failoverNodes(nodes, c.Nodes, g.Node)
		var lacking []string
		for _, n := range cands {
			if _, ok := targets[n]; !ok {
				lacking = append(lacking, n)
			}
		}
		if len(lacking) == 0 {
			continue
		}
		replTarget, replJob := "", ""
		if len(targetList) > 0 {
			replTarget, replJob = targetList[0], targets[targetList[0]]
		}
		where := "HA may restart it on any node"
		if name != "" {
			where = fmt.Sprintf("HA group/rule %s (nodes %s) would restart it on", name, orUnknown(spec))
		} else {
			where += ", including"
		}
		repl := "it is not replicated anywhere"
		if replTarget != "" {
			repl = fmt.Sprintf("it is replicated only to %s (job %s)", strings.Join(targetList, ", "), replJob)
		}
		f := mk("FM-D3", finding.Catastrophic, "guest "+res.ID,
			fmt.Sprintf("HA guest %s runs on %s with its disks on local storage (%s), but %s: %s %s, where its disks do not exist, so a failover would fail to start it.",
				sid, g.Node, strings.Join(local, ", "), repl, where, strings.Join(lacking, ", ")),
			finding.Evidence{
				Vars: sc.vars("guest", res.ID, "sid", sid, "node", g.Node, "repl_job", replJob, "repl_target", replTarget,
					"ha_group", name, "ha_nodes", spec, "ha_preferred", lacking[0], "placement", kind),
				Notes: []string{"Failover candidates (the nodes of the highest priority after " + g.Node + "): " + strings.Join(cands, ", ") + "; replica on: " + orNone(targetList) + "."},
			})
		if g.Kind == "lxc" {
			f.Evidence.Vars["guest_kind"] = "lxc"
		} else {
			f.Evidence.Vars["guest_kind"] = "qemu"
		}
		out = append(out, f)
	}
	return out
}

// failoverNodes are the nodes HA chooses among when current fails: those
// of the highest priority left in the group or rule, or every other node
// when nothing places the resource.
func failoverNodes(nodes []nodePrio, all []string, current string) []string {
	var out []string
	if len(nodes) == 0 {
		for _, n := range all {
			if n != current {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out
	}
	best := -1 << 31
	for _, n := range nodes {
		if n.Node != current && n.Prio > best {
			best = n.Prio
		}
	}
	for _, n := range nodes {
		if n.Node != current && n.Prio == best {
			out = append(out, n.Node)
		}
	}
	sort.Strings(out)
	return out
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}
