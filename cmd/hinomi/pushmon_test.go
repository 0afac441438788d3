package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPushMonitor is a cron job's life with a tower watching it: `hinomi
// push` wraps the job; its failure pages with the exit status and the
// job's last output; its next good run resolves it; a job that stops
// reporting pages after its interval and grace.
func TestPushMonitor(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
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
	dir := t.TempDir()
	addr := freePort(t)
	const token, quiet = "push-token-backup-0123456789", "push-token-quiet-0123456789"
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
channels: [{name: ops, type: webhook, url: %s/hook}]
alerts: {repeat_interval: 1h}
pushes:
  - {name: backup, token: %s, every: 24h, group: Jobs, public: true}
  - {name: heartbeat-job, token: %s, every: 10s, grace: 1s}
`, addr, filepath.Join(dir, "tower"), recv.URL, token, quiet)
	path := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", path)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	base := "http://" + addr + "/push/"

	// waitFor returns the first webhook message whose summary says want.
	waitFor := func(status, want string) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			for _, m := range msgs {
				sum, _ := m["commonAnnotations"].(map[string]any)["summary"].(string)
				desc, _ := m["commonAnnotations"].(map[string]any)["description"].(string)
				if m["status"] == status && strings.Contains(sum+"\n"+desc, want) {
					mu.Unlock()
					return m
				}
			}
			mu.Unlock()
			if time.Now().After(deadline) {
				t.Fatalf("no %s message saying %q within 30s; got %v", status, want, msgs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"push", base + token, "--", "sh", "-c", "echo borg: repository locked; exit 3"}, &out, &errb); code != 3 {
		t.Fatalf("the wrapper exited %d; want the job's 3\n%s", code, errb.String())
	}
	m := waitFor("firing", "exit status 3")
	desc, _ := m["commonAnnotations"].(map[string]any)["description"].(string)
	if !strings.Contains(desc, "borg: repository locked") {
		t.Errorf("the page lacks the job's output:\n%s", desc)
	}
	if code := run(t.Context(), []string{"push", base + token, "--", "true"}, &out, &errb); code != 0 {
		t.Fatalf("a good run: exit %d", code)
	}
	// While it failed, the public page said so in plain words.
	waitFor("resolved", "backup")
	if page := waitStatusPage(t, addr, map[string]string{"backup": "up"}, 10*time.Second); !strings.Contains(page, "A job that reports in; last report") {
		t.Errorf("the status page does not show the job as a job:\n%s", page)
	}

	// The quiet job never reports: after 10 s and 1 s of grace it pages.
	waitFor("firing", "heartbeat-job was due by")

	// A wrong token is refused.
	resp, err := http.Get(base + "not-a-token-0000000000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("a wrong token: %d", resp.StatusCode)
	}
}
