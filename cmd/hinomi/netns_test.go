package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
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

// netTower is a tower with agents in their own network namespaces.
type netTower struct {
	hosts  []*netHost
	agents []*proc
	hook   *hook
	tower  *proc
	url    string
}

const (
	nsGrace    = 2 * time.Second
	nsInterval = 500 * time.Millisecond
)

func startNetTower(t *testing.T, n int, grace time.Duration, extra string) *netTower {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test")
	}
	testload.RequireRoot(t, "network namespaces need root")
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2 is not installed (scripts/test installs it): %v", err)
	}
	nt := &netTower{hook: newHook(t)}
	dir := t.TempDir()
	port := strings.Split(freePort(t), ":")[1]
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "listen: 0.0.0.0:%s\napi_token: "+testAPIToken+"\ndata_dir: %s\ngrace: %s\nchannels:\n  - {name: hook, type: webhook, url: %s}\n%sagents:\n",
		port, filepath.Join(dir, "tower"), grace, nt.hook.srv.URL, extra)
	var tokens []string
	for i := range n {
		nt.hosts = append(nt.hosts, newNetHost(t, i+1))
		tokens = append(tokens, fmt.Sprintf("tok-ns-agent%d-%010d", i+1, i))
		fmt.Fprintf(&cfg, "  - {name: ns%d, token: %s}\n", i+1, tokens[i])
	}
	cfgPath := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	nt.tower = start(t, "tower", "--config", cfgPath)
	nt.tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	bin := hinomiBinary(t)
	for i, h := range nt.hosts {
		nt.agents = append(nt.agents, startCmd(t, exec.Command("ip", "netns", "exec", h.ns, bin, "agent",
			"--tower", "http://"+h.towerIP+":"+port, "--token", tokens[i], "--name", fmt.Sprintf("ns%d", i+1),
			"--state-dir", filepath.Join(dir, fmt.Sprintf("ns%d", i+1)), "--interval", nsInterval.String(), "--kmsg", "-")))
	}
	nt.url = "http://127.0.0.1:" + port
	waitHosts(t, nt.url, n, 30*time.Second)
	t.Cleanup(func() {
		for _, a := range nt.agents {
			a.stop(t)
		}
	})
	return nt
}

// TestAgentsInNetworkNamespaces runs each agent on its own network (a
// namespace reaching the tower over a veth link) and cuts one host's link:
// the tower reports the silence within grace + 1 s of the host's last
// report, the agent keeps spooling, and when the link is back it delivers
// everything in order and the recovery states the downtime.
func TestAgentsInNetworkNamespaces(t *testing.T) {
	nt := startNetTower(t, 2, nsGrace, "")
	cut := time.Now()
	ipCmd(t, "link", "set", nt.hosts[1].veth, "down")
	fire := nt.hook.wait(t, "heartbeat/ns2", "firing", nsGrace+10*time.Second)
	if lat := fire.at.Sub(cut); lat > nsGrace+nsInterval+time.Second {
		t.Errorf("silence reported %s after the link was cut, want within grace %s + interval + 1 s", lat, nsGrace)
	}
	if !strings.Contains(fire.description, "since") {
		t.Errorf("firing message without its start:\n%s", fire.description)
	}
	ipCmd(t, "link", "set", nt.hosts[1].veth, "up")
	res := nt.hook.wait(t, "heartbeat/ns2", "resolved", 30*time.Second)
	if !strings.Contains(strings.ToLower(res.description), "down") {
		t.Errorf("recovery without downtime:\n%s", res.description)
	}
	t.Logf("cut link: %s\nrecovery: %s", fire.description, res.description)
}

// hold keeps a link down for d: the stimulus, not a wait for a state.
func hold(t *testing.T, h *netHost, d time.Duration) {
	t.Helper()
	ipCmd(t, "link", "set", h.veth, "down")
	<-time.After(d)
	ipCmd(t, "link", "set", h.veth, "up")
}

// TestFlappingNetwork cuts a host's link repeatedly: cuts shorter than the
// grace page nobody; longer ones page until the third in the window, which
// is reported once as flapping; later ones page nobody. (A cut of one
// second silences a host for up to three: TCP retransmits back off. The
// grace here is 5 s.)
func TestFlappingNetwork(t *testing.T) {
	const grace = 5 * time.Second
	nt := startNetTower(t, 1, grace, "alerts: {flap: {window: 10m, spells: 3, stable: 5m}}\n")
	h := nt.hosts[0]
	for range 3 {
		hold(t, h, time.Second)
		waitHosts(t, nt.url, 1, 30*time.Second)
	}
	// Wait out one grace with the host up: a short cut would have paged by now.
	<-time.After(grace + time.Second)
	if m, ok := nt.hook.heartbeat(); ok {
		t.Fatalf("a cut shorter than the grace paged: %s %s", m.status, m.description)
	}
	for i := range 5 {
		ipCmd(t, "link", "set", h.veth, "down")
		switch {
		case i < 2:
			nt.hook.wait(t, "heartbeat/ns1", "firing", grace+10*time.Second)
			ipCmd(t, "link", "set", h.veth, "up")
			nt.hook.wait(t, "heartbeat/ns1", "resolved", 30*time.Second)
		case i == 2:
			m := nt.hook.wait(t, "heartbeat/ns1", "firing", grace+10*time.Second)
			if !strings.Contains(m.description, "flapping") {
				t.Errorf("third long cut: %s, want the flapping report", m.description)
			}
			t.Logf("flapping report:\n%s", m.description)
			ipCmd(t, "link", "set", h.veth, "up")
		default:
			<-time.After(grace + 2*time.Second)
			ipCmd(t, "link", "set", h.veth, "up")
		}
		waitHosts(t, nt.url, 1, 30*time.Second)
	}
	<-time.After(grace)
	if m, ok := nt.hook.heartbeat(); ok {
		t.Errorf("a message while flapping: %s %s", m.status, m.description)
	}
}

