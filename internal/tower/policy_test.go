package tower

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/wire"
)

// policyTower is a tower with three webhook receivers (ops, boss, mail),
// the extra YAML given, and agents pve1, pve2 and nas1.
type policyTower struct {
	t               *testing.T
	tw              *Tower
	c               *clock
	ops, boss, mail *receiver
	t0              time.Time
	dir             string
	cfg             string
}

func newPolicyTower(t *testing.T, extra string) *policyTower {
	p := &policyTower{t: t, ops: newReceiver(t), boss: newReceiver(t), mail: newReceiver(t),
		t0: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC), dir: t.TempDir()}
	p.c = &clock{now: p.t0}
	p.cfg = `data_dir: ` + p.dir + `
grace: 30s
api_token: ` + apiToken + `
alerts: {never_reported: false}
agents:
  - {name: pve1, token: ` + tokenA + `}
  - {name: pve2, token: ` + tokenB + `}
  - {name: nas1, token: token-nnnnnnnnnnnnnnnn}
channels:
  - {name: ops, type: webhook, url: ` + p.ops.srv.URL + `}
  - {name: boss, type: webhook, url: ` + p.boss.srv.URL + `}
  - {name: mail, type: webhook, url: ` + p.mail.srv.URL + `}
` + extra
	p.open()
	return p
}

func (p *policyTower) open() {
	cfg, err := ParseConfig([]byte(p.cfg), "policy.yaml")
	if err != nil {
		p.t.Fatal(err)
	}
	tw, err := newTestTower(p.t, cfg, Options{Now: p.c.Now})
	if err != nil {
		p.t.Fatal(err)
	}
	p.tw = tw
	p.t.Cleanup(func() { tw.store.Close() })
}

// restart closes the tower and opens a new one on the same database.
func (p *policyTower) restart() {
	if err := p.tw.store.Close(); err != nil {
		p.t.Fatal(err)
	}
	p.open()
}

var tokens = map[string]string{"pve1": tokenA, "pve2": tokenB, "nas1": "token-nnnnnnnnnnnnnnnn"}

// report sends a batch from an agent at the current time (with findings,
// if any, as a full set).
func (p *policyTower) report(agent string, fs ...finding.Finding) {
	p.t.Helper()
	env := wire.Envelope{Agent: agent, Spool: "s", Sent: p.c.Now()}
	if fs != nil {
		data, _ := json.Marshal(wire.Findings{Full: true, Open: fs})
		env.Records = []wire.Record{{Seq: uint64(p.c.Now().UnixNano()), Kind: wire.KindFindings, Time: p.c.Now(), Data: data}}
	}
	b, _ := json.Marshal(env)
	req := httptest.NewRequest(http.MethodPost, wire.Path, strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+tokens[agent])
	rec := httptest.NewRecorder()
	p.tw.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		p.t.Fatalf("report %s: %d %s", agent, rec.Code, rec.Body.String())
	}
}

// at moves the clock to t0+d, evaluates and delivers everything due.
func (p *policyTower) at(d time.Duration) {
	p.t.Helper()
	p.c.Set(p.t0.Add(d))
	if err := p.tw.Evaluate(context.Background(), p.c.Now()); err != nil {
		p.t.Fatal(err)
	}
	for _, ch := range []string{"ops", "boss", "mail"} {
		drain(p.t, p.tw, ch)
	}
}

func statuses(r *receiver) []string {
	var out []string
	for _, m := range r.messages() {
		s, _ := m["status"].(string)
		alerts, _ := m["alerts"].([]any)
		a, _ := alerts[0].(map[string]any)
		labels, _ := a["labels"].(map[string]any)
		out = append(out, s+" "+labels["key"].(string))
	}
	return out
}

