package tower

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/wire"
)

const (
	tokenA = "token-aaaaaaaaaaaaaaaa"
	tokenB = "token-bbbbbbbbbbbbbbbb"
)

// clock is a controllable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// receiver is a webhook endpoint that records what it gets.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []map[string]any
	fail int // answer 500 this many times first
	seen chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{seen: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		if r.fail > 0 {
			r.fail--
			r.mu.Unlock()
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		var m map[string]any
		_ = json.NewDecoder(req.Body).Decode(&m)
		r.got = append(r.got, m)
		r.mu.Unlock()
		r.seen <- struct{}{}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) messages() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.got...)
}

func newTower(t *testing.T, c *clock, channels string) *Tower {
	t.Helper()
	return openTower(t, c, `
data_dir: `+t.TempDir()+`
grace: 30s
api_token: `+apiToken+`
agents:
  - name: pve1
    token: `+tokenA+`
  - name: pve2
    token: `+tokenB+`
alerts:
  min_severity: medium
  never_reported: false
`+channels)
}

// openTower opens a tower on the configuration text, on the test's clock.
func openTower(t *testing.T, c *clock, config string) *Tower {
	t.Helper()
	cfg, err := ParseConfig([]byte(config), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tw, err := newTestTower(t, cfg, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw.store.Close() })
	return tw
}

func batch(agent, spool string, seqs ...uint64) []byte {
	env := wire.Envelope{Agent: agent, Spool: spool, Sent: time.Now()}
	for _, s := range seqs {
		env.Records = append(env.Records, wire.Record{Seq: s, Kind: wire.KindStatus, Time: time.Now(), Data: json.RawMessage(`{"event":"cycle"}`)})
	}
	b, _ := json.Marshal(env)
	return b
}

func post(t *testing.T, h http.Handler, token string, body []byte) (*httptest.ResponseRecorder, wire.Reply) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, wire.Path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var reply wire.Reply
	_ = json.Unmarshal(rec.Body.Bytes(), &reply)
	return rec, reply
}