// heartbeat returns a pending message about a host's silence, if any (the
// agents also report real findings of this machine, which do not count).
func (h *hook) heartbeat() (hookMsg, bool) {
	for {
		select {
		case m := <-h.msgs:
			if strings.Contains(m.key, "heartbeat/") {
				return m, true
			}
		default:
			return hookMsg{}, false
		}
	}
}

// TestProbeFromTwoLocations: two towers probe one service; the tower whose
// network is cut does not declare the service down, and neither does the
// other; when the service really stops, it is declared down.
func TestProbeFromTwoLocations(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	testload.RequireRoot(t, "network namespaces need root")
	h := newNetHost(t, 7)
	// The service runs on this side of B's link.
	l, err := net.Listen("tcp", h.towerIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "Welcome") })}
	go svc.Serve(l)
	defer svc.Close()
	hook := newHook(t)
	dir := t.TempDir()
	portA := strings.Split(freePort(t), ":")[1]
	portB := strings.Split(freePort(t), ":")[1]
	nsIP := "198.18.7.2"
	const tokA, tokB = "peer-token-aaaaaaaaaaaa", "peer-token-bbbbbbbbbbbb"
	probeYAML := fmt.Sprintf(`probes:
  - {name: svc, type: http, target: "http://%s/", interval: 1s, timeout: 900ms, public: true, conditions: ['[BODY] contains "Welcome"']}
`, l.Addr())
	write := func(name, cfg string) string {
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfgA := write("a", fmt.Sprintf("name: tower-a\nlisten: 0.0.0.0:%s\napi_token: "+testAPIToken+"\ndata_dir: %s\npeer_token: %s\npeer_grace: 3s\npeers: [{name: tower-b, url: \"http://%s:%s\", token: %s}]\nagents: [{name: x, token: tok-agent-xxxxxxxxxxxx}]\nchannels: [{name: hook, type: webhook, url: %s}]\n%s",
		portA, filepath.Join(dir, "a"), tokA, nsIP, portB, tokB, hook.srv.URL, probeYAML))
	cfgB := write("b", fmt.Sprintf("name: tower-b\nlisten: 0.0.0.0:%s\napi_token: "+testAPIToken+"\ndata_dir: %s\npeer_token: %s\npeer_grace: 3s\npeers: [{name: tower-a, url: \"http://%s:%s\", token: %s}]\nagents: [{name: x, token: tok-agent-xxxxxxxxxxxx}]\n%s",
		portB, filepath.Join(dir, "b"), tokB, h.towerIP, portA, tokA, probeYAML))
	a := start(t, "tower", "--config", cfgA)
	a.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	b := startCmd(t, exec.Command("ip", "netns", "exec", h.ns, hinomiBinary(t), "tower", "--config", cfgB))
	b.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	urlA, urlB := "http://127.0.0.1:"+portA, "http://"+nsIP+":"+portB
	waitService := func(url, status string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		re := regexp.MustCompile(`id="svc-svc"[\s\S]*?<span class="pill ` + status + `">`)
		for {
			resp, err := http.Get(url + "/")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if re.Match(body) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never showed svc %s", url, status)
			}
			<-time.After(100 * time.Millisecond)
		}
	}
	waitService(urlA, "up")
	waitService(urlB, "up")
	// B must have A's verdict before A's can count during the cut.
	for deadline := time.Now().Add(20 * time.Second); ; {
		var r struct {
			Verdicts map[string]map[string]json.RawMessage `json:"probe_verdicts"`
		}
		getJSON(t, urlB+"/api/v1/peers", &r)
		if _, ok := r.Verdicts["tower-a"]["svc"]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tower-b never got tower-a's verdict")
		}
		<-time.After(100 * time.Millisecond)
	}

	// Cut B off for longer than its peer grace and several probe intervals.
	ipCmd(t, "link", "set", h.veth, "down")
	<-time.After(6 * time.Second) // the cut, not a wait for a state
	ipCmd(t, "link", "set", h.veth, "up")
	waitService(urlA, "up")
	for _, url := range []string{urlA, urlB} {
		var r struct {
			Alerts []struct {
				Key   string `json:"key"`
				State struct {
					FiredAt time.Time `json:"fired_at"`
				} `json:"state"`
			} `json:"alerts"`
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := apiGet(url + "/api/v1/alerts?key=probe/svc")
			if err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s unreachable after the link came back: %v", url, err)
			}
			<-time.After(100 * time.Millisecond)
		}
		for _, al := range r.Alerts {
			if !al.State.FiredAt.IsZero() {
				t.Errorf("%s: %s fired at %s during the cut of one location", url, al.Key, al.State.FiredAt)
			}
		}
	}
	if m, ok := hook.any("probe/svc"); ok {
		t.Errorf("a notification about the service while only B was cut off: %s", m.description)
	}

	// Control: the service really stops; both locations agree.
	svc.Close()
	m := hook.wait(t, "probe/svc", "firing", 20*time.Second)
	t.Logf("real outage: %s", m.description)
}

// any returns a pending message whose key contains sub, if any.
func (h *hook) any(sub string) (hookMsg, bool) {
	for {
		select {
		case m := <-h.msgs:
			if strings.Contains(m.key, sub) {
				return m, true
			}
		default:
			return hookMsg{}, false
		}
	}
}
