package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
	towersrv "github.com/hinomi/hinomi/internal/tower"
)

// A filesystem that fills while the agent runs: over its cycles the agent
// measures the fill rate, and the tower gets an FM-C2 finding that says
// when the filesystem is full and names the directory that grows, though
// the filesystem never reaches 80 % during the test.
func TestAgentPredictsTimeToFull(t *testing.T) {
	mnt := testload.MountTmpfs(t, "256m")
	// No Docker here: the test is about the disk.
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	grow := filepath.Join(mnt, "dockerdisk-grow")
	if err := os.Mkdir(grow, 0o700); err != nil {
		t.Fatal(err)
	}

	const agentToken, apiToken = "agent-token-0123456789abcdef", "api-token-0123456789abcdef"
	base := startTower(t, apiToken, `
agents:
  - name: dockerdisk
    token: `+agentToken+`
`)

	a, err := New(Config{Towers: []string{base}, Token: agentToken, Name: "dockerdisk", StateDir: t.TempDir(), Kmsg: "-", Interval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan struct{})
	go func() { _ = a.Run(actx); close(agentDone) }()
	defer func() { stopAgent(); <-agentDone }()

	// The writer: 2 MiB every 100 ms, at most 150 MiB (60 % of the
	// tmpfs) and 20 s.
	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		f, err := os.Create(filepath.Join(grow, "data"))
		if err != nil {
			return
		}
		defer f.Close()
		buf := make([]byte, 2<<20)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		for written := 0; written < 150<<20 && time.Since(start) < 20*time.Second; written += len(buf) {
			if _, err := f.Write(buf); err != nil {
				return
			}
			select {
			case <-stopWriter:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stopWriter); <-writerDone }()

	var got finding.Finding
	waitFor(t, "the tower to get a time-to-full finding for "+mnt, 30*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/findings?host=dockerdisk", nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v struct{ Findings []towersrv.Finding }
		if json.NewDecoder(resp.Body).Decode(&v) != nil {
			return false
		}
		for _, f := range v.Findings {
			if f.Finding.Subject == "space "+mnt && f.Finding.Evidence.Vars["time_to_full"] != "" {
				got = f.Finding
				return true
			}
		}
		return false
	})
	if got.Mode != "FM-C2" || got.Severity != finding.High {
		t.Errorf("mode %s severity %s; want FM-C2 high (full within the hour)", got.Mode, got.Severity)
	}
	if g := got.Evidence.Vars["grower"]; g != "directory "+grow {
		t.Errorf("grower %q; want directory %s (summary: %s)", g, grow, got.Summary)
	}
	if !strings.Contains(got.Summary, "full in") {
		t.Errorf("summary does not say when it is full: %s", got.Summary)
	}
	t.Log(got.Summary)
}
