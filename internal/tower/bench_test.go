package tower

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
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