func TestEscalationAndAck(t *testing.T) {
	p := newPolicyTower(t, `routes:
  - match: {kind: [heartbeat]}
    channels: [ops]
    repeat_interval: 1h
    escalate: {after: 15m, channels: [boss]}
`)
	p.report("pve1")
	p.report("pve2")
	p.at(31 * time.Second) // both silent: fire
	p.at(14 * time.Minute)
	if got := len(p.boss.messages()); got != 0 {
		t.Fatalf("escalated before 15 min: %v", statuses(p.boss))
	}
	// pve2 is acknowledged: no escalation, no repeat for it.
	if _, err := p.tw.Acknowledge(context.Background(), "heartbeat/pve2", "mika", "on it"); err != nil {
		t.Fatal(err)
	}
	p.at(15*time.Minute + 31*time.Second)
	p.at(30 * time.Minute)
	if got := statuses(p.boss); len(got) != 1 || got[0] != "firing heartbeat/pve1" {
		t.Fatalf("boss got %v, want one escalation of pve1", got)
	}
	if !strings.Contains(annotation(p.boss.messages()[0], "summary"), "ESCALATED") {
		t.Errorf("escalation not marked: %v", p.boss.messages()[0])
	}
	p.at(time.Hour + 31*time.Second) // repeat for pve1 only
	want := []string{"firing heartbeat/pve1", "firing heartbeat/pve2", "firing heartbeat/pve1"}
	if got := statuses(p.ops); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ops got %v, want %v", got, want)
	}
	p.report("pve2")
	p.at(time.Hour + time.Minute)
	msgs := p.ops.messages()
	last := annotation(msgs[len(msgs)-1], "description")
	if !strings.Contains(last, "Acknowledged by mika") || !strings.Contains(last, "on it") {
		t.Errorf("recovery of an acknowledged alert does not show the ack:\n%s", last)
	}
}

func TestEscalationSurvivesRestart(t *testing.T) {
	p := newPolicyTower(t, `routes:
  - match: {kind: [heartbeat]}
    channels: [ops]
    escalate: {after: 15m, channels: [boss]}
`)
	p.report("pve1")
	p.at(31 * time.Second)
	p.at(10 * time.Minute)
	p.restart()
	p.at(16 * time.Minute)
	p.restart()
	p.at(20 * time.Minute)
	if got := statuses(p.boss); len(got) != 1 {
		t.Fatalf("boss got %v across restarts, want exactly one escalation", got)
	}
	if got := statuses(p.ops); len(got) != 1 {
		t.Fatalf("ops got %v across restarts, want the one firing message", got)
	}
}

func TestSilenceNotifiesAtExpiryIfStillFiring(t *testing.T) {
	p := newPolicyTower(t, "")
	p.report("pve1")
	p.report("pve2")
	if _, err := p.tw.AddSilence(context.Background(), Silence{Match: Match{Host: "pve*"}, Ends: p.t0.Add(time.Hour), CreatedBy: "mika", Comment: "rack move"}); err != nil {
		t.Fatal(err)
	}
	p.at(31 * time.Second)
	if got := statuses(p.ops); len(got) != 0 {
		t.Fatalf("silenced alerts notified: %v", got)
	}
	p.c.Set(p.t0.Add(35 * time.Second))
	p.report("pve2") // pve2 comes back during the silence: nothing to say
	p.at(35 * time.Second)
	if a := p.tw.alerts["heartbeat/pve1"]; a.State.Status != "firing" || !strings.HasPrefix(a.Suppressed, "silence ") {
		t.Fatalf("a silenced alert must still be recorded as firing and say why: %+v", a)
	}
	p.c.Set(p.t0.Add(time.Hour + time.Second))
	p.report("pve2")
	p.at(time.Hour + time.Second)
	if got := statuses(p.ops); strings.Join(got, ",") != "firing heartbeat/pve1" {
		t.Fatalf("at expiry: %v, want pve1's firing (still down) and nothing for pve2", got)
	}
	if d := annotation(p.ops.messages()[0], "description"); !strings.Contains(d, "03:00:00") {
		t.Errorf("late notification does not keep the real start:\n%s", d)
	}
}