func count(t *testing.T, tw *Tower, q string, args ...any) int {
	t.Helper()
	var n int
	if err := dbOf(tw).QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIngestAuthAndBadInput(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
	tw := newTower(t, c, "")
	h := tw.Handler()
	for _, tt := range []struct {
		name  string
		token string
		body  []byte
		code  int
	}{
		{"no token", "", batch("pve1", "s1", 1), 401},
		{"wrong token", "token-cccccccccccccccc", batch("pve1", "s1", 1), 401},
		{"another agent's name", tokenB, batch("pve1", "s1", 1), 403},
		{"malformed JSON", tokenA, []byte(`{"agent":"pve1","records":[`), 400},
		{"seq zero", tokenA, batch("pve1", "s1", 0), 400},
		{"seq out of order", tokenA, batch("pve1", "s1", 2, 1), 400},
		{"oversized", tokenA, append([]byte(`{"agent":"pve1","spool":"s1","records":[],"pad":"`), append(bytes.Repeat([]byte("x"), wire.MaxBody), '"', '}')...), 413},
	} {
		rec, reply := post(t, h, tt.token, tt.body)
		if rec.Code != tt.code || reply.Error == "" {
			t.Errorf("%s: %d %q, want %d with an error", tt.name, rec.Code, reply.Error, tt.code)
		}
	}
	if n := count(t, tw, "SELECT count(*) FROM records"); n != 0 {
		t.Errorf("%d records stored from rejected batches", n)
	}
	if n := count(t, tw, "SELECT count(*) FROM hosts"); n != 0 {
		t.Errorf("%d hosts from rejected batches", n)
	}
}

func TestIngestIsIdempotent(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
	tw := newTower(t, c, "")
	h := tw.Handler()
	for range 3 { // the agent resends after a lost reply
		rec, reply := post(t, h, tokenA, batch("pve1", "s1", 1, 2, 3))
		if rec.Code != 200 || reply.Acked != 3 {
			t.Fatalf("got %d %+v", rec.Code, reply)
		}
	}
	_, reply := post(t, h, tokenA, batch("pve1", "s1", 3, 4))
	if reply.Acked != 4 {
		t.Errorf("acked %d, want 4", reply.Acked)
	}
	if n := count(t, tw, "SELECT count(*) FROM records WHERE agent = 'pve1'"); n != 4 {
		t.Errorf("%d records stored, want 4", n)
	}
	// A reinstalled agent starts a new spool at 1: not a duplicate.
	_, reply = post(t, h, tokenA, batch("pve1", "s2", 1))
	if reply.Acked != 1 || count(t, tw, "SELECT count(*) FROM records") != 5 {
		t.Errorf("new spool: acked %d", reply.Acked)
	}
}

// TestSilentHostAlert drives the clock by hand: a host that stops
// reporting fires after its grace with its last report as the start, a
// repeat reminds, and the recovery states the downtime.
func TestSilentHostAlert(t *testing.T) {
	r := newReceiver(t)
	t0 := time.Date(2026, 11, 25, 3, 0, 12, 0, time.UTC)
	c := &clock{now: t0}
	tw := newTower(t, c, "channels:\n  - name: ops\n    type: webhook\n    url: "+r.srv.URL+"\n")
	h := tw.Handler()
	ctx := context.Background()
	if rec, _ := post(t, h, tokenA, batch("pve1", "s1")); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	steps := []struct {
		at      time.Duration
		wantSt  string
		wantMsg int
	}{
		{29 * time.Second, "ok", 0},
		{31 * time.Second, "firing", 1},
		{4*time.Hour + time.Minute, "firing", 2}, // repeat after repeat_interval (4h)
	}
	for _, s := range steps {
		c.Set(t0.Add(s.at))
		if err := tw.Evaluate(ctx, c.Now()); err != nil {
			t.Fatal(err)
		}
		drain(t, tw, "ops")
		a := tw.alerts["heartbeat/pve1"]
		if a == nil || string(a.State.Status) != s.wantSt {
			t.Fatalf("at +%s: alert %+v, want %s", s.at, a, s.wantSt)
		}
		if got := len(r.messages()); got != s.wantMsg {
			t.Fatalf("at +%s: %d messages, want %d", s.at, got, s.wantMsg)
		}
	}
	fire := r.messages()[0]
	desc := annotation(fire, "description")
	if !strings.Contains(desc, "03:00:12") || !strings.Contains(annotation(fire, "summary"), "pve1") {
		t.Errorf("firing message lacks the start time: %v", fire)
	}
	if !strings.Contains(desc, "since") {
		t.Errorf("firing message does not say since when: %s", desc)
	}
	repeat := annotation(r.messages()[1], "description")
	if !strings.Contains(repeat, "4h") {
		t.Errorf("repeat message does not say how long: %s", repeat)
	}
	// Back after 5 h: resolved, with the total downtime.
	c.Set(t0.Add(5*time.Hour + 12*time.Minute))
	if rec, _ := post(t, h, tokenA, batch("pve1", "s1")); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	if err := tw.Evaluate(ctx, c.Now()); err != nil {
		t.Fatal(err)
	}
	drain(t, tw, "ops")
	msgs := r.messages()
	if len(msgs) != 3 || msgs[2]["status"] != "resolved" {
		t.Fatalf("messages %v", msgs)
	}
	if d := annotation(msgs[2], "description"); !strings.Contains(d, "5h 12m") {
		t.Errorf("recovery does not state the downtime: %s", d)
	}
}

func annotation(m map[string]any, key string) string {
	alerts, _ := m["alerts"].([]any)
	if len(alerts) == 0 {
		return ""
	}
	a, _ := alerts[0].(map[string]any)
	ann, _ := a["annotations"].(map[string]any)
	s, _ := ann[key].(string)
	return s
}

// drain sends every due outbox row of a channel.
func drain(t *testing.T, tw *Tower, channel string) {
	t.Helper()
	for {
		sent, err := tw.out.sendNext(context.Background(), channel)
		if err != nil {
			t.Fatal(err)
		}
		if !sent {
			return
		}
	}
}

// TestFindingAlertAndRetry: a finding at or above min_severity fires, the
// receiver fails three times and then gets it exactly once.
func TestFindingAlertAndRetry(t *testing.T) {
	r := newReceiver(t)
	r.fail = 3
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	tw := newTower(t, c, "channels:\n  - name: ops\n    type: webhook\n    url: "+r.srv.URL+"\n")
	since := t0.Add(-10 * time.Minute)
	f := finding.Finding{Key: "FM-B2/uid 0", Mode: "FM-B2", Severity: finding.High, Subject: "uid 0", Summary: "inotify watches 97% used", Since: &since, Runbook: "FM-B2"}
	low := finding.Finding{Key: "FM-C2/space /", Mode: "FM-C2", Severity: finding.Low, Subject: "space /", Summary: "/ is 81% full", Runbook: "FM-C2"}
	data, _ := json.Marshal(wire.Findings{Full: true, Open: []finding.Finding{f, low}})
	env, _ := json.Marshal(wire.Envelope{Agent: "pve1", Spool: "s1", Records: []wire.Record{{Seq: 1, Kind: wire.KindFindings, Time: t0, Data: data}}})
	if rec, _ := post(t, tw.Handler(), tokenA, env); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	if err := tw.Evaluate(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	if tw.alerts["finding/pve1/FM-C2/space /"] != nil {
		t.Error("a low finding became an alert below min_severity medium")
	}
	for i := 0; i < 4; i++ {
		// Each retry is due after its backoff: move the clock past it.
		c.Set(c.Now().Add(10 * time.Minute))
		drain(t, tw, "ops")
	}
	msgs := r.messages()
	if len(msgs) != 1 {
		t.Fatalf("receiver got %d messages, want exactly 1 after 3 failures", len(msgs))
	}
	if d := annotation(msgs[0], "description"); !strings.Contains(d, "02:50:00") {
		t.Errorf("message does not start at the finding's own start time: %s", d)
	}
	var attempts int
	_ = dbOf(tw).QueryRow("SELECT attempts FROM outbox").Scan(&attempts)
	if attempts != 4 {
		t.Errorf("outbox attempts %d, want 4", attempts)
	}
}

func TestConfigErrorsNameLineAndField(t *testing.T) {
	_, err := ParseConfig([]byte("data_dir: /tmp/x\nagents:\n  - name: pve1\n    token: short\n  - name: pve1\n    token: aaaaaaaaaaaaaaaaaaaa\nalerts:\n  min_severity: loud\n"), "tower.yaml")
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"tower.yaml", "line 4: agents.0.token: too short", "line 5: agents.1.name", "line 8: alerts.min_severity"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	_, err = ParseConfig([]byte("data_dir: /tmp/x\nagnets: []\n"), "tower.yaml")
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "agnets") {
		t.Errorf("unknown field: %v", err)
	}
}

// TestHangingReceiverDoesNotDelayOthers runs the tower's real dispatchers:
// one channel's receiver never answers, the other gets its message at
// once.
func TestHangingReceiverDoesNotDelayOthers(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	r := newReceiver(t)
	t0 := time.Now()
	c := &clock{now: t0}
	tw := newTower(t, c, "channels:\n  - name: hung\n    type: webhook\n    url: "+hung.URL+"\n  - name: ops\n    type: webhook\n    url: "+r.srv.URL+"\n")
	ctx, cancel := context.WithCancel(context.Background())
	tw.out.start(ctx)
	defer func() { cancel(); close(release); tw.out.wg.Wait() }()
	if rec, _ := post(t, tw.Handler(), tokenA, batch("pve1", "s1")); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	// A first message gets the hung channel stuck in its send.
	c.Set(t0.Add(time.Minute))
	if err := tw.Evaluate(ctx, c.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.seen:
	case <-time.After(time.Second):
		t.Fatal("the healthy channel did not get the message within 1 s while the other hangs")
	}
	// And a second one, while the hung channel is still stuck.
	if rec, _ := post(t, tw.Handler(), tokenA, batch("pve1", "s1")); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	if err := tw.Evaluate(ctx, c.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.seen:
	case <-time.After(time.Second):
		t.Fatal("the recovery did not reach the healthy channel within 1 s")
	}
}

// TestLastWords: an agent back after a crash reports findings about the
// boot that ended; the recovery message quotes them.
func TestLastWords(t *testing.T) {
	r := newReceiver(t)
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	tw := newTower(t, c, "channels:\n  - name: ops\n    type: webhook\n    url: "+r.srv.URL+"\n")
	h := tw.Handler()
	if rec, _ := post(t, h, tokenA, batch("pve1", "s1")); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	c.Set(t0.Add(5 * time.Hour))
	if err := tw.Evaluate(context.Background(), c.Now()); err != nil {
		t.Fatal(err)
	}
	// The previous-boot line of a real host crash, as the agent's first cycle
	// sends it.
	at := t0.Add(-time.Minute)
	f := finding.Finding{Key: "FM-E1/previous boot: kernel-sched-atomic comm=dockerd", Mode: "FM-E1", Severity: finding.High,
		Subject: "previous boot: kernel-sched-atomic comm=dockerd", Summary: "Kernel BUG, scheduling while atomic (comm=dockerd).",
		Evidence: finding.Evidence{Lines: []finding.Line{{Time: &at, Text: "BUG: scheduling while atomic: dockerd/579097/0x00000000"}}}}
	data, _ := json.Marshal(wire.Findings{Full: true, Open: []finding.Finding{f}})
	env, _ := json.Marshal(wire.Envelope{Agent: "pve1", Spool: "s2", Records: []wire.Record{{Seq: 1, Kind: wire.KindFindings, Time: c.Now(), Data: data}}})
	if rec, _ := post(t, h, tokenA, env); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	if err := tw.Evaluate(context.Background(), c.Now()); err != nil {
		t.Fatal(err)
	}
	drain(t, tw, "ops")
	var resolved map[string]any
	for _, m := range r.messages() {
		if m["status"] == "resolved" {
			resolved = m
		}
	}
	if resolved == nil {
		t.Fatal("no recovery message")
	}
	text := annotation(resolved, "summary") + annotation(resolved, "description")
	if !strings.Contains(text, "scheduling while atomic: dockerd/579097") || !strings.Contains(text, "02:59:00") {
		t.Errorf("recovery message does not quote the last words with their time:\n%s", text)
	}
}

func TestReloadKeepsOldConfigOnError(t *testing.T) {
	sqliteOnly(t, "it reloads a configuration file that names no store")
	c := &clock{now: time.Now()}
	tw := newTower(t, c, "")
	old := tw.cfg.Load()
	path := t.TempDir() + "/tower.yaml"
	if err := os.WriteFile(path, []byte("data_dir: "+old.DataDir+"\nagents: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tw.Reload(path); err == nil || !strings.Contains(err.Error(), "agents") {
		t.Fatalf("bad reload: %v", err)
	}
	if tw.cfg.Load() != old {
		t.Error("a failed reload replaced the configuration")
	}
	good := "data_dir: " + old.DataDir + "\nagents:\n  - {name: pve9, token: " + tokenA + "}\n"
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tw.Reload(path); err != nil {
		t.Fatal(err)
	}
	if got := tw.cfg.Load().Agents[0].Name; got != "pve9" {
		t.Errorf("after reload agent %q", got)
	}
}

// TestNeverReportedAgentAlerts: a configured agent that never reports (not
// started, or started with the wrong name or token) is a silent host once
// its grace has passed since the tower began expecting it.
func TestNeverReportedAgentAlerts(t *testing.T) {
	r := newReceiver(t)
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	tw := openTower(t, c, "data_dir: "+t.TempDir()+"\ngrace: 30s\nagents:\n  - {name: pve1, token: "+tokenA+"}\n  - {name: pve2, token: "+tokenB+"}\nchannels:\n  - {name: ops, type: webhook, url: "+r.srv.URL+"}\n")
	ctx := context.Background()
	step := func(at time.Duration) {
		t.Helper()
		c.Set(t0.Add(at))
		if at > 0 {
			if rec, _ := post(t, tw.Handler(), tokenB, batch("pve2", "s1")); rec.Code != 200 {
				t.Fatal(rec.Body.String())
			}
		}
		if err := tw.Evaluate(ctx, c.Now()); err != nil {
			t.Fatal(err)
		}
		drain(t, tw, "ops")
	}
	step(0)
	step(29 * time.Second)
	if n := len(r.messages()); n != 0 {
		t.Fatalf("%d messages within the grace", n)
	}
	step(31 * time.Second)
	msgs := r.messages()
	if len(msgs) != 1 || !strings.Contains(annotation(msgs[0], "summary"), "pve1") {
		t.Fatalf("after the grace: %v, want pve1 silent", msgs)
	}
	desc := annotation(msgs[0], "description")
	if !strings.Contains(desc, "never reported") || !strings.Contains(desc, "03:00:00") || !strings.Contains(desc, "--name pve1") {
		t.Errorf("message does not say pve1 never reported since 03:00:00 and how to check: %s", desc)
	}
	// It starts: resolved.
	c.Set(t0.Add(2 * time.Minute))
	if rec, _ := post(t, tw.Handler(), tokenA, batch("pve1", "s1")); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	step(2 * time.Minute)
	if a := tw.alerts["heartbeat/pve1"]; a == nil || a.State.Status != "resolved" {
		t.Errorf("pve1 reported, alert %+v, want resolved", a)
	}
	if msgs := r.messages(); len(msgs) != 2 || msgs[1]["status"] != "resolved" {
		t.Errorf("messages %v, want the firing and its resolution", msgs)
	}
}
