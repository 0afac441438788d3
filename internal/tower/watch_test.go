package tower

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// subjects are the subject lines a receiver got, in order.
func subjects(r *receiver) []string {
	var out []string
	for _, m := range r.messages() {
		out = append(out, annotation(m, "summary"))
	}
	return out
}

func wantSubjects(t *testing.T, r *receiver, want ...string) {
	t.Helper()
	got := subjects(r)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("messages received:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestRestartDoesNotPageHealthyHosts: the tower is down for ten minutes
// while its agents keep running. On its start it gives every host its
// grace before calling it silent; the host that stays silent is paged once
// its grace from the start has passed; the alert that fired before the
// restart stays firing, is not sent again, and resolves with its whole
// downtime.
func TestRestartDoesNotPageHealthyHosts(t *testing.T) {
	p := newPolicyTower(t, "routes:\n  - {match: {}, channels: [ops]}\n")
	p.report("nas1")
	p.report("pve1")
	p.report("pve2")
	p.at(time.Second)
	for _, s := range []time.Duration{20 * time.Second, 40 * time.Second} {
		p.c.Set(p.t0.Add(s))
		p.report("pve1")
		p.report("pve2")
		p.at(s)
	}
	wantSubjects(t, p.ops, "[FIRING] Host nas1 is silent — since 03:00:00 UTC (40s ago)")

	// The tower is down from +45 s to +10 m 45 s; its agents' batches wait
	// in their spools.
	p.c.Set(p.t0.Add(10*time.Minute + 45*time.Second))
	p.restart()
	p.at(10*time.Minute + 46*time.Second)
	p.c.Set(p.t0.Add(10*time.Minute + 50*time.Second))
	p.report("pve1") // pve1's agent delivers its backlog; pve2 stays silent
	p.at(11*time.Minute + 15*time.Second)
	wantSubjects(t, p.ops, "[FIRING] Host nas1 is silent — since 03:00:00 UTC (40s ago)")

	p.report("pve1")
	p.at(11*time.Minute + 16*time.Second)
	wantSubjects(t, p.ops,
		"[FIRING] Host nas1 is silent — since 03:00:00 UTC (40s ago)",
		"[FIRING] Host pve2 is silent — since 03:00:40 UTC (10m 36s ago)")
	desc := annotation(p.ops.messages()[1], "description")
	if !strings.Contains(desc, "This tower was not watching until 2026-11-25 03:10:45 UTC, so it gave pve2 its grace from then.") {
		t.Errorf("pve2's page does not say the tower was not watching:\n%s", desc)
	}

	p.c.Set(p.t0.Add(12 * time.Minute))
	p.report("nas1")
	p.report("pve1")
	p.at(12 * time.Minute)
	wantSubjects(t, p.ops,
		"[FIRING] Host nas1 is silent — since 03:00:00 UTC (40s ago)",
		"[FIRING] Host pve2 is silent — since 03:00:40 UTC (10m 36s ago)",
		"[RESOLVED] Host nas1 is back — was down 12m (03:00:00 → 03:12:00 UTC)")
}

// TestRestartKeepsNeverReportedWorking: a configured agent that never
// reports is still called silent once its grace from the tower's start has
// passed, across a restart.
func TestRestartKeepsNeverReportedWorking(t *testing.T) {
	p := newPolicyTower(t, "routes:\n  - {match: {}, channels: [ops]}\n")
	p.cfg = strings.Replace(p.cfg, "alerts: {never_reported: false}\n", "", 1)
	p.restart()
	p.report("pve1")
	p.report("pve2")
	p.at(0)
	p.c.Set(p.t0.Add(5 * time.Minute))
	p.restart()
	p.report("pve1")
	p.report("pve2")
	p.at(5 * time.Minute)
	p.report("pve1")
	p.report("pve2")
	p.at(5*time.Minute + 30*time.Second)
	wantSubjects(t, p.ops)
	p.report("pve1")
	p.report("pve2")
	p.at(5*time.Minute + 31*time.Second)
	wantSubjects(t, p.ops, "[FIRING] Host nas1 is silent — since 03:05:00 UTC (31s ago)")
}

// TestWatchGapReason: what the engine takes for a gap it could not watch
// through, and what it does not (a slow turn, NTP's small corrections).
func TestWatchGapReason(t *testing.T) {
	for _, tt := range []struct {
		wall, mono, wait time.Duration
		want             string
	}{
		{250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, ""},
		{12 * time.Second, 12 * time.Second, 250 * time.Millisecond, ""}, // a slow evaluation
		{2 * time.Second, 250 * time.Millisecond, 250 * time.Millisecond, ""},
		{10 * time.Minute, 250 * time.Millisecond, 250 * time.Millisecond, "the machine was suspended or the clock jumped forward"},
		{-time.Minute, 250 * time.Millisecond, 250 * time.Millisecond, "the clock was set back"},
		{30 * time.Second, 30 * time.Second, 30 * time.Second, "the process was stopped or starved"},
	} {
		got := watchGapReason(tt.wall, tt.mono, tt.wait)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("watchGapReason(%s, %s, %s) = %q; want %q", tt.wall, tt.mono, tt.wait, got, tt.want)
		}
	}
}

// engineClock is a wall clock and a monotonic clock that a test moves
// together (time passes) or apart (the machine sleeps, the clock is set).
type engineClock struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

func (c *engineClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.wall }
func (c *engineClock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}
func (c *engineClock) move(wall, mono time.Duration) {
	c.mu.Lock()
	c.wall, c.mono = c.wall.Add(wall), c.mono+mono
	c.mu.Unlock()
}

// TestEngineGivesGraceAfterSuspendOrClockJump runs the tower's real engine
// loop on a clock the test moves. After a gap the tower could not have
// watched through, a host that reports within its grace from the resume is
// not paged, and one that stays silent is paged after that grace, once.
func TestEngineGivesGraceAfterSuspendOrClockJump(t *testing.T) {
	for _, tt := range []struct {
		name       string
		wall, mono time.Duration
		page       string // pve2's
	}{
		{"machine resumed from suspend", 10 * time.Minute, 0, "[FIRING] Host pve2 is silent — since 03:00:00 UTC (10m 41s ago)"},
		{"clock jumped forward", 2 * time.Hour, 0, "[FIRING] LONG OUTAGE: Host pve2 is silent — since 03:00:00 UTC (2h ago)"},
		{"process stopped and continued", 10 * time.Minute, 10 * time.Minute, "[FIRING] Host pve2 is silent — since 03:00:00 UTC (10m 41s ago)"},
		// Its last report is dated on the time line before the clock went
		// back: the silence counts from the resume.
		{"clock set back", -10 * time.Minute, 0, "[FIRING] Host pve2 is silent — since 02:50:10 UTC (31s ago)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t)
			c := &engineClock{wall: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
			tw := openTower(t, &clock{}, "data_dir: "+t.TempDir()+"\ngrace: 30s\nalerts: {never_reported: false}\nagents:\n  - {name: pve1, token: "+tokenA+"}\n  - {name: pve2, token: "+tokenB+"}\nchannels:\n  - {name: ops, type: webhook, url: "+r.srv.URL+"}\n")
			tw.now, tw.mono = c.Now, c.Mono
			for _, tok := range []string{tokenA, tokenB} {
				if rec, _ := post(t, tw.Handler(), tok, batch(map[string]string{tokenA: "pve1", tokenB: "pve2"}[tok], "s1")); rec.Code != 200 {
					t.Fatal(rec.Body.String())
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); tw.engine(ctx) }()
			defer func() { cancel(); <-done }()
			evaluated := func() {
				t.Helper()
				want := c.Now().UnixNano()
				deadline := time.Now().Add(10 * time.Second)
				for tw.lastEval.Load() != want {
					if time.Now().After(deadline) {
						t.Fatalf("the engine did not evaluate at %s", c.Now())
					}
					tw.kick()
					time.Sleep(5 * time.Millisecond)
				}
			}
			// Time passes normally, in steps shorter than the grace.
			step := func(n int) {
				t.Helper()
				for range n {
					c.move(5*time.Second, 5*time.Second)
					evaluated()
				}
			}
			evaluated()
			step(2) // +10 s
			if rec, _ := post(t, tw.Handler(), tokenA, batch("pve1", "s1", 1)); rec.Code != 200 {
				t.Fatal(rec.Body.String())
			}
			evaluated()

			c.move(tt.wall, tt.mono) // the gap
			evaluated()
			step(4) // +20 s after the resume
			if rec, _ := post(t, tw.Handler(), tokenA, batch("pve1", "s1", 2)); rec.Code != 200 {
				t.Fatal(rec.Body.String())
			}
			step(2) // +30 s: pve2 still within its grace from the resume
			c.move(time.Second, time.Second)
			evaluated() // +31 s
			cancel()
			<-done
			drain(t, tw, "ops")
			wantSubjects(t, r, tt.page)
		})
	}
}

// TestSharedFailurePagesOnceForTheParent: the NAS and a host that depends
// on it die together, the host's last batch 0.6 s older than the NAS's.
// The host's opening waits for the NAS's state; the NAS is paged once and
// names the alert it holds back; when the NAS is back and the host is
// still silent, the host is paged, saying it was held back and how long.
func TestSharedFailurePagesOnceForTheParent(t *testing.T) {
	p := newPolicyTower(t, "dependencies:\n  - {host: nas1, dependents: [\"pve*\"]}\nroutes:\n  - {match: {}, channels: [ops]}\n")
	p.report("pve1")
	p.report("pve2")
	p.c.Set(p.t0.Add(600 * time.Millisecond))
	p.report("nas1") // nas1's last batch; pve1's was 0.6 s older
	p.at(time.Second)
	for _, s := range []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second} {
		p.c.Set(p.t0.Add(s))
		p.report("pve2") // pve2 keeps running
		p.at(s)
	}
	p.at(30*time.Second + 200*time.Millisecond) // pve1 is silent, nas1 not yet
	wantSubjects(t, p.ops)
	if a := p.tw.alerts["heartbeat/pve1"]; a == nil || a.Suppressed != "depends on nas1, whose state is not known yet" {
		t.Fatalf("pve1's alert %+v, want held until nas1's state is known", a)
	}
	p.at(30*time.Second + 800*time.Millisecond) // nas1 is silent too
	wantSubjects(t, p.ops, "[FIRING] Host nas1 is silent — since 03:00:00 UTC (30s ago)")
	desc := annotation(p.ops.messages()[0], "description")
	if !strings.Contains(desc, "Held back while nas1 is silent (its own alerts and those of hosts that depend on it):\n  Host pve1 is silent (heartbeat/pve1)\n") {
		t.Errorf("nas1's page does not name what it holds back:\n%s", desc)
	}

	// nas1 is back after 5 min; pve1 is still silent.
	p.c.Set(p.t0.Add(5 * time.Minute))
	p.report("nas1")
	p.report("pve2")
	p.at(5 * time.Minute)
	wantSubjects(t, p.ops,
		"[FIRING] Host nas1 is silent — since 03:00:00 UTC (30s ago)",
		"[RESOLVED] Host nas1 is back — was down 4m 59s (03:00:00 → 03:05:00 UTC)",
		"[FIRING] Host pve1 is silent — since 03:00:00 UTC (5m ago)")
	msgs := p.ops.messages()
	if d := annotation(msgs[1], "description"); !strings.Contains(d, "Held back while nas1 was silent, and released now (sent if still going on):\n  Host pve1 is silent (heartbeat/pve1)\n") {
		t.Errorf("nas1's recovery does not name what it released:\n%s", d)
	}
	if d := annotation(msgs[2], "description"); !strings.Contains(d, "Held back for 4m 29s (from 03:00:30 UTC) while nas1, which pve1 depends on, was silent; nas1 is back and this is still going on.") {
		t.Errorf("pve1's late page does not say it was held back and for how long:\n%s", d)
	}
	// The incident's timeline tells the same story.
	list, err := p.tw.Incidents(context.Background(), 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("incidents %+v, %v; want one", list, err)
	}
	md, err := p.tw.Postmortem(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 2026-11-25 03:00:30 | pve1 | FIRING: Host pve1 is silent, bad since 03:00:00 (not sent: depends on nas1, whose state is not known yet) |",
		"| 2026-11-25 03:00:30 | nas1 | FIRING: Host nas1 is silent, bad since 03:00:00 |",
		"| 2026-11-25 03:05:00 | nas1 | Host nas1 is back after 4m 59s |",
		"| 2026-11-25 03:05:00 | pve1 | SENT: Host pve1 is silent, held back for 4m 29s (depends on nas1, which is silent) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the postmortem lacks %q:\n%s", want, md)
		}
	}
}

