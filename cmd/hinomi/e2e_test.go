package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/hinomi/hinomi/internal/testload"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// hinomiBinary builds the real binary once per test run, in a directory
// every user may read (tests also run it as another user).
func hinomiBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hinomi-bin-")
		if err != nil {
			binErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			binErr = err
			return
		}
		root, err := testload.ModuleRoot()
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "hinomi")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/hinomi")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is a hinomi process started by a test.
type proc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
	w  chan string // lines, for waiting on log output
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t testing.TB, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(hinomiBinary(t), args...))
}

// startCmd starts a prepared command (e.g. under ip netns exec).
func startCmd(t testing.TB, cmd *exec.Cmd) *proc {
	t.Helper()
	args := cmd.Args[1:]
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(p.stderr, pw)
	cmd.Stdout = p.stderr
	lines := make(chan string, 1000)
	p.stderr.w = lines
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", strings.Join(args[:min(len(args), 4)], " "), p.stderr.String())
		}
	})
	return p
}

// stop ends the process with SIGTERM and waits.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
}

func (p *proc) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// waitLine waits for a log line matching re.
func (p *proc) waitLine(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-p.stderr.w:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case err := <-p.done:
			t.Fatalf("process exited (%v) before logging %s:\n%s", err, re, p.stderr.String())
		case <-deadline:
			t.Fatalf("no log line %s within %s:\n%s", re, timeout, p.stderr.String())
		}
	}
}

// hook is a webhook receiver: the messages it got, by alert and status.
type hook struct {
	srv  *httptest.Server
	msgs chan hookMsg
}

type hookMsg struct {
	at          time.Time
	status, key string
	description string
}

