package tower

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/probe"
	"github.com/hinomi/hinomi/internal/web"
)

// historyServers are real services to probe: one that works, one whose
// health can be switched, one that answers 500 and a closed port.
func historyServers(t *testing.T) (ok, flaky, failing, closed string, healthy *atomic.Bool) {
	t.Helper()
	healthy = &atomic.Bool{}
	healthy.Store(true)
	srvs := []*httptest.Server{
		httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })),
		httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !healthy.Load() {
				http.Error(w, "maintenance", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok")
		})),
		httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "broken", http.StatusInternalServerError)
		})),
	}
	for _, s := range srvs {
		t.Cleanup(s.Close)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed = l.Addr().String()
	_ = l.Close()
	return srvs[0].URL, srvs[1].URL, srvs[2].URL, closed, healthy
}

func historyConfig(dir, ok, flaky, failing, closed string) string {
	return `
data_dir: ` + dir + `
listen: 127.0.0.1:0
agents:
  - {name: pve1, token: ` + tokenA + `}
alerts: {never_reported: false}
probes:
  - {name: web, group: Website, type: http, target: "` + ok + `", interval: 1s, public: true, degraded: ["[RESPONSE_TIME] < 10s"]}
  - {name: shop, group: Website, type: http, target: "` + flaky + `", interval: 1s, public: true, conditions: ["[STATUS] == 200", '[BODY] contains "ok"']}
  - {name: api, group: Backend, type: http, target: "` + failing + `", interval: 1s, public: true}
  - {name: db, group: Backend, type: tcp, target: "` + closed + `", interval: 1s}
`
}

