package tower

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/web"
)

// BenchmarkEvaluate is one alert evaluation cycle with 10,000 firing
// finding alerts and 1,000 heartbeats, 1,000 silences and 100 routes: the
// work the tower does every 250 ms.
//
//	go test -run '^$' -bench Evaluate -benchtime 40x ./internal/tower
func BenchmarkEvaluate(b *testing.B) {
	const hosts, perHost, silences, routes = 1000, 10, 1000, 100
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "data_dir: %s\ngrace: 60s\nchannels:\n  - {name: a, type: webhook, url: http://127.0.0.1:9/a}\n  - {name: b, type: webhook, url: http://127.0.0.1:9/b}\nroutes:\n", b.TempDir())
	for i := range routes - 1 {
		fmt.Fprintf(&cfg, "  - {match: {host: \"h%02d*\", severity: [catastrophic]}, channels: [b], repeat_interval: 1h}\n", i)
	}
	fmt.Fprintf(&cfg, "  - {match: {}, channels: [a]}\nagents:\n")
	for i := range hosts {
		fmt.Fprintf(&cfg, "  - {name: h%04d, token: tok-bench-%010d}\n", i, i)
	}
	c, err := ParseConfig([]byte(cfg.String()), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	clk := &clock{now: now}
	tw, err := New(c, Options{Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer tw.store.Close()
	ctx := context.Background()
	for i := range silences {
		host := fmt.Sprintf("other%04d", i)
		if i%100 == 0 {
			host = fmt.Sprintf("h%04d", i) // ten of them silence real hosts
		}
		if _, err := tw.AddSilence(ctx, Silence{Match: Match{Host: host}, Ends: now.Add(24 * time.Hour), CreatedBy: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	tw.mu.Lock()
	for i := range hosts {
		name := fmt.Sprintf("h%04d", i)
		tw.hosts[name] = &Host{Name: name, LastSeen: now, FirstSeen: now}
		fs := map[string]*Finding{}
		for j := range perHost {
			f := finding.Finding{Key: fmt.Sprintf("FM-B2/uid %d", j), Mode: "FM-B2", Severity: finding.High, Summary: "inotify watches 97% used", Runbook: "FM-B2"}
			fs[f.Key] = &Finding{Host: name, Opened: now, Updated: now, Finding: f}
		}
		tw.findings[name] = fs
	}
	tw.mu.Unlock()
	if err := tw.Evaluate(ctx, now); err != nil { // everything fires once
		b.Fatal(err)
	}
	firing := 0
	for _, a := range tw.alerts {
		if a.State.Status == "firing" {
			firing++
		}
	}
	if firing < hosts*perHost {
		b.Fatalf("%d firing alerts, want %d", firing, hosts*perHost)
	}
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		now = now.Add(250 * time.Millisecond)
		tw.mu.Lock()
		for _, h := range tw.hosts {
			h.LastSeen = now
		}
		tw.mu.Unlock()
		if err := tw.Evaluate(ctx, now); err != nil {
			b.Fatal(err)
		}
		n++
	}
	per := time.Since(start) / time.Duration(n)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/cycle")
	b.Logf("%d firing alerts, %d heartbeats, %d silences, %d routes: %s per evaluation cycle (target < 50 ms)", firing, hosts, silences, routes, per)
}

// BenchmarkStatusPage renders the public status page for 500 services with
// 90 days of history (a result every hour) and reports p50/p95. The
// history is written to the store by one tower and read back by another
// on the same database, as after a restart: the page is drawn from what
// the store gave back.
//
//	go test -run '^$' -bench StatusPage -benchtime 200x ./internal/tower
func BenchmarkStatusPage(b *testing.B) {
	p50, p95, what := statusPageFigures(b, b.Loop)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p95.Microseconds())/1000, "p95-ms")
	b.Log(what)
}

// statusPageFigures builds BenchmarkStatusPage's towers and renders both
// pages while loop says so; it returns the p50 and p95 of the page read
// back from the store, and the figures in words.
func statusPageFigures(b *testing.B, loop func() bool) (p50, p95 time.Duration, what string) {
	const services, days = 500, 90
	c := &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	var text strings.Builder
	fmt.Fprintf(&text, "data_dir: %s\nagents:\n  - {name: h, token: tok-bench-aaaaaaaaaaaa}\nprobes:\n", b.TempDir())
	for i := range services {
		fmt.Fprintf(&text, "  - {name: svc-%03d, group: group %d, type: tcp, target: \"127.0.0.1:9\", public: true}\n", i, i%10)
	}
	cfg, err := ParseConfig([]byte(text.String()), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	writer, err := New(cfg, Options{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	start := c.now.AddDate(0, 0, -days)
	t0 := time.Now()
	results := 0
	for i := range services {
		name := fmt.Sprintf("svc-%03d", i)
		for at := start; at.Before(c.now); at = at.Add(time.Hour) {
			status, reason := "up", ""
			if (i+at.Hour())%97 == 0 {
				status, reason = "down", "connection refused"
			}
			writer.RecordProbe(ProbeResult{Name: name, Group: fmt.Sprintf("group %d", i%10), Public: true, Status: status, Reason: reason,
				Started: at, Duration: time.Duration(20+i%30) * time.Millisecond})
			results++
		}
	}
	if err := writer.flushHistory(context.Background()); err != nil {
		b.Fatal(err)
	}
	written := time.Since(t0)
	if err := writer.pruneHistory(context.Background(), DefaultHistoryRetention, c.now); err != nil {
		b.Fatal(err)
	}
	defer writer.store.Close()
	t0 = time.Now()
	tw, err := New(cfg, Options{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	loaded := time.Since(t0)
	defer tw.store.Close()
	if n := len(tw.services.list(c.now, true)); n != services {
		b.Fatalf("%d services read back; want %d", n, services)
	}
	// The page of the tower that recorded the results, side by side: the
	// baseline, drawn from what it kept in memory.
	var handlers [2]http.Handler
	for i, t := range []*Tower{tw, writer} {
		site, err := web.New(t.Web(), web.Options{Now: c.Now})
		if err != nil {
			b.Fatal(err)
		}
		handlers[i] = site.Handler()
	}
	var times [2][]time.Duration
	var pages [2]string
	b.ResetTimer()
	for loop() {
		for i, h := range handlers {
			rec := httptest.NewRecorder()
			t0 := time.Now()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			times[i] = append(times[i], time.Since(t0))
			if rec.Code != 200 {
				b.Fatalf("status %d", rec.Code)
			}
			pages[i] = rec.Body.String()
		}
	}
	if pages[0] != pages[1] {
		b.Fatal("the page read back from the store differs from the page of the tower that recorded it")
	}
	pct := func(ts []time.Duration) (time.Duration, time.Duration) {
		slices.Sort(ts)
		return ts[len(ts)/2], ts[len(ts)*95/100]
	}
	p50, p95 = pct(times[0])
	m50, m95 := pct(times[1])
	return p50, p95, fmt.Sprintf("%d services × %d days (%d results recorded and written in %s, read back at start in %s): page of %d KiB rendered in p50 %s, p95 %s (target p95 < 100 ms); the recording tower's page, same run: p50 %s, p95 %s",
		services, days, results, written.Round(time.Millisecond), loaded.Round(time.Millisecond), len(pages[0])>>10, p50, p95, m50, m95)
}

// BenchmarkProbeHistoryWrites is the status page history's share of a
// tower running 10,000 probe results a minute (170 probes every second):
// the results of one flush interval recorded, then written in one
// transaction, as keepHistory does every historyFlush.
//
//	go test -run '^$' -bench ProbeHistoryWrites -benchtime 20x ./internal/tower
func BenchmarkProbeHistoryWrites(b *testing.B) {
	const probes = 170
	perFlush := probes * int(historyFlush/time.Second)
	c := &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	cfg, err := ParseConfig([]byte("data_dir: "+b.TempDir()+"\nagents:\n  - {name: h, token: tok-bench-aaaaaaaaaaaa}\n"), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	tw, err := New(cfg, Options{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer tw.store.Close()
	ctx := context.Background()
	var record, flush time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		for k := range perFlush {
			at := c.now.Add(time.Duration(k/probes) * time.Second)
			tw.RecordProbe(ProbeResult{Name: fmt.Sprintf("p%03d", k%probes), Public: true, Status: "up", Started: at, Duration: 3 * time.Millisecond})
		}
		t1 := time.Now()
		if err := tw.flushHistory(ctx); err != nil {
			b.Fatal(err)
		}
		record += t1.Sub(t0)
		flush += time.Since(t1)
		c.now = c.now.Add(historyFlush)
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64((flush/n).Microseconds())/1000, "ms/flush")
	b.ReportMetric(float64((record+flush)/n)/float64(perFlush), "ns/result")
	b.Logf("%d results per %s flush (10,200/min): recording %s, writing %s per flush, %.1f%% of one core",
		perFlush, historyFlush, record/n, flush/n, 100*float64((record+flush)/n)/float64(historyFlush))
}
