package tower

import (
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// A cluster that lost quorum, as two of its nodes report it (the finding
// the Proxmox/corosync checks make: same key, the cluster in its vars),
// pages once for the cluster, with each node's view, after waiting for
// the cluster's other nodes to report; the finding about
// one node's network stays that node's. It resolves when no node reports
// it any more.
func TestClusterFindingPagesOnce(t *testing.T) {
	p := newPolicyTower(t, "routes:\n  - {match: {kind: [finding]}, channels: [ops]}\n")
	quorum := func(node string) finding.Finding {
		return finding.Finding{Key: "FM-D5/cluster pvelive", Mode: "FM-D5", Severity: finding.Catastrophic, Subject: "cluster pvelive",
			Summary: "Cluster pvelive has no quorum on " + node + ": 1 of 3 votes present, 2 needed.", Runbook: "FM-D5",
			Evidence: finding.Evidence{Vars: map[string]string{"cluster": "pvelive", "node": node},
				Lines: []finding.Line{{Text: node + ": Quorate: No"}}}}
	}
	network := finding.Finding{Key: "FM-D6/corosync network of pve2", Mode: "FM-D6", Severity: finding.High, Subject: "corosync network of pve2",
		Summary: "Corosync on pve2 sees an unstable cluster network.", Runbook: "FM-D6",
		Evidence: finding.Evidence{Vars: map[string]string{"cluster": "pvelive", "node": "pve2"}}}
	// pve1 reports first: the page waits for the cluster's other nodes
	// (clusterWait; at least 10 s).
	p.report("pve1", quorum("pve1"))
	p.at(time.Second)
	if got := statuses(p.ops); len(got) != 0 {
		t.Fatalf("pages %q a second after the first node reported; want none before the cluster's other nodes had a cycle to report", got)
	}
	p.report("pve2", quorum("pve2"), network)
	p.at(3 * time.Second)
	p.at(12 * time.Second)
	var firing []string
	for _, s := range statuses(p.ops) {
		if strings.HasPrefix(s, "firing") {
			firing = append(firing, s)
		}
	}
	want := []string{"firing finding/cluster pvelive/FM-D5/cluster pvelive", "firing finding/cluster pvelive/FM-D6/corosync network of pve2"}
	if strings.Join(firing, "\n") != strings.Join(want, "\n") && strings.Join(firing, "\n") != want[1]+"\n"+want[0] {
		t.Fatalf("pages %q; want one for the quorum and one for pve2's network", firing)
	}
	var desc string
	for _, m := range p.ops.messages() {
		alerts, _ := m["alerts"].([]any)
		a, _ := alerts[0].(map[string]any)
		labels, _ := a["labels"].(map[string]any)
		if labels["key"] == "finding/cluster pvelive/FM-D5/cluster pvelive" {
			desc, _ = a["annotations"].(map[string]any)["description"].(string)
		}
	}
	for _, want := range []string{"Reported by pve1, pve2.", "pve1 (since", "pve2 (since", "pve1: Quorate: No", "pve2: Quorate: No"} {
		if !strings.Contains(desc, want) {
			t.Errorf("the quorum page lacks %q:\n%s", want, desc)
		}
	}
	// Quorum comes back on both nodes: the one alert resolves.
	p.report("pve1", network)
	p.report("pve2", network)
	p.at(20 * time.Second)
	resolved := 0
	for _, s := range statuses(p.ops) {
		if s == "resolved finding/cluster pvelive/FM-D5/cluster pvelive" {
			resolved++
		}
	}
	if resolved != 1 {
		t.Errorf("resolutions of the quorum alert: %d; want 1 (%q)", resolved, statuses(p.ops))
	}
}
