package checks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/testload"
)

// liveConfTemplate is the three-node cluster of the live test: knet,
// votequorum, no crypto (nothing leaves the test's bridge), a token of
// 3 s: short enough that a cut link is noticed within seconds, long
// enough that a machine loaded by the rest of the test suite does not
// lose tokens of a healthy cluster (1 s did, under CI's load).
const liveConfTemplate = `totem {
  version: 2
  cluster_name: pvelive
  transport: knet
  crypto_cipher: none
  crypto_hash: none
  token: 3000
}
nodelist {
%s}
quorum {
  provider: corosync_votequorum
}
logging {
  to_stderr: yes
  to_syslog: no
  timestamp: on
}
`

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

// liveNode is one corosync node of the live cluster.
type liveNode struct {
	id        int
	ns, veth  string
	conf, log string
	corosync  *exec.Cmd
}

// TestPVELiveCorosync runs a real three-node corosync cluster (Debian's
// corosync 3, knet, votequorum) in three network namespaces joined by a
// bridge the test makes, each corosync in its own mount namespace (its
// /run and /var/lib/corosync). It cuts one node's link, then a second's,
// and asserts what the pve checks, run live in each node's namespaces
// like an agent there, report: the survivors quorate with pve3 missing,
// the cut node without quorum, then no quorum anywhere.
func TestPVELiveCorosync(t *testing.T) {
	testload.RequireRoot(t, "network namespaces, a bridge and corosync")
	for _, tool := range []string{"corosync", "corosync-quorumtool", "ip", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI is set, so %s is required (scripts/test installs corosync)", tool)
			}
			t.Skipf("%s not installed: apt-get install -y corosync", tool)
		}
	}
	start := time.Now()
	tag := fmt.Sprintf("%d", os.Getpid()%100000)
	dir := t.TempDir()
	bridge := "pvebr" + tag
	run(t, "ip", "link", "add", bridge, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	run(t, "ip", "link", "set", bridge, "up")

	// 198.18.0.0/15 is for benchmarks; each run takes its own /24.
	subnet := fmt.Sprintf("198.18.%d", 10+os.Getpid()%200)
	var nodelist strings.Builder
	nodes := make([]*liveNode, 3)
	for i := range nodes {
		n := &liveNode{id: i + 1, ns: fmt.Sprintf("pvecs%d-%s", i+1, tag), veth: fmt.Sprintf("pvev%d-%s", i+1, tag)}
		n.conf, n.log = filepath.Join(dir, fmt.Sprintf("c%d.conf", n.id)), filepath.Join(dir, fmt.Sprintf("corosync%d.log", n.id))
		nodes[i] = n
		run(t, "ip", "netns", "add", n.ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.ns).Run() })
		run(t, "ip", "link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.ns)
		run(t, "ip", "link", "set", n.veth, "master", bridge, "up")
		run(t, "ip", "-n", n.ns, "addr", "add", fmt.Sprintf("%s.%d/24", subnet, n.id), "dev", "eth0")
		run(t, "ip", "-n", n.ns, "link", "set", "eth0", "up")
		run(t, "ip", "-n", n.ns, "link", "set", "lo", "up")
		fmt.Fprintf(&nodelist, "  node {\n    nodeid: %d\n    name: pve%d\n    ring0_addr: %s.%d\n  }\n", n.id, n.id, subnet, n.id)
	}
	conf := fmt.Sprintf(liveConfTemplate, nodelist.String())
	for _, n := range nodes {
		if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(n.log)
		if err != nil {
			t.Fatal(err)
		}
		// Its own /run and /var/lib/corosync: corosync keeps its pid
		// lock and ring ID there. Its IPC sockets are abstract, so they
		// are per network namespace already.
		n.corosync = exec.Command("ip", "netns", "exec", n.ns, "unshare", "-m", "sh", "-c",
			"mount -t tmpfs none /run && mount -t tmpfs none /var/lib/corosync && exec corosync -f -c "+n.conf)
		n.corosync.Stdout, n.corosync.Stderr = logf, logf
		if err := n.corosync.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = n.corosync.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- n.corosync.Wait() }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = n.corosync.Process.Kill()
				<-done
			}
			logf.Close()
		})
	}

	// All three join: every node quorate with three votes, no finding.
	for _, n := range nodes {
		waitQuorum(t, n, "Total votes:      3")
	}
	for i, fs := range childrenFindings(t, nodes...) {
		if len(fs) != 0 {
			t.Errorf("pve%d, healthy cluster: %+v", nodes[i].id, fs)
		}
	}

	// Cut pve3's link: pve1 and pve2 stay quorate with pve3 missing; pve3
	// is alone without quorum.
	run(t, "ip", "link", "set", nodes[2].veth, "down")
	waitQuorum(t, nodes[0], "Total votes:      2")
	waitQuorum(t, nodes[2], "Activity blocked")
	after := childrenFindings(t, nodes...)
	for i, n := range nodes[:2] {
		fs := after[i]
		d5 := only(t, fs, "FM-D5")
		if d5.Severity != finding.High || d5.Subject != "cluster pvelive" || d5.Evidence.Vars["missing"] != "pve3" || d5.Evidence.Vars["node"] != fmt.Sprintf("pve%d", n.id) {
			t.Errorf("pve%d after cutting pve3: %+v", n.id, d5)
		}
		if d6 := only(t, fs, "FM-D6"); d6.Evidence.Vars["peer_name"] != "pve3" {
			t.Errorf("pve%d: network finding blames %q, want pve3: %s", n.id, d6.Evidence.Vars["peer_name"], d6.Summary)
		}
	}
	if d5 := only(t, after[2], "FM-D5"); d5.Severity != finding.Catastrophic || d5.Evidence.Vars["missing"] != "pve1,pve2" {
		t.Errorf("pve3, cut off: %+v", d5)
	}

	// Cut pve2 as well: pve1 alone has no quorum.
	run(t, "ip", "link", "set", nodes[1].veth, "down")
	waitQuorum(t, nodes[0], "Activity blocked")
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