// TestDependentWaitsOnlyUntilItsParentIsKnownUp: a dependent host dies
// alone; its page waits only until its parent reports again.
func TestDependentWaitsOnlyUntilItsParentIsKnownUp(t *testing.T) {
	p := newPolicyTower(t, "dependencies:\n  - {host: nas1, dependents: [\"pve*\"]}\nroutes:\n  - {match: {}, channels: [ops]}\n")
	p.report("pve1")
	for _, s := range []time.Duration{5 * time.Second, 15 * time.Second, 25 * time.Second} {
		p.c.Set(p.t0.Add(s))
		p.report("nas1")
		p.report("pve2")
		p.at(s)
	}
	p.at(30*time.Second + 200*time.Millisecond)
	wantSubjects(t, p.ops)
	p.c.Set(p.t0.Add(35 * time.Second))
	p.report("nas1")
	p.at(35 * time.Second)
	wantSubjects(t, p.ops, "[FIRING] Host pve1 is silent — since 03:00:00 UTC (35s ago)")
	if d := annotation(p.ops.messages()[0], "description"); !strings.Contains(d, "Held back for 4s (from 03:00:30 UTC) until nas1, which pve1 depends on, was known to be up: this is pve1's own problem.") {
		t.Errorf("pve1's page does not say why it came late:\n%s", d)
	}
}

