package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/doctor"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
	"github.com/hinomi/hinomi/internal/wire"
)

func newTestAgent(t *testing.T) *Agent {
	t.Helper()
	a, err := New(Config{Towers: []string{"http://127.0.0.1:9"}, Token: "tok", Name: "pve1", StateDir: t.TempDir(), Kmsg: "-"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.towers[0].spool.Close() })
	return a
}

// spooledFindings reads back the findings records the agent spooled.
func spooledFindings(t *testing.T, a *Agent) []wire.Findings {
	t.Helper()
	recs, err := a.towers[0].spool.Peek(100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.Findings
	for _, r := range recs {
		var s spooled
		if err := json.Unmarshal(r.Data, &s); err != nil {
			t.Fatal(err)
		}
		if s.Kind != wire.KindFindings {
			continue
		}
		var f wire.Findings
		if err := json.Unmarshal(s.Data, &f); err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

func diag(fs ...finding.Finding) *doctor.Diagnosis {
	return &doctor.Diagnosis{Report: checks.Report{Findings: fs}}
}

func TestFindingChanges(t *testing.T) {
	a := newTestAgent(t)
	b2 := finding.Finding{Key: "FM-B2/uid 0", Severity: finding.Medium, Summary: "inotify 88%"}
	c2 := finding.Finding{Key: "FM-C2/space /", Severity: finding.Low, Summary: "/ 81%"}
	a.findings(diag(b2, c2), true) // start: the whole set
	b2.Summary = "inotify 89%"     // figures move: not a change
	a.findings(diag(b2, c2), false)
	b2.Severity = finding.High // severity changes: sent
	a.findings(diag(b2, c2), false)
	a.findings(diag(b2), false) // c2 resolved
	got := spooledFindings(t, a)
	if len(got) != 3 {
		t.Fatalf("%d findings records, want 3 (start, severity change, resolution): %+v", len(got), got)
	}
	if !got[0].Full || len(got[0].Open) != 2 {
		t.Errorf("first record %+v, want the full set", got[0])
	}
	if got[1].Full || len(got[1].Open) != 1 || got[1].Open[0].Severity != finding.High {
		t.Errorf("second record %+v, want the severity change", got[1])
	}
	if len(got[2].Resolved) != 1 || got[2].Resolved[0] != "FM-C2/space /" {
		t.Errorf("third record %+v, want c2 resolved", got[2])
	}
}

// TestFindingsResyncAfterSpoolRefusal: when the spool cannot take a record,
// the agent forgets what it sent and the next cycle sends the whole set.
func TestFindingsResyncAfterSpoolRefusal(t *testing.T) {
	a := newTestAgent(t)
	f := finding.Finding{Key: "FM-B2/uid 0", Severity: finding.Medium}
	if err := a.towers[0].spool.Close(); err != nil { // a spool that refuses appends
		t.Fatal(err)
	}
	a.findings(diag(f), true)
	if !a.resync || len(a.sent) != 0 {
		t.Fatalf("after a refused append: resync %v, sent %v", a.resync, a.sent)
	}
}

// A tower that answers and refuses (wrong token or name) is not an
// unreachable tower: the error says which, and nothing leaves the spool.
func TestRefusedIsNotUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(wire.Reply{Error: `this token belongs to agent "pve1", not "vm"`})
	}))
	defer srv.Close()
	a := newTestAgent(t)
	a.towers[0].url = srv.URL
	a.cfg.HTTPClient = srv.Client()
	a.status(wire.Status{Event: "started"})
	_, err := a.deliver(context.Background(), a.towers[0])
	var refused *refusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), `not "vm"`) {
		t.Errorf("deliver: %v, want a refusal carrying the tower's reason", err)
	}
	if n := a.towers[0].spool.Stats().Pending; n != 1 {
		t.Errorf("%d records pending after the refusal, want 1", n)
	}

	srv.Close() // nothing answers now
	if _, err := a.deliver(context.Background(), a.towers[0]); err == nil || errors.As(err, &refused) {
		t.Errorf("deliver to a closed port: %v, want an error that is not a refusal", err)
	}
}

// runAgent starts an agent with cfg (a tower that never answers, no
// kernel log unless cfg says otherwise) and stops it with the test.
func runAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	if len(cfg.Towers) == 0 {
		cfg.Towers = []string{"http://127.0.0.1:9"}
	}
	if cfg.Token == "" {
		cfg.Token = "tok"
	}
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.Kmsg == "" {
		cfg.Kmsg = "-"
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	return a
}

// pollFor waits, up to testload.ReadyTimeout, until ok holds.
func pollFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(testload.ReadyTimeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, testload.ReadyTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
