package testload

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// corosyncConf is a live test cluster: knet, votequorum, no crypto
// (nothing leaves the test's bridge), a token of 3 s: short enough that a
// cut link is noticed within seconds, long enough that a machine loaded
// by the rest of the test suite does not lose tokens of a healthy cluster
// (1 s did, under CI's load).
const corosyncConf = `totem {
  version: 2
  cluster_name: %s
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

// CorosyncNode is one node of a live cluster: a network namespace with
// its veth on the cluster's bridge, and its corosync in its own mount
// namespace.
type CorosyncNode struct {
	ID            int
	Name          string // pve1, pve2 …
	NS, Veth      string
	Addr          string // its address on the bridge
	Conf, LogPath string
	corosync      *exec.Cmd
}

// CorosyncCluster is a real corosync cluster (Debian's corosync 3) in
// network namespaces joined by a bridge in this namespace, which has an
// address (HostAddr) so that a server here (a tower) is reachable from
// the nodes. Addresses come from 198.18.0.0/15.
type CorosyncCluster struct {
	Name     string
	Nodes    []*CorosyncNode
	Bridge   string
	HostAddr string
}

// Corosync starts a cluster of n nodes named pve1…pveN and removes it
// with the test. It needs root and Debian's corosync.
func Corosync(t testing.TB, name string, n int) *CorosyncCluster {
	t.Helper()
	RequireRoot(t, "network namespaces, a bridge and corosync")
	for _, tool := range []string{"corosync", "corosync-quorumtool", "ip", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI is set, so %s is required (scripts/test installs corosync)", tool)
			}
			t.Skipf("%s not installed: apt-get install -y corosync", tool)
		}
	}
	tag := fmt.Sprintf("%d", os.Getpid()%100000)
	dir := t.TempDir()
	c := &CorosyncCluster{Name: name, Bridge: "pvebr" + tag}
	run := func(argv ...string) {
		t.Helper()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	run("ip", "link", "add", c.Bridge, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", c.Bridge).Run() })
	run("ip", "link", "set", c.Bridge, "up")
	// Each run takes its own /24.
	subnet := fmt.Sprintf("198.18.%d", 10+os.Getpid()%200)
	c.HostAddr = subnet + ".254"
	run("ip", "addr", "add", c.HostAddr+"/24", "dev", c.Bridge)
	var nodelist strings.Builder
	for i := range n {
		nd := &CorosyncNode{ID: i + 1, Name: fmt.Sprintf("pve%d", i+1), NS: fmt.Sprintf("pvecs%d-%s", i+1, tag),
			Veth: fmt.Sprintf("pvev%d-%s", i+1, tag), Addr: fmt.Sprintf("%s.%d", subnet, i+1)}
		nd.Conf, nd.LogPath = filepath.Join(dir, fmt.Sprintf("c%d.conf", nd.ID)), filepath.Join(dir, fmt.Sprintf("corosync%d.log", nd.ID))
		c.Nodes = append(c.Nodes, nd)
		run("ip", "netns", "add", nd.NS)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", nd.NS).Run() })
		run("ip", "link", "add", nd.Veth, "type", "veth", "peer", "name", "eth0", "netns", nd.NS)
		run("ip", "link", "set", nd.Veth, "master", c.Bridge, "up")
		run("ip", "-n", nd.NS, "addr", "add", nd.Addr+"/24", "dev", "eth0")
		run("ip", "-n", nd.NS, "link", "set", "eth0", "up")
		run("ip", "-n", nd.NS, "link", "set", "lo", "up")
		fmt.Fprintf(&nodelist, "  node {\n    nodeid: %d\n    name: %s\n    ring0_addr: %s\n  }\n", nd.ID, nd.Name, nd.Addr)
	}
	conf := fmt.Sprintf(corosyncConf, name, nodelist.String())
	for _, nd := range c.Nodes {
		if err := os.WriteFile(nd.Conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(nd.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		// corosync keeps its ring ID under /var/lib/corosync and its lock
		// under /run: a private tmpfs of each in the node's mount
		// namespace. Its IPC sockets are abstract, so they are per network
		// namespace already.
		nd.corosync = exec.Command("ip", "netns", "exec", nd.NS, "unshare", "-m", "sh", "-c",
			"mount -t tmpfs none /run && mount -t tmpfs none /var/lib/corosync && exec corosync -f -c "+nd.Conf)
		nd.corosync.Stdout, nd.corosync.Stderr = logf, logf
		if err := nd.corosync.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = nd.corosync.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- nd.corosync.Wait() }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = nd.corosync.Process.Kill()
				<-done
			}
			logf.Close()
		})
	}
	return c
}

// Cut takes a node's link down: it no longer reaches the others, nor
// this namespace.
func (c *CorosyncCluster) Cut(t testing.TB, nd *CorosyncNode) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", nd.Veth, "down").CombinedOutput(); err != nil {
		t.Fatalf("cutting %s: %v\n%s", nd.Name, err, out)
	}
}

// Command is argv run in the node's namespaces as that node's software
// sees it: its corosync.conf at /etc/corosync/corosync.conf and its log at
// /var/log/corosync/corosync.log.
func (nd *CorosyncNode) Command(ctx context.Context, argv ...string) *exec.Cmd {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	script := fmt.Sprintf("mount -t tmpfs none /etc/corosync && ln -s %s /etc/corosync/corosync.conf && "+
		"mkdir -p /var/log/corosync && mount -t tmpfs none /var/log/corosync && ln -s %s /var/log/corosync/corosync.log && "+
		"exec %s", nd.Conf, nd.LogPath, strings.Join(quoted, " "))
	return exec.CommandContext(ctx, "ip", "netns", "exec", nd.NS, "unshare", "-m", "sh", "-c", script)
}

// WaitQuorum polls the node's corosync-quorumtool until its output holds
// want, for at most 15 s.
func (nd *CorosyncNode) WaitQuorum(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last []byte
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		last, _ = exec.CommandContext(ctx, "ip", "netns", "exec", nd.NS, "corosync-quorumtool", "-s").Output()
		cancel()
		if bytes.Contains(last, []byte(want)) {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling corosync's state, bounded by the deadline
	}
	log, _ := os.ReadFile(nd.LogPath)
	t.Fatalf("%s: no %q within 15s; last:\n%s\nlog:\n%s", nd.Name, want, last, log)
}
