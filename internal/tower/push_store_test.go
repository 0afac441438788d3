package tower

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
)

// A job that reports to the tower that does not lead is seen by the
// leader: no "did not report in" while it keeps reporting; once it stops,
// the leader pages, naming the report the other tower took.
func TestSharedPushReportsReachTheLeader(t *testing.T) {
	pgURL := testload.PostgresSchema(t)
	rcv := newReceiver(t)
	const token = "push-token-backup-0123456789"
	extra := "channels:\n  - {name: hook, type: webhook, url: " + rcv.srv.URL + "}\n" +
		"pushes:\n  - {name: backup, token: " + token + ", every: 1m, grace: 30s}\n"
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	ctx := context.Background()
	a := sharedTower(t, c, "tower-a", pgURL, extra)
	b := sharedTower(t, c, "tower-b", pgURL, extra)
	if !b.keepLease(ctx) || a.keepLease(ctx) {
		t.Fatal("tower-b should lead, tower-a follow")
	}
	report := func(at time.Duration) {
		t.Helper()
		c.Set(t0.Add(at))
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/push/"+token+"?status=ok&duration=12", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("report to tower-a: %d %s", rec.Code, rec.Body)
		}
	}
	// step is the leader's engine turn: what the others wrote, then the
	// evaluation and the sends.
	step := func(at time.Duration) {
		t.Helper()
		c.Set(t0.Add(at))
		if err := b.syncShared(ctx, false); err != nil {
			t.Fatal(err)
		}
		if err := b.Evaluate(ctx, c.Now()); err != nil {
			t.Fatal(err)
		}
		drain(t, b, "hook")
	}
	// Due every minute with 30 s of grace: without tower-a's reports the
	// leader would page at 1m30s.
	report(50 * time.Second)
	step(2 * time.Minute)
	report(2*time.Minute + 10*time.Second)
	step(3 * time.Minute)
	if msgs := rcv.messages(); len(msgs) != 0 {
		t.Fatalf("the leader paged while the job reported to the other tower: %v", msgs)
	}
	// The job stops: due at 3m10s, late after 3m40s.
	step(4 * time.Minute)
	msgs := rcv.messages()
	if len(msgs) != 1 || msgs[0]["status"] != "firing" {
		t.Fatalf("after the job stopped: %v; want one FIRING", msgs)
	}
	alerts, _ := msgs[0]["alerts"].([]any)
	if len(alerts) != 1 || !strings.Contains(fmt.Sprint(alerts[0]), "its last report was at 2026-11-25 03:02 UTC") {
		t.Errorf("the page does not name the last report tower-a took: %v", msgs[0])
	}
	// tower-a, following, shows the same on its status page.
	if err := a.syncShared(ctx, true); err != nil {
		t.Fatal(err)
	}
	svcs, err := a.Web().Services(ctx, c.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, sv := range svcs {
		if sv.Name == "backup" && (sv.Status != "down" || !sv.LastCheck.Equal(t0.Add(2*time.Minute+10*time.Second))) {
			t.Errorf("tower-a shows backup as %+v", sv)
		}
	}
}

// A tower restarted on its store knows the reports it took before: the
// job is up with its last report, not "has not reported yet".
func TestPushReportsSurviveARestart(t *testing.T) {
	const token = "push-token-backup-0123456789"
	p := newPolicyTower(t, "routes:\n  - {match: {}, channels: [ops]}\npushes:\n  - {name: backup, token: "+token+", every: 1m, grace: 30s}\n")
	p.c.Set(p.t0.Add(50 * time.Second))
	rec := httptest.NewRecorder()
	p.tw.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/push/"+token, strings.NewReader("done\n")))
	if rec.Code != http.StatusOK {
		t.Fatalf("report: %d %s", rec.Code, rec.Body)
	}
	p.tw.store.Close()
	p.open()
	p.at(2 * time.Minute)
	if n := len(p.ops.messages()); n != 0 {
		t.Fatalf("%d messages after the restart; the job reported at 50s and is due at 1m50s", n)
	}
	svcs, err := p.tw.Web().Services(t.Context(), p.c.Now(), false)
	if err != nil || len(svcs) != 1 || svcs[0].Status != "up" || !svcs[0].LastCheck.Equal(p.t0.Add(50*time.Second)) {
		t.Fatalf("after the restart: %+v", svcs)
	}
}
