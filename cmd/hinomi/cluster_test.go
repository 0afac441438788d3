package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
)

// TestClusterLosesANode: a real three-node corosync cluster in network
// namespaces, a real agent on each node, a tower beside them. One node's
// link is cut: the two survivors' agents report the cluster a vote from
// losing quorum, and the tower pages once for the cluster, naming both
// reporters; the cut-off node falls silent.
func TestClusterLosesANode(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	c := testload.Corosync(t, "pvelive", 3)
	for _, n := range c.Nodes {
		n.WaitQuorum(t, "Total votes:      3")
	}
	var mu sync.Mutex
	var msgs []map[string]any
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var v map[string]any
		if json.Unmarshal(b, &v) == nil {
			mu.Lock()
			msgs = append(msgs, v)
			mu.Unlock()
		}
	}))
	defer recv.Close()
	l, err := net.Listen("tcp", c.HostAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	var agents strings.Builder
	for _, n := range c.Nodes {
		fmt.Fprintf(&agents, "  - {name: %s, token: tok-%s-aaaaaaaaaaaaaaaa}\n", n.Name, n.Name)
	}
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
api_token: cluster-test-api-token-0123456789
grace: 8s
channels: [{name: ops, type: webhook, url: %s/hook}]
routes: [{match: {}, channels: [ops]}]
agents:
%s`, addr, filepath.Join(dir, "tower"), recv.URL, agents.String())
	path := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", path)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)

	bin := hinomiBinary(t)
	for _, n := range c.Nodes {
		ctx, cancel := context.WithCancel(context.Background())
		cmd := n.Command(ctx, bin, "agent", "--tower", "http://"+addr, "--token", "tok-"+n.Name+"-aaaaaaaaaaaaaaaa",
			"--name", n.Name, "--state-dir", filepath.Join(dir, n.Name), "--interval", "2s",
			"--kmsg", "-", "--journal", "no", "--container-logs", "no")
		logf, err := os.Create(filepath.Join(dir, n.Name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cancel()
			_ = cmd.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("%s's agent:\n%s", n.Name, b)
			}
		})
	}
	key := "finding/cluster pvelive/FM-D5/cluster pvelive"
	firing := func() (n int, desc string) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			alerts, _ := m["alerts"].([]any)
			for _, a := range alerts {
				a, _ := a.(map[string]any)
				labels, _ := a["labels"].(map[string]any)
				if m["status"] == "firing" && labels["key"] == key {
					n++
					desc, _ = a["annotations"].(map[string]any)["description"].(string)
				}
			}
		}
		return n, desc
	}
	c.Cut(t, c.Nodes[2])
	c.Nodes[0].WaitQuorum(t, "Total votes:      2")
	deadline := time.Now().Add(45 * time.Second)
	for {
		n, desc := firing()
		if n > 0 && strings.Contains(desc, "Reported by pve1, pve2.") {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("no page for the cluster reported by pve1 and pve2 within 45s; messages: %v", msgs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n, _ := firing(); n != 1 {
		t.Errorf("%d pages for the cluster's quorum; want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		alerts, _ := m["alerts"].([]any)
		for _, a := range alerts {
			labels, _ := a.(map[string]any)["labels"].(map[string]any)
			if k, _ := labels["key"].(string); strings.HasPrefix(k, "finding/pve1/FM-D5") || strings.HasPrefix(k, "finding/pve2/FM-D5") {
				t.Errorf("a node's own quorum page: %s", k)
			}
		}
	}
}
