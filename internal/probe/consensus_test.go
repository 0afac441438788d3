package probe

import (
	"testing"
	"time"
)

func TestConsensus(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	at := func(loc string, s Status) LocationResult { return LocationResult{Location: loc, Status: s, At: t0} }
	isolated := func(loc string, s Status) LocationResult {
		return LocationResult{Location: loc, Status: s, At: t0, Isolated: true}
	}
	for _, tc := range []struct {
		name    string
		results []LocationResult
		quorum  float64
		want    Status
	}{
		{"nobody reported", nil, 0.5, Unknown},
		{"one location down", []LocationResult{at("tokyo", Down)}, 0.5, Down},
		{"one location up", []LocationResult{at("tokyo", Up)}, 0.5, Up},
		{"1 of 2 down is half", []LocationResult{at("tokyo", Down), at("osaka", Up)}, 0.5, Down},
		{"1 of 2 down, strict majority", []LocationResult{at("tokyo", Down), at("osaka", Up)}, 0.51, Up},
		{"1 of 3 down", []LocationResult{at("a", Down), at("b", Up), at("c", Up)}, 0.5, Up},
		{"2 of 3 down", []LocationResult{at("a", Down), at("b", Down), at("c", Up)}, 0.5, Down},
		{"2 of 4 down", []LocationResult{at("a", Down), at("b", Down), at("c", Up), at("d", Up)}, 0.5, Down},
		{"1 down 1 degraded of 3", []LocationResult{at("a", Down), at("b", Degraded), at("c", Up)}, 0.5, Degraded},
		{"1 degraded of 3", []LocationResult{at("a", Degraded), at("b", Up), at("c", Up)}, 0.5, Up},
		{"all degraded", []LocationResult{at("a", Degraded), at("b", Degraded)}, 0.5, Degraded},
		{"quorum 1 needs all", []LocationResult{at("a", Down), at("b", Down), at("c", Up)}, 1, Up},
		{"quorum above 1 is all", []LocationResult{at("a", Down), at("b", Down)}, 7, Down},
		{"quorum 0 is any one", []LocationResult{at("a", Down), at("b", Up), at("c", Up), at("d", Up)}, 0, Down},
		{"isolated locations do not vote", []LocationResult{isolated("a", Down), isolated("b", Down), at("c", Up)}, 0.5, Up},
		{"isolated but the rest agree", []LocationResult{isolated("a", Down), at("b", Down), at("c", Up)}, 0.5, Down},
		{"everyone isolated: all vote", []LocationResult{isolated("a", Down), isolated("b", Down)}, 0.5, Down},
		{"newest result per location", []LocationResult{
			{Location: "a", Status: Down, At: t0}, {Location: "a", Status: Up, At: t0.Add(time.Minute)},
			{Location: "b", Status: Up, At: t0}}, 0.5, Up},
		{"one location cannot outvote by repeating itself", []LocationResult{
			at("a", Down), {Location: "a", Status: Down, At: t0.Add(-time.Minute)},
			{Location: "a", Status: Down, At: t0.Add(-2 * time.Minute)}, at("b", Up), at("c", Up)}, 0.5, Up},
	} {
		if got := Consensus(tc.results, tc.quorum); got != tc.want {
			t.Errorf("%s: got %s; want %s", tc.name, got, tc.want)
		}
	}
}

func TestRecent(t *testing.T) {
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	rs := []LocationResult{
		{Location: "fresh", Status: Down, At: now.Add(-30 * time.Second)},
		{Location: "edge", Status: Down, At: now.Add(-2 * time.Minute)},
		{Location: "silent", Status: Down, At: now.Add(-10 * time.Minute)},
		{Location: "ok", Status: Up, At: now.Add(-time.Second)},
	}
	got := Recent(rs, now, 2*time.Minute)
	if len(got) != 3 || got[0].Location != "fresh" || got[1].Location != "edge" || got[2].Location != "ok" {
		t.Errorf("Recent kept %v", got)
	}
	// The silent location's stale DOWN no longer tips the balance.
	if s := Consensus(Recent(rs[2:], now, 2*time.Minute), 0.5); s != Up {
		t.Errorf("got %s; want up", s)
	}
}

func TestIsolated(t *testing.T) {
	for _, tc := range []struct {
		round []Status
		want  bool
	}{
		{nil, false},
		{[]Status{Down, Down}, false}, // too few probes to tell the location from its targets
		{[]Status{Down, Down, Down}, true},
		{[]Status{Down, Down, Down, Up}, false},
		{[]Status{Down, Degraded, Down}, false},
	} {
		if got := Isolated(tc.round); got != tc.want {
			t.Errorf("Isolated(%v) = %v; want %v", tc.round, got, tc.want)
		}
	}
}