func TestMaintenanceWindowAcrossDST(t *testing.T) {
	w := MaintenanceConfig{Name: "backup", Start: "01:30", Duration: Duration(2 * time.Hour), TimeZone: "Europe/Berlin", Days: []string{"sun"}}
	if err := w.compile(); err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tt := range []struct {
		at     time.Time
		active bool
	}{
		// Sunday 2026-03-29: clocks go from 02:00 CET to 03:00 CEST. The
		// window starts at 01:30 CET (00:30 UTC) and lasts two real hours.
		{time.Date(2026, 3, 29, 0, 29, 0, 0, time.UTC), false},
		{time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC), true},
		{time.Date(2026, 3, 29, 2, 29, 0, 0, time.UTC), true},
		{time.Date(2026, 3, 29, 2, 30, 0, 0, time.UTC), false},
		// The Sunday before: 01:30 CET is 00:30 UTC too.
		{time.Date(2026, 3, 22, 1, 0, 0, 0, time.UTC), true},
		// The Sunday after: 01:30 CEST is 23:30 UTC on Saturday.
		{time.Date(2026, 4, 4, 23, 30, 0, 0, time.UTC), true},
		{time.Date(2026, 4, 4, 23, 29, 0, 0, time.UTC), false},
		// Sunday 2026-10-25: clocks go back; 01:30 CEST is 23:30 UTC Saturday.
		{time.Date(2026, 10, 24, 23, 30, 0, 0, time.UTC), true},
		{time.Date(2026, 10, 25, 1, 29, 0, 0, time.UTC), true},
		{time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), false},
		// A Monday at 01:30 local: not a window day.
		{time.Date(2026, 3, 30, 1, 30, 0, 0, berlin), false},
	} {
		if got := w.Active(tt.at); got != tt.active {
			t.Errorf("at %s (%s): active %v, want %v", tt.at.UTC().Format(time.RFC3339), tt.at.In(berlin).Format("Mon 15:04 MST"), got, tt.active)
		}
	}
}

func TestMaintenanceSuppresses(t *testing.T) {
	// Every day 03:00–04:00 UTC for pve1.
	p := newPolicyTower(t, "maintenance:\n  - {name: nightly, match: {host: pve1}, start: \"03:00\", duration: 1h, time_zone: UTC}\n")
	p.report("pve1")
	p.at(31 * time.Second)
	if got := statuses(p.ops); len(got) != 0 {
		t.Fatalf("notified during maintenance: %v", got)
	}
	p.at(time.Hour)
	if got := statuses(p.ops); strings.Join(got, ",") != "firing heartbeat/pve1" {
		t.Fatalf("after the window: %v", got)
	}
}

// TestDependencySuppression: while nas1 is silent, pve1's new finding does
// not open; pve2's finding that was open before still resolves.
func TestDependencySuppression(t *testing.T) {
	p := newPolicyTower(t, "dependencies:\n  - {host: nas1, dependents: [\"pve*\"]}\nroutes:\n  - {match: {}, channels: [ops]}\n")
	f := func(key string) finding.Finding {
		return finding.Finding{Key: key, Mode: "FM-C6", Severity: finding.High, Subject: key, Summary: key + " hangs", Runbook: "FM-C6"}
	}
	p.report("nas1")
	p.report("pve1")
	p.report("pve2", f("FM-C6//mnt/a"))
	p.at(time.Second)
	if got := statuses(p.ops); len(got) != 0 {
		t.Fatalf("a dependent's finding opened before its parent's state was known: %v", got)
	}
	// nas1 reports after the finding opened: its problem is pve2's own.
	p.c.Set(p.t0.Add(1500 * time.Millisecond))
	p.report("nas1")
	p.at(1500 * time.Millisecond)
	if got := statuses(p.ops); strings.Join(got, ",") != "firing finding/pve2/FM-C6//mnt/a" {
		t.Fatalf("before: %v", got)
	}
	p.at(29 * time.Second)
	p.report("pve1")
	p.report("pve2", f("FM-C6//mnt/a"))
	p.at(32 * time.Second) // nas1 silent now
	p.report("pve1", f("FM-C6//mnt/b"))
	p.report("pve2", f("FM-C6//mnt/c")) // mnt/a resolved, mnt/c opened
	p.at(33 * time.Second)
	got := strings.Join(statuses(p.ops), ",")
	if strings.Contains(got, "pve1/FM-C6//mnt/b") {
		t.Errorf("a dependent's alert opened while nas1 is silent: %s", got)
	}
	if !strings.Contains(got, "resolved finding/pve2/FM-C6//mnt/a") {
		t.Errorf("a resolution was suppressed: %s", got)
	}
	if a := p.tw.alerts["finding/pve1/FM-C6//mnt/b"]; a == nil || a.State.Status != "firing" || !strings.Contains(a.Suppressed, "nas1") {
		t.Errorf("the suppressed alert must be recorded with its reason: %+v", a)
	}
	// nas1 comes back: its recovery says what it releases, in the past tense.
	p.c.Set(p.t0.Add(5 * time.Minute))
	p.report("nas1")
	p.report("pve1", f("FM-C6//mnt/b"))
	p.report("pve2", f("FM-C6//mnt/c"))
	p.at(5 * time.Minute)
	found := false
	for _, m := range p.ops.messages() {
		if m["status"] == "resolved" && strings.Contains(annotation(m, "summary"), "nas1") {
			found = true
			if d := annotation(m, "description"); !strings.Contains(d, "Held back while nas1 was silent, and released now (sent if still going on):\n  pve1: FM-C6//mnt/b hangs (finding/pve1/FM-C6//mnt/b)\n  pve2: FM-C6//mnt/c hangs (finding/pve2/FM-C6//mnt/c)") {
				t.Errorf("nas1's recovery does not say it releases the held alerts:\n%s", d)
			}
		}
	}
	if !found {
		t.Errorf("no recovery message for nas1: %v", statuses(p.ops))
	}
}