func newHook(t *testing.T) *hook {
	h := &hook{msgs: make(chan hookMsg, 100)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Status string `json:"status"`
			Alerts []struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"alerts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil || len(p.Alerts) == 0 {
			http.Error(w, "bad payload", 400)
			return
		}
		a := p.Alerts[0]
		if strings.HasPrefix(a.Labels["key"], "finding/") || strings.HasPrefix(a.Labels["key"], "group/") {
			return // the machine's real findings: other tests load it
		}
		h.msgs <- hookMsg{at: time.Now(), status: p.Status, key: a.Labels["alertname"] + "|" + a.Labels["key"], description: a.Annotations["summary"] + "\n" + a.Annotations["description"]}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// wait returns the next message whose key contains sub and status is
// status.
func (h *hook) wait(t *testing.T, sub, status string, timeout time.Duration) hookMsg {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-h.msgs:
			if strings.Contains(m.key, sub) && m.status == status {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s message about %s within %s", status, sub, timeout)
		}
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestTowerAndAgents runs a tower and three agents as real processes: a
// killed agent is reported within grace + 1 s with its start time and
// duration, its return with the downtime; the tower killed mid-ingest and
// restarted loses and duplicates nothing, and keeps its firing alert.
func TestTowerAndAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	hook := newHook(t)
	dir := t.TempDir()
	addr := freePort(t)
	const grace = 2 * time.Second
	const interval = 500 * time.Millisecond
	tokens := []string{"tok-agent1-aaaaaaaaaaaa", "tok-agent2-bbbbbbbbbbbb", "tok-agent3-cccccccccccc"}
	cfg := fmt.Sprintf(`listen: %s
api_token: `+testAPIToken+`
data_dir: %s
grace: %s
agents:
  - {name: agent1, token: %s}
  - {name: agent2, token: %s}
  - {name: agent3, token: %s}
channels:
  - {name: hook, type: webhook, url: %s}
`, addr, filepath.Join(dir, "tower"), grace, tokens[0], tokens[1], tokens[2], hook.srv.URL)
	cfgPath := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", cfgPath)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)

	url := "http://" + addr
	agent := func(i int) *proc {
		return start(t, "agent", "--tower", url, "--token", tokens[i], "--name", fmt.Sprintf("agent%d", i+1),
			"--state-dir", filepath.Join(dir, fmt.Sprintf("agent%d", i+1)), "--interval", interval.String(), "--kmsg", "-")
	}
	agents := []*proc{agent(0), agent(1), agent(2)}
	waitHosts(t, url, 3, 30*time.Second)

	// Kill agent2: the tower notices within grace (+ one interval since its
	// last report, + the tower's 250 ms tick), well under grace + 1 s after
	// the last heartbeat it missed.
	killed := time.Now()
	agents[1].kill(t)
	fire := hook.wait(t, "heartbeat/agent2", "firing", grace+5*time.Second)
	if lat := fire.at.Sub(killed); lat > grace+interval+time.Second {
		t.Errorf("silence reported %s after the kill, want within grace %s + interval + 1 s", lat, grace)
	}
	t.Logf("firing message:\n%s", fire.description)
	if !regexp.MustCompile(`since .*\d\d:\d\d:\d\d`).MatchString(fire.description) {
		t.Errorf("firing message has no start time:\n%s", fire.description)
	}

	// Kill the tower while agents keep sending, restart it on the same
	// data: the firing alert survives and is not sent again.
	tower.kill(t)
	tower = start(t, "tower", "--config", cfgPath)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	waitHosts(t, url, 2, 30*time.Second)
	var alerts struct {
		Alerts []struct {
			Key string `json:"key"`
		} `json:"alerts"`
	}
	getJSON(t, url+"/api/v1/alerts?status=firing", &alerts)
	// The agents also report this machine's real findings (other tests
	// run load beside this one): only silences count here.
	var silent []string
	for _, a := range alerts.Alerts {
		if strings.HasPrefix(a.Key, "heartbeat/") {
			silent = append(silent, a.Key)
		}
	}
	if len(silent) != 1 || silent[0] != "heartbeat/agent2" {
		t.Errorf("silent hosts after the tower restart: %v, want heartbeat/agent2", silent)
	}

	// agent2 comes back (same state: its spool resends in order).
	agents[1] = agent(1)
	res := hook.wait(t, "heartbeat/agent2", "resolved", 30*time.Second)
	t.Logf("recovery message:\n%s", res.description)
	if !regexp.MustCompile(`\d+s|\d+m`).MatchString(res.description) || !strings.Contains(strings.ToLower(res.description), "down") {
		t.Errorf("recovery does not state the downtime:\n%s", res.description)
	}
	select {
	case m := <-hook.msgs:
		if strings.Contains(m.key, "heartbeat/agent2") && m.status == "firing" {
			t.Errorf("the firing message was sent again after the tower restart")
		}
	default:
	}

	// Stop everything cleanly, then check the store: per agent, every
	// sequence number from 1 to the highest is there exactly once.
	for _, a := range agents {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		<-a.done
	}
	_ = tower.cmd.Process.Signal(syscall.SIGTERM)
	<-tower.done
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "tower", "tower.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT agent, spool, count(*), min(seq), max(seq) FROM records GROUP BY agent, spool")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var agent, spool string
		var count, lo, hi int64
		if err := rows.Scan(&agent, &spool, &count, &lo, &hi); err != nil {
			t.Fatal(err)
		}
		n++
		if lo != 1 || count != hi {
			t.Errorf("%s: %d records, sequence %d..%d: something was lost", agent, count, lo, hi)
		}
	}
	if n != 3 {
		t.Errorf("records from %d agents, want 3", n)
	}

}

// testAPIToken is the api_token of the towers the tests start.
const testAPIToken = "api-token-for-tests-0123456789"

// apiGet GETs a tower's API with testAPIToken.
func apiGet(url string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testAPIToken)
	return http.DefaultClient.Do(req)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := apiGet(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// waitHosts waits until the tower lists at least n hosts reporting.
func waitHosts(t *testing.T, url string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var hosts struct {
			Hosts []struct {
				Status string `json:"status"`
			} `json:"hosts"`
		}
		resp, err := apiGet(url + "/api/v1/hosts")
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&hosts)
			resp.Body.Close()
			ok := 0
			for _, h := range hosts.Hosts {
				if h.Status == "ok" {
					ok++
				}
			}
			if ok >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d hosts reporting after %s (last error %v)", n, timeout, err)
		}
		<-tick.C
	}
}

