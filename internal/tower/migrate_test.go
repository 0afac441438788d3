package tower

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
	"github.com/hinomi/hinomi/internal/wire"
)

// A tower's SQLite state, moved by Migrate, is what a tower on PostgreSQL
// starts with: hosts, records, findings, a firing acknowledged alert, a
// silence, the incident and its timeline, the outbox (new rows after the
// copied ones).
func TestMigrateSQLiteToPostgres(t *testing.T) {
	pgURL := testload.PostgresSchema(t)
	rcv := newReceiver(t)
	rcv.fail = 1 << 30 // the FIRING stays in the outbox
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	dir := t.TempDir()
	text := `
data_dir: ` + dir + `
grace: 30s
api_token: ` + apiToken + `
agents:
  - {name: pve1, token: ` + tokenA + `}
alerts:
  never_reported: false
channels:
  - {name: hook, type: webhook, url: ` + rcv.srv.URL + `}
`
	cfg, err := ParseConfig([]byte(text), "sqlite.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src, err := New(cfg, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if rec, _ := post(t, src.Handler(), tokenA, mustJSON(t, wire.Envelope{Agent: "pve1", Spool: "s1",
		Records: []wire.Record{findingsRecord(t, 1, t0, true, "oom/db"), logRecord(2, t0, "Out of memory: Killed process 4242 (postgres)")}})); rec.Code != http.StatusOK {
		t.Fatalf("ingest: %d %s", rec.Code, rec.Body)
	}
	c.Set(t0.Add(time.Minute))
	if err := src.Evaluate(ctx, c.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Acknowledge(ctx, "heartbeat/pve1", "mika", "moving it"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.AddSilence(ctx, Silence{Match: Match{Host: "pve1"}, Ends: t0.Add(time.Hour), CreatedBy: "mika", Comment: "rack move"}); err != nil {
		t.Fatal(err)
	}
	wantDue, err := src.store.CountDue(ctx)
	if err != nil || wantDue == 0 {
		t.Fatalf("CountDue = %d, %v; want the FIRING still due", wantDue, err)
	}
	wantIncidents, err := src.store.LoadIncidents(ctx, 10)
	if err != nil || len(wantIncidents) == 0 {
		t.Fatalf("incidents = %v, %v; want the outage's", wantIncidents, err)
	}
	if err := src.store.Close(); err != nil {
		t.Fatal(err)
	}

	tables, err := Migrate(ctx, dir, pgURL, "")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]int64{}
	for _, tb := range tables {
		rows[tb.Name] = tb.Rows
	}
	if rows["hosts"] != 1 || rows["records"] != 2 || rows["findings"] != 1 || rows["silences"] != 1 || rows["outbox"] == 0 {
		t.Fatalf("copied %v", tables)
	}
	if _, err := Migrate(ctx, dir, pgURL, ""); err == nil {
		t.Fatal("a second Migrate into the same database went through; want a refusal")
	}

	cfg2, err := ParseConfig([]byte(text+"store: "+pgURL+"\n"), "pg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg2.DataDir = t.TempDir()
	dst, err := New(cfg2, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.store.Close() })
	dst.mu.Lock()
	h, al, nf, ns := dst.hosts["pve1"], dst.alerts["heartbeat/pve1"], len(dst.findings["pve1"]), len(dst.silences)
	dst.mu.Unlock()
	if h == nil || h.Acked != 2 || al == nil || al.Ack == nil || al.Ack.By != "mika" || nf != 1 || ns != 1 {
		t.Fatalf("on PostgreSQL: host %+v, alert %+v, %d findings, %d silences", h, al, nf, ns)
	}
	if due, err := dst.store.CountDue(ctx); err != nil || due != wantDue {
		t.Fatalf("due on PostgreSQL = %d, %v; want %d", due, err, wantDue)
	}
	in, err := dst.store.LoadIncident(ctx, wantIncidents[0].ID)
	if err != nil || in.ID != wantIncidents[0].ID {
		t.Fatalf("incident %d on PostgreSQL: %+v, %v", wantIncidents[0].ID, in, err)
	}
	if evs, err := dst.store.IncidentEvents(ctx, in.ID); err != nil || len(evs) == 0 {
		t.Fatalf("incident %d's timeline on PostgreSQL: %v, %v", in.ID, evs, err)
	}
	recs, err := dst.store.RecordsBetween(ctx, "pve1", wire.KindLog, t0, t0)
	if err != nil || len(recs) != 1 || recs[0].Seq != 2 {
		t.Fatalf("log records on PostgreSQL: %+v, %v", recs, err)
	}
	var maxID, next int64
	st := dst.store.(*pgStore)
	if err := st.pool.QueryRow(ctx, "SELECT max(id) FROM outbox").Scan(&maxID); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveAlerts(ctx, c.Now(), []AlertChange{{Alert: Alert{Key: "k", Host: "pve1", Kind: "finding"}, Messages: []Enqueue{enqueueAt("k", c.Now(), 1, "hook")}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.pool.QueryRow(ctx, "SELECT max(id) FROM outbox").Scan(&next); err != nil || next <= maxID {
		t.Fatalf("a new outbox row got id %d after the copied %d (%v)", next, maxID, err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