func TestFallbackChannel(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such hook", http.StatusNotFound)
	}))
	defer broken.Close()
	p := newPolicyTower(t, "")
	p.cfg = strings.Replace(p.cfg, "  - {name: ops, type: webhook, url: "+p.ops.srv.URL+"}", "  - {name: ops, type: webhook, url: "+broken.URL+"}", 1) +
		"routes:\n  - {match: {}, channels: [ops], fallback: [mail]}\n"
	p.restart()
	p.report("pve1")
	p.at(31 * time.Second)
	p.at(32 * time.Second)
	msgs := p.mail.messages()
	if len(msgs) != 1 || !strings.Contains(annotation(msgs[0], "description"), `channel "ops" could not deliver`) {
		t.Fatalf("fallback got %v", msgs)
	}
}

// TestGrouping: twenty findings of one host within the grouping window
// arrive as one message listing them.
func TestGrouping(t *testing.T) {
	p := newPolicyTower(t, "routes:\n  - {match: {kind: [finding]}, channels: [ops], group_wait: 1m}\n  - {match: {}, channels: [ops]}\n")
	var fs []finding.Finding
	for i := range 20 {
		key := "FM-C2/space /srv" + string(rune('a'+i))
		fs = append(fs, finding.Finding{Key: key, Mode: "FM-C2", Severity: finding.High, Subject: key, Summary: key + " full", Runbook: "FM-C2"})
	}
	// Half of them first, the other half 20 s later: still one message.
	p.report("pve1", fs[:10]...)
	p.at(time.Second)
	p.c.Set(p.t0.Add(21 * time.Second))
	p.report("pve1", fs...)
	p.at(21 * time.Second)
	p.c.Set(p.t0.Add(29 * time.Second))
	p.report("pve1", fs...)
	p.at(59 * time.Second)
	if got := len(p.ops.messages()); got != 0 {
		t.Fatalf("%d messages inside the grouping window", got)
	}
	p.c.Set(p.t0.Add(61 * time.Second))
	p.report("pve1", fs...)
	p.at(61 * time.Second)
	msgs := p.ops.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want one for the group", len(msgs))
	}
	sum := annotation(msgs[0], "summary")
	desc := annotation(msgs[0], "description")
	if !strings.Contains(sum, "20 problems on pve1") || strings.Count(desc, "[HIGH]") != 20 {
		t.Errorf("group message:\n%s\n%s", sum, desc)
	}
	var merged int
	_ = dbOf(p.tw).QueryRow("SELECT count(*) FROM outbox WHERE state = 'merged'").Scan(&merged)
	if merged != 19 {
		t.Errorf("%d outbox rows merged, want 19", merged)
	}
}