// page fetches the status page and the console's service views of a tower
// through the real handler at the given time.
func page(t *testing.T, tw *Tower, now time.Time) (string, []web.Service, []web.Service) {
	t.Helper()
	site, err := web.New(tw.Web(), web.Options{Title: "Status", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	site.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 200 {
		t.Fatalf("status page: %d %s", rec.Code, rec.Body)
	}
	pub, err := tw.Web().Services(context.Background(), now, true)
	if err != nil {
		t.Fatal(err)
	}
	all, err := tw.Web().Services(context.Background(), now, false)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Body.String(), pub, all
}

// A tower that probed real services for days, then restarted on the same
// database, shows the same status page: day bars, uptime figures, the
// response-time chart, "down since" and how long a young service has
// been watched, and the console's recent results.
func TestStatusPageSameAfterRestart(t *testing.T) {
	ok, flaky, failing, closed, healthy := historyServers(t)
	dir := t.TempDir()
	text := historyConfig(dir, ok, flaky, failing, closed)
	cfg, err := ParseConfig([]byte(text), "history.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	tw, err := newTestTower(t, cfg, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	env := &probe.Env{Now: c.Now}
	// Six days of real runs, one every 20 minutes; the shop fails on the
	// third day and from the last evening on.
	ctx := context.Background()
	runs := 0
	for at := t0; at.Before(t0.Add(6 * 24 * time.Hour)); at = at.Add(20 * time.Minute) {
		c.Set(at)
		day := int(at.Sub(t0) / (24 * time.Hour))
		healthy.Store(day != 2 && at.Before(t0.Add(5*24*time.Hour+20*time.Hour)))
		for i := range cfg.Probes {
			spec := cfg.Probes[i].Spec
			tw.probeDelivered(probe.Delivery{Spec: &spec, Result: probe.Run(ctx, &spec, env)})
			runs++
		}
		if at.Minute() == 0 && at.Hour()%6 == 0 {
			// Written as the tower goes, as well as at the end.
			if err := tw.flushHistory(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := c.Now().Add(7 * time.Minute)
	before, pubBefore, allBefore := page(t, tw, now)
	for _, want := range []string{"HTTP 503 since 2026-11-26 18:00 UTC", "HTTP 500", "Website", "Backend"} {
		if !strings.Contains(before, want) {
			t.Fatalf("the page before the restart does not show %q:\n%s", want, before)
		}
	}
	if len(pubBefore) != 3 || len(allBefore) != 4 {
		t.Fatalf("%d public and %d services; want 3 and 4", len(pubBefore), len(allBefore))
	}
	if s := allBefore[0]; s.Name != "api" || s.Watched.IsZero() || len(s.Latency) < 70 || len(s.Recent) != recentChecks {
		t.Fatalf("api before the restart: watched %s, %d latency points, %d recent; want a young service with a full chart", s.Watched, len(s.Latency), len(s.Recent))
	}

	// The tower stops the way Run stops it: the rest written, the store
	// closed; pruning on the way takes nothing the page shows.
	if err := tw.flushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tw.pruneHistory(ctx, DefaultHistoryRetention, now); err != nil {
		t.Fatal(err)
	}
	if err := tw.store.Close(); err != nil {
		t.Fatal(err)
	}
	cfg2, err := ParseConfig([]byte(text), "history.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tw2, err := newTestTower(t, cfg2, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw2.store.Close() })
	after, pubAfter, allAfter := page(t, tw2, now)
	if before != after {
		t.Errorf("the status page changed with the restart:\n%s", firstDiff(before, after))
	}
	if !reflect.DeepEqual(pubBefore, pubAfter) {
		t.Errorf("public views changed:\nbefore %+v\nafter  %+v", pubBefore, pubAfter)
	}
	if !reflect.DeepEqual(allBefore, allAfter) {
		t.Errorf("console views changed:\nbefore %+v\nafter  %+v", allBefore, allAfter)
	}
	// The rows are few: a day per service and day and the chart's 24 hours,
	// not a row per run.
	var days, buckets int
	if err := dbOf(tw2).QueryRow("SELECT count(*) FROM probe_days").Scan(&days); err != nil {
		t.Fatal(err)
	}
	if err := dbOf(tw2).QueryRow("SELECT count(*) FROM probe_latency").Scan(&buckets); err != nil {
		t.Fatal(err)
	}
	if days != 4*7 || buckets > 4*latencyPoints+4 {
		t.Errorf("%d day rows and %d latency rows for %d runs; want 28 and at most %d", days, buckets, runs, 4*latencyPoints+4)
	}
}

// firstDiff shows where two pages part.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-200)
	return "before: …" + a[lo:min(len(a), i+200)] + "\nafter:  …" + b[lo:min(len(b), i+200)]
}

// Run writes the history when it stops: a tower probing real services
// with its scheduler, stopped and started again, has the same services.
func TestRunWritesHistoryAtStop(t *testing.T) {
	ok, flaky, failing, closed, _ := historyServers(t)
	dir := t.TempDir()
	text := historyConfig(dir, ok, flaky, failing, closed)
	cfg, err := ParseConfig([]byte(text), "history.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tw, err := newTestTower(t, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tw.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := 0
		for _, s := range tw.services.list(time.Now(), false) {
			if len(s.Recent) >= 2 {
				n++
			}
		}
		if n == len(cfg.Probes) {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("only %d of %d probes ran twice", n, len(cfg.Probes))
		}
		time.Sleep(50 * time.Millisecond) // polling, not waiting for a state
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	want := tw.services.list(now, false)

	cfg2, err := ParseConfig([]byte(text), "history.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tw2, err := newTestTower(t, cfg2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw2.store.Close() })
	if got := tw2.services.list(now, false); !reflect.DeepEqual(got, want) {
		t.Errorf("after the restart:\n%+v\nbefore:\n%+v", got, want)
	}
}

// History older than the retention goes from the page and the store alike;
// a probe no longer configured is not brought back by a restart.
func TestHistoryRetention(t *testing.T) {
	dir := t.TempDir()
	text := `
data_dir: ` + dir + `
agents: [{name: pve1, token: ` + tokenA + `}]
retention: {history: 240h}
probes:
  - {name: web, type: tcp, target: "127.0.0.1:9", public: true}
  - {name: old, type: tcp, target: "127.0.0.1:9", public: true}
`
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	c := &clock{now: now}
	tw := openTower(t, c, text)
	if got := time.Duration(tw.cfg.Load().Retention.History); got != 240*time.Hour {
		t.Fatalf("retention.history %s; want 240h", got)
	}
	for d := 30; d >= 0; d-- {
		tw.RecordProbe(ProbeResult{Name: "web", Public: true, Status: "up", Started: now.Add(-time.Duration(d) * 24 * time.Hour), Duration: time.Millisecond})
	}
	tw.RecordProbe(ProbeResult{Name: "old", Public: true, Status: "down", Reason: "connection refused", Started: now.Add(-20 * 24 * time.Hour)})
	ctx := context.Background()
	if err := tw.flushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tw.pruneHistory(ctx, time.Duration(tw.cfg.Load().Retention.History), now); err != nil {
		t.Fatal(err)
	}
	svcs := tw.services.list(now, true)
	if len(svcs) != 1 || svcs[0].Name != "web" {
		t.Fatalf("services after pruning: %+v; want web only (old was last probed 20 days ago)", svcs)
	}
	withData := 0
	for _, d := range svcs[0].Days {
		if d.Uptime >= 0 {
			withData++
		}
	}
	if withData != 11 {
		t.Errorf("%d day bars with data; want 11 (today and the 10 days kept)", withData)
	}
	var rows int
	if err := dbOf(tw).QueryRow("SELECT count(*) FROM probe_days WHERE day < ?", now.Add(-11*24*time.Hour).Unix()).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d day rows older than the retention left in the store (%v)", rows, err)
	}
	if err := dbOf(tw).QueryRow("SELECT count(*) FROM probe_services WHERE name = 'old'").Scan(&rows); err != nil || rows != 0 {
		t.Errorf("the stale service is still in the store: %d rows (%v)", rows, err)
	}
	before := tw.services.list(now, false)
	tw.store.Close()

	// Restarted without the web probe: its history stays in the store
	// (until the retention), off the page.
	tw2 := openTower(t, c, strings.Replace(text, `  - {name: web, type: tcp, target: "127.0.0.1:9", public: true}`+"\n", "", 1))
	if got := tw2.services.list(now, false); len(got) != 0 {
		t.Errorf("a probe no longer configured is back on the page: %+v", got)
	}
	tw2.store.Close()
	tw3 := openTower(t, c, text)
	if got := tw3.services.list(now, false); !reflect.DeepEqual(got, before) {
		t.Errorf("after restarts:\n%+v\nwant\n%+v", got, before)
	}
}

func TestHistoryRetentionValidated(t *testing.T) {
	_, err := ParseConfig([]byte("data_dir: /tmp/x\nagents: [{name: a, token: "+tokenA+"}]\nretention: {history: 1h}\n"), "t.yaml")
	if err == nil || !strings.Contains(err.Error(), "retention.history") || !strings.Contains(err.Error(), "at least 24h") {
		t.Errorf("retention.history 1h: %v; want an error naming the field", err)
	}
}

// A write of the history that fails loses nothing: the next one writes
// what the failed one held as well as what came since.
func TestHistoryWriteRetriedAfterFailure(t *testing.T) {
	sqliteOnly(t, "an SQLite trigger makes the write fail")
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	c := &clock{now: now}
	text := `
data_dir: ` + t.TempDir() + `
agents: [{name: pve1, token: ` + tokenA + `}]
probes: [{name: web, type: tcp, target: "127.0.0.1:9", public: true}]
`
	tw := openTower(t, c, text)
	ctx := context.Background()
	if _, err := sqlDB(tw).Exec(`CREATE TRIGGER full BEFORE INSERT ON probe_days BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`); err != nil {
		t.Fatal(err)
	}
	tw.RecordProbe(ProbeResult{Name: "web", Public: true, Status: "down", Reason: "connection refused", Started: now.Add(-25 * time.Hour), Duration: time.Millisecond})
	if err := tw.flushHistory(ctx); err == nil || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("flush with a failing store: %v; want the store's error", err)
	}
	if _, err := sqlDB(tw).Exec(`DROP TRIGGER full`); err != nil {
		t.Fatal(err)
	}
	tw.RecordProbe(ProbeResult{Name: "web", Public: true, Status: "up", Started: now, Duration: 2 * time.Millisecond})
	if err := tw.flushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	want := tw.services.list(now, false)
	tw.store.Close()
	tw2 := openTower(t, c, text)
	if got := tw2.services.list(now, false); !reflect.DeepEqual(got, want) {
		t.Errorf("after a failed write and a good one:\n%+v\nwant\n%+v", got, want)
	}
}
