package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// netHost is a test host in its own network namespace, linked to this
// machine by a veth pair: this side 198.18.N.1, the namespace 198.18.N.2.
type netHost struct {
	ns, veth, towerIP string
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newNetHost(t *testing.T, n int) *netHost {
	t.Helper()
	h := &netHost{
		ns:      fmt.Sprintf("hinomi-t%d-%d", os.Getpid(), n),
		veth:    fmt.Sprintf("hnm%d-%d", os.Getpid()%10000, n),
		towerIP: fmt.Sprintf("198.18.%d.1", n),
	}
	ipCmd(t, "netns", "add", h.ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", h.veth).Run()
		_ = exec.Command("ip", "netns", "del", h.ns).Run()
	})
	ipCmd(t, "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	ipCmd(t, "addr", "add", h.towerIP+"/30", "dev", h.veth)
	ipCmd(t, "link", "set", h.veth, "up")
	ipCmd(t, "-n", h.ns, "addr", "add", fmt.Sprintf("198.18.%d.2/30", n), "dev", "eth0")
	ipCmd(t, "-n", h.ns, "link", "set", "eth0", "up")
	ipCmd(t, "-n", h.ns, "link", "set", "lo", "up")
	return h
}

// TestAgentsInNetworkNamespaces runs each agent on its own network (a
// namespace reaching the tower over a veth link) and cuts one host's link:
// the tower reports the silence within grace + 1 s of the host's last
// report, the agent keeps spooling, and when the link is back it delivers
// everything in order and the recovery states the downtime.
func TestAgentsInNetworkNamespaces(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root for network namespaces; CI runs as root")
		}
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2 is not installed (scripts/test installs it): %v", err)
	}
	hosts := []*netHost{newNetHost(t, 1), newNetHost(t, 2)}
	hook := newHook(t)
	dir := t.TempDir()
	port := strings.Split(freePort(t), ":")[1]
	const grace, interval = 2 * time.Second, 500 * time.Millisecond
	tokens := []string{"tok-ns-agent1-aaaaaaaaaa", "tok-ns-agent2-bbbbbbbbbb"}
	cfg := fmt.Sprintf("listen: 0.0.0.0:%s\ndata_dir: %s\ngrace: %s\nagents:\n  - {name: ns1, token: %s}\n  - {name: ns2, token: %s}\nchannels:\n  - {name: hook, type: webhook, url: %s}\n",
		port, filepath.Join(dir, "tower"), grace, tokens[0], tokens[1], hook.srv.URL)
	cfgPath := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", cfgPath)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)

	bin := hinomiBinary(t)
	var agents []*proc
	for i, h := range hosts {
		p := startCmd(t, exec.Command("ip", "netns", "exec", h.ns, bin, "agent",
			"--tower", "http://"+h.towerIP+":"+port, "--token", tokens[i], "--name", fmt.Sprintf("ns%d", i+1),
			"--state-dir", filepath.Join(dir, fmt.Sprintf("ns%d", i+1)), "--interval", interval.String(), "--kmsg", "-"))
		agents = append(agents, p)
	}
	url := "http://127.0.0.1:" + port
	waitHosts(t, url, 2, 30*time.Second)

	// Cut host 2's link: the process lives on, the tower hears nothing.
	cut := time.Now()
	ipCmd(t, "link", "set", hosts[1].veth, "down")
	fire := hook.wait(t, "ns2", "firing", grace+10*time.Second)
	if lat := fire.at.Sub(cut); lat > grace+interval+time.Second {
		t.Errorf("silence reported %s after the link was cut, want within grace %s + interval + 1 s", lat, grace)
	}
	if !strings.Contains(fire.description, "since") {
		t.Errorf("firing message without its start:\n%s", fire.description)
	}
	ipCmd(t, "link", "set", hosts[1].veth, "up")
	res := hook.wait(t, "ns2", "resolved", 30*time.Second)
	if !strings.Contains(strings.ToLower(res.description), "down") {
		t.Errorf("recovery without downtime:\n%s", res.description)
	}
	t.Logf("cut link: %s\nrecovery: %s", fire.description, res.description)
	for _, a := range agents {
		a.stop(t)
	}
}