// TestIncidentPostmortem replays the shape of a real outage: the NFS server
// hangs, a host that mounts it reports the hung mount and the kernel's
// "not responding"; one incident gathers both hosts, a person adds a note,
// and the export reads as a timeline with the impact and detection delay.
func TestIncidentPostmortem(t *testing.T) {
	p := newPolicyTower(t, "dependencies:\n  - {host: nas1, dependents: [\"pve*\"]}\nroutes:\n  - {match: {}, channels: [ops]}\n")
	p.report("nas1")
	p.report("pve1")
	p.at(time.Second)
	// nas1 stops answering at +0; pve1 keeps reporting.
	for _, s := range []time.Duration{20 * time.Second, 40 * time.Second} {
		p.c.Set(p.t0.Add(s))
		p.report("pve1")
		p.at(s)
	}
	hung := finding.Finding{Key: "FM-C6//mnt/pve/nfs", Mode: "FM-C6", Severity: finding.High, Subject: "/mnt/pve/nfs",
		Summary: "nfs4 mount /mnt/pve/nfs from nas1 does not answer (stat stuck for 2s)", Runbook: "FM-C6"}
	p.c.Set(p.t0.Add(50 * time.Second))
	p.report("pve1", hung)
	logLine, _ := json.Marshal(wire.Log{Signature: "nfs-not-responding", Mode: "FM-C6", Severity: finding.High, Title: "NFS server not responding",
		Source: "kernel", Line: "nfs: server nas1 not responding, still trying"})
	env, _ := json.Marshal(wire.Envelope{Agent: "pve1", Spool: "log", Records: []wire.Record{{Seq: 1, Kind: wire.KindLog, Time: p.t0.Add(45 * time.Second), Data: logLine}}})
	req := httptest.NewRequest(http.MethodPost, wire.Path, strings.NewReader(string(env)))
	req.Header.Set("Authorization", "Bearer "+tokenA)
	rec := httptest.NewRecorder()
	p.tw.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	p.at(50 * time.Second)
	list, err := p.tw.Incidents(context.Background(), 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("incidents %+v, %v; want one", list, err)
	}
	id := list[0].ID
	if err := p.tw.AddNote(context.Background(), id, "sksat", "NFS server does not answer on the console; forced reboot"); err != nil {
		t.Fatal(err)
	}
	p.c.Set(p.t0.Add(2 * time.Minute))
	if _, err := p.tw.Acknowledge(context.Background(), "heartbeat/nas1", "sksat", "rebooting the NAS"); err != nil {
		t.Fatal(err)
	}
	// nas1 is back at +10 min, pve1's mount answers again.
	p.c.Set(p.t0.Add(10 * time.Minute))
	p.report("nas1")
	p.report("pve1", finding.Finding{Key: "FM-B1/system", Mode: "FM-B1", Severity: finding.Low, Summary: "fine", Runbook: "FM-B1"})
	p.at(10 * time.Minute)
	list, _ = p.tw.Incidents(context.Background(), 10)
	if len(list) != 1 || list[0].Closed.IsZero() || !slices.Equal(list[0].Hosts, []string{"nas1", "pve1"}) {
		t.Fatalf("incident after recovery: %+v", list)
	}
	// A later outage of the same host is another incident; this one's
	// record keeps its own times.
	p.c.Set(p.t0.Add(3 * time.Hour))
	p.report("nas1")
	p.report("pve1")
	p.at(3 * time.Hour)
	p.c.Set(p.t0.Add(3*time.Hour + time.Minute))
	p.report("pve1")
	p.at(3*time.Hour + time.Minute)
	if list, _ = p.tw.Incidents(context.Background(), 10); len(list) != 2 {
		t.Fatalf("after a second outage: %+v, want two incidents", list)
	}
	md, err := p.tw.Postmortem(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Incident 1: Host nas1 is silent",
		"Host nas1 is silent — bad since 2026-11-25 03:00:00 UTC",
		"| 2026-11-25 03:02:00 | nas1 | ACKNOWLEDGED: Host nas1 is silent by sksat: rebooting the NAS |",
		"| Impact began | 2026-11-25 03:00:00 |",
		"| Detected (first alert fired) | 2026-11-25 03:00:40 |",
		"| Impact duration | 10m |",
		"| Detection delay | 40s |",
		"| 2026-11-25 03:00:40 | nas1 | FIRING: Host nas1 is silent, bad since 03:00:00 |",
		"| 2026-11-25 03:00:45 | pve1 | kernel: nfs: server nas1 not responding, still trying |",
		"| pve1 | finding (high): nfs4 mount /mnt/pve/nfs from nas1 does not answer",
		"(not sent: depends on nas1, which is silent)",
		"sksat: NFS server does not answer on the console; forced reboot |",
		"| 2026-11-25 03:10:00 | nas1 | Host nas1 is back after 10m |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("postmortem lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("postmortem:\n%s", md)
	}
}

