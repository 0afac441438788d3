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
	"strings"
	"sync"
	"testing"
)

// TestNotifyTest: `hinomi notify test` sends a real message through the
// configured channel, sends a stateful channel the resolution too, and
// says plainly which channel failed and whether the tower would retry.
func TestNotifyTest(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, b)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	dir := t.TempDir()
	cfg := fmt.Sprintf(`data_dir: %s
agents: [{name: pve1, token: tok-notify-aaaaaaaaaaaa}]
channels:
  - {name: chat, type: mattermost, url: %s/hooks/x}
  - {name: oncall, type: pagerduty, routing_key: R0KEY, api_url: %s}
  - {name: gone, type: gotify, server: %s, token: t}
`, filepath.Join(dir, "data"), srv.URL, srv.URL, closedURL)
	path := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	notifyCLI := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(t.Context(), append([]string{"notify", "test", "--config", path}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := notifyCLI("chat", "oncall")
	mu.Lock()
	defer mu.Unlock()
	if code != 0 || !strings.Contains(out, "sent    chat (mattermost)") || !strings.Contains(out, "sent    oncall (pagerduty)") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if len(bodies) != 3 {
		t.Fatalf("the servers got %d requests; want 3 (chat, then PagerDuty trigger and resolve)", len(bodies))
	}
	if !bytes.Contains(bodies[0], []byte("Test message from hinomi")) || !bytes.Contains(bodies[0], []byte("Nothing is wrong")) {
		t.Errorf("chat message does not say it is a test:\n%s", bodies[0])
	}
	var trigger, resolve struct {
		EventAction string `json:"event_action"`
		DedupKey    string `json:"dedup_key"`
	}
	if json.Unmarshal(bodies[1], &trigger) != nil || json.Unmarshal(bodies[2], &resolve) != nil ||
		trigger.EventAction != "trigger" || resolve.EventAction != "resolve" || trigger.DedupKey != resolve.DedupKey {
		t.Errorf("pagerduty got %s then %s; want a trigger and its resolve", bodies[1], bodies[2])
	}

	mu.Unlock()
	code, out, _ = notifyCLI("--all")
	mu.Lock()
	if code != 1 || !strings.Contains(out, "FAILED  gone (gotify)") || !strings.Contains(out, "connection refused") ||
		!strings.Contains(out, "the tower would retry") {
		t.Errorf("--all with a dead server: exit %d\n%s", code, out)
	}

	if code, _, errs = notifyCLI("nosuch"); code != 2 || !strings.Contains(errs, `no channel named "nosuch"`) || !strings.Contains(errs, "chat, oncall, gone") {
		t.Errorf("unknown channel: exit %d, %s", code, errs)
	}
	if code, _, errs = notifyCLI(); code != 2 || !strings.Contains(errs, "which channel?") {
		t.Errorf("no channel: exit %d, %s", code, errs)
	}
}
