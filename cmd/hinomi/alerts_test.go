package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// TestAckAndSilenceCLI drives a real tower with the thin CLI commands.
func TestAckAndSilenceCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	dir := t.TempDir()
	addr := freePort(t)
	const token = "tok-cli-agent-aaaaaaaaaa"
	cfg := fmt.Sprintf("listen: %s\napi_token: "+testAPIToken+"\ndata_dir: %s\ngrace: 1s\nagents:\n  - {name: pve1, token: %s}\n", addr, filepath.Join(dir, "tower"), token)
	cfgPath := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", cfgPath)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	url := "http://" + addr
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(t.Context(), append(args, "--tower", url, "--token", testAPIToken), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := cli("silence", "add", "--host", "pve*", "--for", "2h", "--by", "mika", "--comment", "rack move")
	if code != 0 || !strings.HasPrefix(out, "silence ") {
		t.Fatalf("silence add: %d %q %q", code, out, errs)
	}
	id := strings.Fields(out)[1]
	if code, out, _ = cli("silence", "list"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "rack move") {
		t.Fatalf("silence list: %d\n%s", code, out)
	}
	code, out, errs = cli("silence", "list", "--json")
	var silences struct {
		Silences []struct {
			ID      string `json:"id"`
			Comment string `json:"comment"`
		} `json:"silences"`
	}
	if err := json.Unmarshal([]byte(out), &silences); code != 0 || err != nil || len(silences.Silences) != 1 || silences.Silences[0].ID != id {
		t.Errorf("silence list --json: exit %d, %v, %+v\n%s%s", code, err, silences, out, errs)
	}
	if code, _, _ = cli("silence", "expire", id); code != 0 {
		t.Fatalf("silence expire: %d", code)
	}
	if _, out, _ = cli("silence", "list"); !strings.Contains(out, "No silence") {
		t.Errorf("expired silence still listed:\n%s", out)
	}
	if code, _, errs = cli("silence", "add", "--for", "1h"); code != 2 || !strings.Contains(errs, "must select something") {
		t.Errorf("a silence matching everything: %d %q", code, errs)
	}

	// A host that reported once and went silent: ack its alert.
	body, _ := json.Marshal(wire.Envelope{Agent: "pve1", Spool: "s", Sent: time.Now()})
	req, _ := http.NewRequest(http.MethodPost, url+wire.Path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFiring(t, url, "heartbeat/pve1", 20*time.Second)
	if code, out, errs = cli("ack", "heartbeat/pve1", "--by", "mika", "--comment", "power cut"); code != 0 || !strings.Contains(out, "acknowledged heartbeat/pve1") {
		t.Fatalf("ack: %d %q %q", code, out, errs)
	}
	if code, _, errs = cli("ack", "heartbeat/nope"); code != 2 || !strings.Contains(errs, "no firing alert") {
		t.Errorf("ack of an unknown alert: %d %q", code, errs)
	}
	code, out, _ = cli("status")
	if code != 1 || !strings.Contains(out, "SILENT") || !strings.Contains(out, "heartbeat/pve1") || !strings.Contains(out, "acknowledged by mika") {
		t.Errorf("status does not show the alert's key and its acknowledgement: %d\n%s", code, out)
	}
	code, out, _ = cli("status", "--json")
	var status struct {
		Hosts []struct {
			Name string `json:"name"`
		} `json:"hosts"`
		Alerts []struct {
			Key string `json:"key"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil || len(status.Hosts) != 1 || status.Hosts[0].Name != "pve1" ||
		len(status.Alerts) != 1 || status.Alerts[0].Key != "heartbeat/pve1" {
		t.Errorf("status --json: exit %d, %v, %+v\n%s", code, err, status, out)
	}
	if code, out, _ = cli("incidents"); code != 0 || !strings.Contains(out, "Host pve1 is silent") {
		t.Fatalf("incidents: %d\n%s", code, out)
	}
	code, out, _ = cli("incidents", "--json")
	var incidents struct {
		Incidents []struct {
			ID    int64  `json:"id"`
			Title string `json:"title"`
		} `json:"incidents"`
	}
	if err := json.Unmarshal([]byte(out), &incidents); code != 0 || err != nil || len(incidents.Incidents) != 1 || !strings.Contains(incidents.Incidents[0].Title, "pve1") {
		t.Errorf("incidents --json: exit %d, %v, %+v\n%s", code, err, incidents, out)
	}
	code, out, _ = cli("incidents", "1", "--json")
	var incident struct {
		Incident struct {
			ID int64 `json:"id"`
		} `json:"incident"`
		Timeline []json.RawMessage `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(out), &incident); code != 0 || err != nil || incident.Incident.ID != 1 || len(incident.Timeline) == 0 {
		t.Errorf("incidents 1 --json: exit %d, %v, %+v\n%s", code, err, incident, out)
	}
	if code, _, errs = cli("incidents", "1", "--note", "power cut in rack 2", "--by", "mika"); code != 0 {
		t.Fatalf("note: %d %s", code, errs)
	}
	if code, out, _ = cli("incidents", "1", "--postmortem"); code != 0 || !strings.Contains(out, "| Detection delay |") || !strings.Contains(out, "mika: power cut in rack 2") {
		t.Errorf("postmortem: %d\n%s", code, out)
	}
}

func waitFiring(t *testing.T, url, key string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		var r struct {
			Alerts []struct {
				Key string `json:"key"`
			} `json:"alerts"`
		}
		getJSON(t, url+"/api/v1/alerts?status=firing", &r)
		for _, a := range r.Alerts {
			if a.Key == key {
				return
			}
		}
		<-tick.C
	}
	t.Fatalf("%s not firing within %s", key, timeout)
}
