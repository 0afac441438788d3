package web

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// The response-time chart has its axes labelled with units and times,
// and hover bands whose tooltips give values; it is well-formed SVG.
func TestLatencyChart(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	var pts []Point
	for i := range 96 {
		ms := 40.0
		if i == 50 {
			ms = 812
		}
		pts = append(pts, Point{At: t0.Add(time.Duration(i) * 15 * time.Minute), Ms: ms})
	}
	out := string(latencySVG(pts))
	if err := xml.Unmarshal([]byte(out), new(struct{})); err != nil {
		t.Fatalf("not well-formed: %v\n%s", err, out)
	}
	for _, want := range []string{
		">0 ms</text>", ">500 ms</text>", ">1 s</text>", // the axis, rounded up to 1 s
		">08:00</text>", ">07:45 UTC</text>", // under a day: times only
		"peak 812 ms</title>", "95th percentile 40 ms", "last 40 ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if n := strings.Count(out, `class="band"`); n != 6 {
		t.Errorf("%d hover bands; want 6", n)
	}
	if len(out) > 3000 {
		t.Errorf("the chart weighs %d bytes: 500 of them must stay light", len(out))
	}
	if empty := string(latencySVG(pts[:1])); !strings.Contains(empty, "no response times yet") {
		t.Errorf("one point: %s", empty)
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.3: 0.5, 1: 1, 7: 10, 812: 1000, 1200: 2000, 40: 50} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v; want %v", in, got, want)
		}
	}
}