// TestFlappingEpisodeEndTellsWhatHappened: a host goes silent four times
// in two minutes, is reported as flapping, then stays up. The end of the
// episode says how often it flapped, between when, how long it was down in
// all, and since when it is stable, not "is silent … was down".
func TestFlappingEpisodeEndTellsWhatHappened(t *testing.T) {
	p := newPolicyTower(t, "routes:\n  - {match: {}, channels: [ops]}\n")
	p.cfg = strings.Replace(p.cfg, "alerts: {never_reported: false}", "alerts: {never_reported: false, flap: {spells: 3, window: 10m, stable: 5m}}", 1)
	p.restart()
	at := func(d time.Duration, report bool) {
		t.Helper()
		p.c.Set(p.t0.Add(d))
		if report {
			p.report("pve1")
		}
		p.at(d)
	}
	at(0, true)
	for _, s := range []struct {
		silent, back time.Duration
	}{{31 * time.Second, 40 * time.Second}, {71 * time.Second, 80 * time.Second}, {111 * time.Second, 120 * time.Second}, {151 * time.Second, 155 * time.Second}} {
		at(s.silent, false)
		at(s.back, true)
	}
	for d := 175 * time.Second; d < 455*time.Second; d += 20 * time.Second {
		at(d, true)
	}
	at(456*time.Second, true)
	wantSubjects(t, p.ops,
		"[FIRING] Host pve1 is silent — since 03:00:00 UTC (31s ago)",
		"[RESOLVED] (brief) Host pve1 is back — was down 40s (03:00:00 → 03:00:40 UTC)",
		"[FIRING] Host pve1 is silent — since 03:00:40 UTC (31s ago)",
		"[RESOLVED] (brief) Host pve1 is back — was down 40s (03:00:40 → 03:01:20 UTC)",
		"[FIRING] Host pve1 is silent (flapping) — since 03:00:00 UTC (1m 51s ago)",
		"[RESOLVED] Host pve1 is stable again — flapped 4 times between 03:00:00 and 03:02:00 UTC, down 2m 35s in total; up and stable since 03:02:35 UTC")
	desc := annotation(p.ops.messages()[5], "description")
	for _, want := range []string{
		"STABLE AGAIN after flapping: it went bad 4 times between 2026-11-25 03:00:00 UTC and 2026-11-25 03:02:00 UTC, 2m 35s in total, and has been good since 2026-11-25 03:02:35 UTC (5m 1s).",
		"Flapped:  4 times\n",
		"Down:     2m 35s in total\n",
		"Stable:   since 2026-11-25 03:02:35 UTC\n",
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("the end of the episode lacks %q:\n%s", want, desc)
		}
	}
	if strings.Contains(desc, "is silent") || strings.Contains(desc, "downtime") {
		t.Errorf("the end of the episode reads as an outage:\n%s", desc)
	}
	list, err := p.tw.Incidents(context.Background(), 10)
	if err != nil || len(list) == 0 {
		t.Fatalf("incidents %v, %v", list, err)
	}
	md, err := p.tw.Postmortem(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md, "| 2026-11-25 03:07:36 | pve1 | Host pve1 is stable again: flapped 4 times between 03:00:00 and 03:02:00, down 2m 35s in total; up and stable since 03:02:35 |") {
		t.Errorf("the postmortem does not tell the end of the episode:\n%s", md)
	}
}

