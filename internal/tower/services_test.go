package tower

import (
	"testing"
	"time"
)

// The day bars and the 24 h / 7 d / 30 d / 90 d uptime figures come from
// the per-day tallies: checked here against hand-counted results.
func TestServiceViewUptime(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var s services
	rec := func(daysAgo int, status string) {
		s.record(ProbeResult{Name: "web", Status: status, Started: now.Add(-time.Duration(daysAgo) * 24 * time.Hour).Add(-time.Hour)})
	}
	rec(120, "down") // older than the history: dropped from every figure
	rec(40, "up")    // counts for 90 d only
	rec(20, "down")  // 30 d and 90 d
	rec(5, "up")     // 7 d, 30 d, 90 d
	rec(5, "degraded")
	rec(0, "up") // today: every span
	rec(0, "down")
	v := s.list(now, false)[0]
	if len(v.Days) != historyDays {
		t.Fatalf("%d day bars, want %d", len(v.Days), historyDays)
	}
	last := v.Days[historyDays-1]
	if !last.Date.Equal(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)) || last.Uptime != 0.5 || last.Worst != "down" {
		t.Errorf("today's bar = %+v, want 2026-11-25 at 50%% worst down", last)
	}
	if d := v.Days[historyDays-1-5]; d.Uptime != 1 || d.Worst != "degraded" {
		t.Errorf("5 days ago = %+v, want 100%% (degraded counts as up) worst degraded", d)
	}
	if d := v.Days[historyDays-1-20]; d.Uptime != 0 || d.Worst != "down" {
		t.Errorf("20 days ago = %+v, want 0%% down", d)
	}
	if d := v.Days[historyDays-1-1]; d.Uptime >= 0 {
		t.Errorf("a day without checks shows %v, want no data (negative)", d.Uptime)
	}
	if !v.Days[0].Date.Equal(time.Date(2026, 8, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("first bar is %s, want 89 days before today", v.Days[0].Date)
	}
	want := map[string]float64{"24h": 0.5, "7d": 3.0 / 4, "30d": 3.0 / 5, "90d": 4.0 / 6}
	for k, w := range want {
		if v.Uptime[k] != w {
			t.Errorf("uptime %s = %v, want %v", k, v.Uptime[k], w)
		}
	}
}

// A new service's chart shows its runs one by one until there are two
// 15-minute buckets, and the page says how long it has been watched.
func TestNewServiceChartAndWatched(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 3, 0, 0, time.UTC)
	var s services
	for i := range 5 {
		s.record(ProbeResult{Name: "web", Status: "up", Started: now.Add(-time.Duration(5-i) * 10 * time.Second), Duration: time.Duration(10+i) * time.Millisecond})
	}
	v := s.list(now, false)[0]
	if len(v.Latency) != 5 || v.Latency[0].Ms != 10 || v.Latency[4].Ms != 14 {
		t.Errorf("latency points %+v, want the five runs oldest first", v.Latency)
	}
	if !v.Watched.Equal(now.Add(-50 * time.Second)) {
		t.Errorf("watched since %s, want the first run", v.Watched)
	}
	if v := s.list(now.Add(100*24*time.Hour), false)[0]; !v.Watched.IsZero() {
		t.Errorf("after 100 days watched is still %s, want zero (the spans are full)", v.Watched)
	}
}
