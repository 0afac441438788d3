package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
)

// AlertmanagerVersion is the Alertmanager the tests run (scripts/test
// builds it with go install; later releases embed a web UI that the
// module does not ship, so they do not build from it).
const AlertmanagerVersion = "v0.28.1"

// TestRealAlertmanager posts to a real Alertmanager and checks that its
// own routing delivers the alert to its receiver, firing and then
// resolved: what a user who keeps their Alertmanager relies on.
func TestRealAlertmanager(t *testing.T) {
	bin := testload.RequireProgram(t, "alertmanager", "HINOMI_ALERTMANAGER",
		"go install github.com/prometheus/alertmanager/cmd/alertmanager@"+AlertmanagerVersion)

	// The receiver Alertmanager routes to.
	got := make(chan amPayload, 8)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p amPayload
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err == nil {
			got <- p
		}
	}))
	t.Cleanup(recv.Close)

	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: ops
  group_by: [alertname, host]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: ops
    webhook_configs:
      - url: %s/am
        send_resolved: true
`, recv.URL)
	if err := os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+filepath.Join(dir, "am.yml"),
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=", // no gossip: one instance
		"--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	waitReady(t, base+"/-/ready")

	ch := Channel{Name: "am", Type: TypeAlertmanager, URL: base}
	firing := outage()
	firing.State = Firing
	firing.Now = time.Now().UTC()
	firing.Started = firing.Now.Add(-5 * time.Minute)
	if err := sendOnce(t, ch, firing); err != nil {
		t.Fatalf("post firing: %v", err)
	}

	// Alertmanager holds it, with hinomi's labels, still active.
	var active []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
		EndsAt time.Time `json:"endsAt"`
	}
	getJSON(t, base+"/api/v2/alerts", &active)
	if len(active) != 1 || active[0].Labels["host"] != "pve1" || active[0].Labels["alertname"] != "FM-A1" ||
		active[0].Status.State != "active" {
		t.Fatalf("alertmanager holds %+v; want one active FM-A1 alert for pve1", active)
	}
	if left := time.Until(active[0].EndsAt); left < 23*time.Hour {
		t.Errorf("alert ends in %v: Alertmanager would resolve it on its own before hinomi says so", left)
	}

	p := receive(t, got, "firing")
	if p.Alerts[0].Labels["key"] != "heartbeat/pve1" || !strings.HasPrefix(p.Alerts[0].Annotations["summary"], "[FIRING] Host pve1 is silent") {
		t.Errorf("routed alert: %+v", p.Alerts[0])
	}

	resolved := firing
	resolved.State = Resolved
	resolved.Ended = time.Now().UTC()
	resolved.Now = resolved.Ended
	if err := sendOnce(t, ch, resolved); err != nil {
		t.Fatalf("post resolved: %v", err)
	}
	p = receive(t, got, "resolved")
	if p.Alerts[0].Labels["host"] != "pve1" {
		t.Errorf("resolved alert: %+v", p.Alerts[0])
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a server's readiness, bounded above
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// receive waits for the receiver's next notification in the status want.
func receive(t *testing.T, got <-chan amPayload, want string) amPayload {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case p := <-got:
			if p.Status == want && len(p.Alerts) > 0 {
				return p
			}
		case <-timeout:
			t.Fatalf("the receiver got no %s notification from Alertmanager within 30s", want)
		}
	}
}