// TestTwoTowersWatchEachOther: two towers share an agent and a webhook
// receiver. Both up: a silent agent is one message, not two. One tower
// stops: the other reports it through its own channel.
func TestTwoTowersWatchEachOther(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	hook := newHook(t)
	dir := t.TempDir()
	addrA, addrB := freePort(t), freePort(t)
	const agentToken, peerA, peerB = "tok-shared-agent-aaaaaa", "peer-token-aaaaaaaaaaaa", "peer-token-bbbbbbbbbbbb"
	conf := func(name, addr, own, peerName, peerAddr, peerToken string) string {
		path := filepath.Join(dir, name+".yaml")
		cfg := fmt.Sprintf(`name: %s
listen: %s
api_token: `+testAPIToken+`
data_dir: %s
grace: 2s
peer_token: %s
peer_grace: 3s
peers:
  - {name: %s, url: http://%s, token: %s}
agents:
  - {name: shared, token: %s}
channels:
  - {name: hook, type: webhook, url: %s}
`, name, addr, filepath.Join(dir, name), own, peerName, peerAddr, peerToken, agentToken, hook.srv.URL)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	towerA := start(t, "tower", "--config", conf("tower-a", addrA, peerA, "tower-b", addrB, peerB))
	towerB := start(t, "tower", "--config", conf("tower-b", addrB, peerB, "tower-a", addrA, peerA))
	towerA.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	towerB.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	agent := start(t, "agent", "--tower", "http://"+addrA, "--tower", "http://"+addrB, "--token", agentToken, "--name", "shared",
		"--state-dir", filepath.Join(dir, "agent"), "--interval", "500ms", "--kmsg", "-")
	waitHosts(t, "http://"+addrA, 1, 30*time.Second)
	waitHosts(t, "http://"+addrB, 1, 30*time.Second)
	// Both towers must have heard each other before the test goes on.
	for _, addr := range []string{addrA, addrB} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			var r struct {
				Peers []struct {
					Healthy bool `json:"healthy"`
				} `json:"peers"`
			}
			getJSON(t, "http://"+addr+"/api/v1/peers", &r)
			if len(r.Peers) == 1 && r.Peers[0].Healthy {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never heard its peer", addr)
			}
			<-time.After(100 * time.Millisecond)
		}
	}

	agent.kill(t)
	hook.wait(t, "heartbeat/shared", "firing", 15*time.Second)
	// Give the other tower every chance to page too: two of its ticks and a
	// grace; nothing more may come.
	<-time.After(3 * time.Second)
	if m, ok := hook.heartbeat(); ok {
		t.Errorf("the silent agent was paged twice: %s %s", m.status, m.description)
	}
	towerA.kill(t)
	m := hook.wait(t, "peer/tower-a", "firing", 20*time.Second)
	if !strings.Contains(m.description, "tower-a") {
		t.Errorf("peer alert: %s", m.description)
	}
}

// TestDoctorExitsDespiteHungMount: a thread waiting on a FUSE server that
// has read its request cannot be killed, so the real binary stats mounts
// in child processes: it reports the hung mount and exits, and the child
// left behind holds none of its output.
func TestDoctorExitsDespiteHungMount(t *testing.T) {
	testload.RequireRoot(t, "mounting FUSE needs root")
	m := testload.MountHung(t, "nas.example:/export")
	m.Hang()
	cmd := exec.Command(hinomiBinary(t), "doctor", "--sample", "0", "--mount-timeout", "300ms", "--min-severity", "high")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("doctor did not exit within 30 s with a hung mount; output so far:\n%s", out.String())
	}
	if !strings.Contains(out.String(), m.Dir) || !strings.Contains(out.String(), "does not answer") {
		t.Errorf("the hung mount is not reported:\n%s", out.String())
	}
}