// TestProbeThresholds: a probe alert opens only after failure_threshold
// failed runs in a row, dated from the first of them, and resolves only
// after success_threshold good runs; a single blip pages nobody.
func TestProbeThresholds(t *testing.T) {
	p := newPolicyTower(t, "routes:\n  - {match: {}, channels: [ops]}\nprobes:\n  - {name: shop, type: tcp, target: \"127.0.0.1:9\", failure_threshold: 3, success_threshold: 2}\n")
	run := func(sec int, status string) {
		t.Helper()
		p.c.Set(p.t0.Add(time.Duration(sec) * time.Second))
		p.tw.RecordProbe(ProbeResult{Name: "shop", Status: status, Started: p.c.Now()})
		p.at(time.Duration(sec) * time.Second)
	}
	firing := func() bool {
		a := p.tw.alerts["probe/shop"]
		return a != nil && a.State.Status == "firing"
	}
	run(0, "up")
	run(10, "down") // a blip
	run(20, "up")
	run(30, "down")
	run(40, "down")
	if firing() || len(p.ops.messages()) != 0 {
		t.Fatalf("fired before three failed runs in a row: %v", statuses(p.ops))
	}
	run(50, "down")
	if !firing() {
		t.Fatal("not firing after three failed runs in a row")
	}
	if a := p.tw.alerts["probe/shop"]; !a.State.BadSince.Equal(p.t0.Add(30 * time.Second)) {
		t.Errorf("bad since %s, want the first failed run of the streak (+30s)", a.State.BadSince)
	}
	// The API and /metrics show the probe as it stands.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/probes", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	p.tw.Handler().ServeHTTP(rec, req)
	var pr struct{ Probes []ProbeView }
	if err := json.Unmarshal(rec.Body.Bytes(), &pr); err != nil || len(pr.Probes) != 1 {
		t.Fatalf("/api/v1/probes: %d %s", rec.Code, rec.Body)
	}
	if v := pr.Probes[0]; v.Status != "down" || v.Failing != 3 || v.AlertKey != "probe/shop" || !v.Since.Equal(p.t0.Add(30*time.Second)) {
		t.Errorf("probe view %+v, want down for 3 runs since +30s", v)
	}
	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	p.tw.Handler().ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), `hinomi_probe_up{group="",probe="shop"} 0`) {
		t.Errorf("/metrics lacks the probe's up gauge at 0:\n%s", rec.Body)
	}
	run(60, "up")
	if !firing() {
		t.Error("resolved after one good run; success_threshold is 2")
	}
	run(70, "up")
	if firing() {
		t.Error("still firing after two good runs")
	}
	if got := statuses(p.ops); !slices.Equal(got, []string{"firing probe/shop", "resolved probe/shop"}) {
		t.Errorf("messages %v, want one firing and its resolution", got)
	} else if sub := annotation(p.ops.messages()[1], "summary"); !strings.Contains(sub, "Service shop is up again") {
		t.Errorf("the recovery reads %q, want it to say the service is up again", sub)
	}
	if _, err := ParseConfig([]byte("data_dir: /tmp/x\nagents: []\nprobes:\n  - {name: a, type: tcp, target: \"127.0.0.1:9\", failure_threshold: -1}\n"), "t.yaml"); err == nil || !strings.Contains(err.Error(), "failure_threshold") {
		t.Errorf("a negative threshold: %v", err)
	}
}

// A notification links to what a person can open: the incident's page on
// the console when the console has users, the API otherwise.
func TestNotificationLinks(t *testing.T) {
	for _, c := range []struct{ extra, want string }{
		{"console:\n  users: [{name: mika, password_hash: '$2a$04$kjDNublNMYMOTea99tfrE.XIQVq5JKd4clldsMGAX728Sh1VJliaW'}]\n", "https://tower.example/console/incidents/1"},
		{"", "https://tower.example/api/v1/alerts?key=heartbeat%2Fpve1"},
	} {
		p := newPolicyTower(t, "url: https://tower.example/\nroutes:\n  - {match: {}, channels: [ops]}\n"+c.extra)
		p.report("pve1")
		p.at(time.Minute)
		msgs := p.ops.messages()
		if len(msgs) != 1 {
			t.Fatalf("messages %v, want pve1's firing", statuses(p.ops))
		}
		alerts, _ := msgs[0]["alerts"].([]any)
		a, _ := alerts[0].(map[string]any)
		if got := a["generatorURL"]; got != c.want {
			t.Errorf("link %v, want %s", got, c.want)
		}
	}
}
