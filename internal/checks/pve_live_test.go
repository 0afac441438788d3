package checks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/testload"
)

// childEnv marks the test binary re-run inside one node's namespaces, where
// it runs the Proxmox/corosync checks live and prints their findings.
const childEnv = "HINOMI_PVE_LIVE_CHILD"

// TestPVELiveChild is the agent's side: in one node's network and mount
// namespaces (corosync.conf and corosync's log bound at their usual
// paths), it runs the pve-* checks against the live host and writes the
// findings as JSON. It does nothing in a normal test run.
func TestPVELiveChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestPVELiveCorosync inside a node's namespaces")
	}
	ctx := t.Context()
	src := host.Live()
	procs, err := proctable.Scan(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	env := &checks.Env{Src: src, Host: "ignored-hostname", Procs: procs, Now: time.Now(),
		Mounts: checks.NewMountProber(2 * time.Second), Log: slog.New(slog.DiscardHandler)}
	var cs []checks.Check
	for _, c := range checks.All() {
		if strings.HasPrefix(c.Name, "pve-") {
			cs = append(cs, c)
		}
	}
	rep := checks.Run(ctx, env, cs)
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		t.Fatal(err)
	}
}

// TestPVELiveCorosync runs a real three-node corosync cluster (Debian's
// corosync 3, knet, votequorum) in three network namespaces joined by a
// bridge the test makes, each corosync in its own mount namespace (its
// /run and /var/lib/corosync). It cuts one node's link, then a second's,
// and asserts what the pve checks, run live in each node's namespaces
// like an agent there, report: the survivors quorate with pve3 missing,
// the cut node without quorum, then no quorum anywhere.
func TestPVELiveCorosync(t *testing.T) {
	start := time.Now()
	nodes := testload.Corosync(t, "pvelive", 3).Nodes

	// All three join: every node quorate with three votes, no finding.
	// A loaded machine may starve corosync while it forms the cluster:
	// one late token is then reported, at low severity, and nothing else.
	for _, n := range nodes {
		n.WaitQuorum(t, "Total votes:      3")
	}
	for i, fs := range childrenFindings(t, nodes...) {
		for _, f := range fs {
			if f.Severity > finding.Low || f.Mode != "FM-D6" || f.Evidence.Vars["token_losses"] == "" {
				t.Errorf("pve%d, healthy cluster: %+v", nodes[i].ID, f)
			}
		}
	}

	// Cut pve3's link: pve1 and pve2 stay quorate with pve3 missing; pve3
	// is alone without quorum.
	cutLink(t, nodes[2])
	nodes[0].WaitQuorum(t, "Total votes:      2")
	nodes[2].WaitQuorum(t, "Activity blocked")
	after := childrenFindings(t, nodes...)
	for i, n := range nodes[:2] {
		fs := after[i]
		d5 := only(t, fs, "FM-D5")
		if d5.Severity != finding.High || d5.Subject != "cluster pvelive" || d5.Evidence.Vars["missing"] != "pve3" || d5.Evidence.Vars["node"] != fmt.Sprintf("pve%d", n.ID) {
			t.Errorf("pve%d after cutting pve3: %+v", n.ID, d5)
		}
		if d6 := only(t, fs, "FM-D6"); d6.Evidence.Vars["peer_name"] != "pve3" {
			t.Errorf("pve%d: network finding blames %q, want pve3: %s", n.ID, d6.Evidence.Vars["peer_name"], d6.Summary)
		}
	}
	if d5 := only(t, after[2], "FM-D5"); d5.Severity != finding.Catastrophic || d5.Evidence.Vars["missing"] != "pve1,pve2" {
		t.Errorf("pve3, cut off: %+v", d5)
	}

	// Cut pve2 as well: pve1 alone has no quorum.
	cutLink(t, nodes[1])
	nodes[0].WaitQuorum(t, "Activity blocked")
	d5 := only(t, childrenFindings(t, nodes[0])[0], "FM-D5")
	if d5.Severity != finding.Catastrophic || d5.Evidence.Vars["missing"] != "pve2,pve3" || d5.Evidence.Vars["total_votes"] != "1" {
		t.Errorf("pve1 alone: %+v", d5)
	}
	t.Logf("live corosync scenario took %s", time.Since(start).Round(100*time.Millisecond))
}

// only returns the one finding of mode in fs, failing the test otherwise.
func only(t *testing.T, fs []finding.Finding, mode string) finding.Finding {
	t.Helper()
	var out []finding.Finding
	for _, f := range fs {
		if f.Mode == mode {
			out = append(out, f)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d %s findings in %+v", len(out), mode, fs)
	}
	return out[0]
}

// childrenFindings runs the pve checks inside each node's namespaces at
// once, as the nodes' agents would, and returns their findings in order.
func childrenFindings(t *testing.T, nodes ...*testload.CorosyncNode) [][]finding.Finding {
	t.Helper()
	out := make([][]finding.Finding, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { out[i], errs[i] = childFindings(t.Context(), n) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// childFindings runs the pve checks inside n's namespaces, with n's
// corosync.conf and log at the paths a corosync node has them.
func childFindings(ctx context.Context, n *testload.CorosyncNode) ([]finding.Finding, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := n.Command(ctx, self, "-test.run=^TestPVELiveChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pve%d child: %v\n%s\n%s", n.ID, err, out, stderr.String())
	}
	var rep checks.Report
	line, _, _ := bytes.Cut(out, []byte("\n"))
	if err := json.Unmarshal(line, &rep); err != nil {
		return nil, fmt.Errorf("pve%d child output %q: %v", n.ID, out, err)
	}
	if len(rep.Errors) > 0 {
		return nil, fmt.Errorf("pve%d: check errors %v", n.ID, rep.Errors)
	}
	return rep.Findings, nil
}

// cutLink takes a node's link down.
func cutLink(t *testing.T, n *testload.CorosyncNode) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", n.Veth, "down").CombinedOutput(); err != nil {
		t.Fatalf("cutting %s: %v\n%s", n.Name, err, out)
	}
}