// waitQuorum polls the node's corosync-quorumtool until its output holds
// want, for at most 15 s.
func waitQuorum(t *testing.T, n *liveNode, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last []byte
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		last, _ = exec.CommandContext(ctx, "ip", "netns", "exec", n.ns, "corosync-quorumtool", "-s").Output()
		cancel()
		if bytes.Contains(last, []byte(want)) {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling corosync's state, bounded by the deadline
	}
	log, _ := os.ReadFile(n.log)
	t.Fatalf("pve%d: no %q within 15s; last:\n%s\nlog:\n%s", n.id, want, last, log)
}

// childrenFindings runs the pve checks inside each node's namespaces at
// once, as the nodes' agents would, and returns their findings in order.
func childrenFindings(t *testing.T, nodes ...*liveNode) [][]finding.Finding {
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
func childFindings(ctx context.Context, n *liveNode) ([]finding.Finding, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	script := fmt.Sprintf("mount -t tmpfs none /etc/corosync && ln -s %s /etc/corosync/corosync.conf && "+
		"mkdir -p /var/log/corosync && mount -t tmpfs none /var/log/corosync && ln -s %s /var/log/corosync/corosync.log && "+
		"exec %s -test.run='^TestPVELiveChild$' -test.count=1", n.conf, n.log, self)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.ns, "unshare", "-m", "sh", "-c", script)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pve%d child: %v\n%s\n%s", n.id, err, out, stderr.String())
	}
	var rep checks.Report
	line, _, _ := bytes.Cut(out, []byte("\n"))
	if err := json.Unmarshal(line, &rep); err != nil {
		return nil, fmt.Errorf("pve%d child output %q: %v", n.id, out, err)
	}
	if len(rep.Errors) > 0 {
		return nil, fmt.Errorf("pve%d: check errors %v", n.id, rep.Errors)
	}
	return rep.Findings, nil
}

func run(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}
