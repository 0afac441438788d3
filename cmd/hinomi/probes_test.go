package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestThreeServicesOnStatusPage is the new user's path: three services in
// the tower's YAML, the status page tells the truth within a probe
// interval: one works, one answers 200 with an error page (down), one is
// slow (degraded).
func TestThreeServicesOnStatusPage(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, "<h1>Welcome</h1>")
		case "/broken":
			fmt.Fprint(w, "<h1>Something went wrong</h1>") // status 200: a shallow check would call it up
		case "/slow":
			<-time.After(600 * time.Millisecond) // the server's behaviour under test
			fmt.Fprint(w, "<h1>Welcome</h1>")
		}
	}))
	defer app.Close()
	dir := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
agents:
  - {name: pve1, token: tok-probe-test-aaaaaaaa}
console: {title: Example services}
probes:
  - name: shop
    group: Website
    type: http
    target: %s/ok
    interval: 1s
    public: true
    conditions: ['[STATUS] == 200', '[BODY] contains "Welcome"']
  - name: wiki
    group: Website
    type: http
    target: %s/broken
    interval: 1s
    public: true
    conditions: ['[STATUS] == 200', '[BODY] not contains "Something went wrong"']
  - name: api
    group: Website
    type: http
    target: %s/slow
    interval: 1s
    timeout: 900ms
    public: true
    conditions: ['[STATUS] == 200']
    degraded: ['[RESPONSE_TIME] < 300ms']
`, addr, filepath.Join(dir, "tower"), app.URL, app.URL, app.URL)
	path := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", path)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	started := time.Now()
	page := waitStatusPage(t, addr, map[string]string{"shop": "up", "wiki": "down", "api": "degraded"}, 15*time.Second)
	if took := time.Since(started); took > 3*time.Second {
		t.Errorf("the truth took %s to show; the probes run every 1 s", took)
	}
	if !strings.Contains(page, "Something went wrong") || !strings.Contains(page, "Some services are down") {
		t.Errorf("the page does not say why wiki is down:\n%s", page)
	}
}

// waitStatusPage polls the public status page until every named service
// shows the wanted state, and returns the page; it fails the test after
// timeout.
func waitStatusPage(t *testing.T, addr string, want map[string]string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(b)
		ok := true
		for name, status := range want {
			if !regexp.MustCompile(`id="svc-` + name + `"[\s\S]*?<span class="pill ` + status + `">`).MatchString(page) {
				ok = false
			}
		}
		if ok {
			return page
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status page did not show %v within %s:\n%s", want, timeout, page)
		}
		<-time.After(100 * time.Millisecond)
	}
}

// TestLoneTowerReportsEveryProbeDown: a tower without peers, with no agent
// reporting yet, whose probes all fail, reports them all. (Only a tower
// with peers may stay quiet as "cut off": another location speaks then.)
func TestLoneTowerReportsEveryProbeDown(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	dir := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf("listen: %s\ndata_dir: %s\nagents:\n  - {name: pve1, token: tok-probe-test-aaaaaaaa}\nprobes:\n", addr, filepath.Join(dir, "tower"))
	want := map[string]string{}
	for _, name := range []string{"a", "b", "c", "d"} {
		// A port nothing listens on: connection refused at once.
		cfg += fmt.Sprintf("  - {name: %s, type: tcp, target: %q, interval: 1s, public: true}\n", name, freePort(t))
		want[name] = "down"
	}
	path := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", path)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	waitStatusPage(t, addr, want, 15*time.Second)
}