// TestResolutionsAreWordedAsResolutions: a host, a probe, a peer tower and
// a finding go bad and recover. Every resolution, in the notifications,
// the incident timelines (API) and the postmortem, says what is well
// again, never the problem's words.
func TestResolutionsAreWordedAsResolutions(t *testing.T) {
	p := newPolicyTower(t, "name: a\npeer_token: peer-token-aaaaaaaaaa\npeers:\n  - {name: b, url: \"http://127.0.0.1:9\", token: peer-token-bbbbbbbbbb}\n"+
		"routes:\n  - {match: {}, channels: [ops]}\nprobes:\n  - {name: shop, type: tcp, target: \"127.0.0.1:9\"}\n")
	hang := finding.Finding{Key: "FM-C6//mnt/a", Mode: "FM-C6", Severity: finding.High, Subject: "/mnt/a", Summary: "/mnt/a hangs", Runbook: "FM-C6"}
	p.tw.peers.seen("b", p.t0)
	p.report("pve1")
	p.report("pve2")
	p.tw.RecordProbe(ProbeResult{Name: "shop", Status: "up", Started: p.t0})
	p.at(0)
	p.c.Set(p.t0.Add(31 * time.Second))
	p.report("pve2", hang)
	p.tw.RecordProbe(ProbeResult{Name: "shop", Status: "down", Started: p.c.Now(), Message: "connection refused"})
	p.at(31 * time.Second)
	p.c.Set(p.t0.Add(39 * time.Second))
	p.tw.peers.seen("b", p.c.Now())
	p.report("pve1")
	p.report("pve2", finding.Finding{Key: "FM-B1/system", Mode: "FM-B1", Severity: finding.Low, Summary: "fine", Runbook: "FM-B1"})
	p.tw.RecordProbe(ProbeResult{Name: "shop", Status: "up", Started: p.c.Now()})
	p.at(39 * time.Second)

	var resolved []string
	for _, s := range subjects(p.ops) {
		if strings.HasPrefix(s, "[RESOLVED]") {
			resolved = append(resolved, s)
		}
	}
	slices.Sort(resolved)
	want := []string{
		"[RESOLVED] (brief) Host pve1 is back — was down 39s (03:00:00 → 03:00:39 UTC)",
		"[RESOLVED] (brief) Service shop is up again — was down 8s (03:00:31 → 03:00:39 UTC)",
		"[RESOLVED] (brief) Tower b answers again — was down 39s (03:00:00 → 03:00:39 UTC)",
		"[RESOLVED] (brief) pve2: /mnt/a hangs — lasted 8s (03:00:31 → 03:00:39 UTC)",
	}
	if strings.Join(resolved, "\n") != strings.Join(want, "\n") {
		t.Errorf("resolutions sent:\n  %s\nwant:\n  %s", strings.Join(resolved, "\n  "), strings.Join(want, "\n  "))
	}

	// The timelines, as the API serves them to the console and `hinomi incident`.
	srv := httptest.NewServer(p.tw.Handler())
	defer srv.Close()
	list, err := p.tw.Incidents(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, in := range list {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/incidents/"+strconv.FormatInt(in.ID, 10), nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET incident %d: %s", in.ID, resp.Status)
		}
		var body struct {
			Timeline []Event `json:"timeline"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range body.Timeline {
			if e.Kind == "alert" && e.At.Equal(p.t0.Add(39*time.Second)) {
				lines = append(lines, e.Text)
			}
		}
	}
	slices.Sort(lines)
	wantLines := []string{"Cleared after 8s: pve2: /mnt/a hangs", "Host pve1 is back after 39s", "Service shop is up again after 8s", "Tower b answers again after 39s"}
	if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("timeline resolutions:\n  %s\nwant:\n  %s", strings.Join(lines, "\n  "), strings.Join(wantLines, "\n  "))
	}
	for _, in := range list {
		if slices.Contains(in.Hosts, "pve1") {
			md, err := p.tw.Postmortem(context.Background(), in.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(md, "| 2026-11-25 03:00:39 | pve1 | Host pve1 is back after 39s |") || strings.Contains(md, "RESOLVED:") {
				t.Errorf("postmortem does not word the resolution as one:\n%s", md)
			}
			// A resolution recorded by an earlier version reads the same.
			if err := dbOf(p.tw).Exec("INSERT INTO alert_events(time, key, host, incident, event, text) VALUES(?,?,?,?,?,?)",
				p.t0.Add(40*time.Second).UnixNano(), "heartbeat/pve1", "pve1", in.ID, "resolve", "RESOLVED: Host pve1 is silent after 8s"); err != nil {
				t.Fatal(err)
			}
			if md, _ = p.tw.Postmortem(context.Background(), in.ID); !strings.Contains(md, "| 2026-11-25 03:00:40 | pve1 | Host pve1 is back after 8s |") || strings.Contains(md, "RESOLVED:") {
				t.Errorf("a resolution recorded earlier is not worded as one:\n%s", md)
			}
		}
	}
}
