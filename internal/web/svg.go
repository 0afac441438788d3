package web

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"time"
)

// daysSVG draws one bar per day: its colour says the day's worst state,
// its title the uptime. It appends with strconv rather than fmt: the
// status page draws one of these per service, 45,000 bars for 500 services.
func daysSVG(days []Day) template.HTML {
	const w, gap = 6, 2
	b := make([]byte, 0, 120+len(days)*110)
	width := strconv.Itoa(len(days) * (w + gap))
	b = append(b, `<svg class="bars" viewBox="0 0 `...)
	b = append(b, width...)
	b = append(b, ` 28" preserveAspectRatio="none" width="`...)
	b = append(b, width...)
	b = append(b, `" height="28" role="img" aria-label="uptime per day, last `...)
	b = strconv.AppendInt(b, int64(len(days)), 10)
	b = append(b, ` days">`...)
	for i, d := range days {
		class := "nodata"
		if d.Uptime >= 0 {
			class = "up"
			switch {
			case d.Uptime < 0.99:
				class = "down"
			case d.Uptime < 0.9999 || d.Worst == "degraded":
				class = "degraded"
			}
		}
		b = append(b, `<rect class="`...)
		b = append(b, class...)
		b = append(b, `" x="`...)
		b = strconv.AppendInt(b, int64(i*(w+gap)), 10)
		b = append(b, `" width="6" height="28"><title>`...)
		b = d.Date.AppendFormat(b, "2006-01-02")
		if d.Uptime >= 0 {
			b = append(b, ": "...)
			b = strconv.AppendFloat(b, 100*d.Uptime, 'f', 2, 64)
			b = append(b, "% up"...)
		} else {
			b = append(b, ": no data"...)
		}
		b = append(b, `</title></rect>`...)
	}
	b = append(b, `</svg>`...)
	return template.HTML(b)
}

// latencySVG draws response times as a line on axes: the time range
// below (UTC), milliseconds on the left with a mid gridline, and bands
// whose tooltips say the average and peak of their stretch (hover; no
// script). The caption gives the last value and the 95th percentile.
func latencySVG(pts []Point) template.HTML {
	const (
		w, h        = 360, 96
		left, right = 52, 8
		top, bottom = 8, 22
		pw, ph      = w - left - right, h - top - bottom
	)
	if len(pts) < 2 {
		return template.HTML(`<svg class="spark" viewBox="0 0 360 96" width="360" height="96" role="img" aria-label="no response times yet">` +
			`<text class="axis" x="52" y="50">no response times yet</text></svg>`)
	}
	maxMs, sorted := 1.0, make([]float64, len(pts))
	for i, p := range pts {
		maxMs = max(maxMs, p.Ms)
		sorted[i] = p.Ms
	}
	slices.Sort(sorted)
	p95 := sorted[min(len(sorted)-1, int(math.Ceil(0.95*float64(len(sorted))))-1)]
	top10 := niceCeil(maxMs)
	t0, t1 := pts[0].At, pts[len(pts)-1].At
	span := t1.Sub(t0).Seconds()
	x := func(i int, at time.Time) float64 {
		if span <= 0 {
			return left + float64(i)*pw/float64(len(pts)-1)
		}
		return left + at.Sub(t0).Seconds()/span*pw
	}
	y := func(ms float64) float64 { return top + ph - ms/top10*ph }
	// Whole pixels: the chart is 360 wide, and the page may carry 500.
	f := func(b []byte, v float64) []byte { return strconv.AppendFloat(b, math.Round(v), 'f', 0, 64) }

	b := make([]byte, 0, 800+len(pts)*120)
	b = append(b, `<figure class="latency"><svg class="spark" viewBox="0 0 360 96" width="360" height="96" role="img" aria-label="response time: last `...)
	b = strconv.AppendFloat(b, pts[len(pts)-1].Ms, 'f', 0, 64)
	b = append(b, ` ms, 95th percentile `...)
	b = strconv.AppendFloat(b, p95, 'f', 0, 64)
	b = append(b, ` ms, peak `...)
	b = strconv.AppendFloat(b, maxMs, 'f', 0, 64)
	b = append(b, ` ms">`...)
	// Axes, gridline and their labels.
	for _, g := range []float64{0, top10 / 2, top10} {
		b = append(b, `<line class="grid" x1="`...)
		b = f(b, left)
		b = append(b, `" x2="`...)
		b = f(b, w-right)
		b = append(b, `" y1="`...)
		b = f(b, y(g))
		b = append(b, `" y2="`...)
		b = f(b, y(g))
		b = append(b, `"/><text class="axis" text-anchor="end" x="`...)
		b = f(b, left-4)
		b = append(b, `" y="`...)
		b = f(b, y(g)+4)
		b = append(b, `">`...)
		b = append(b, msLabel(g)...)
		b = append(b, `</text>`...)
	}
	b = append(b, `<text class="axis" x="`...)
	b = f(b, left)
	b = append(b, `" y="94">`...)
	b = t0.UTC().AppendFormat(b, timeLabel(t0, t1))
	b = append(b, `</text><text class="axis" text-anchor="end" x="`...)
	b = f(b, w-right)
	b = append(b, `" y="94">`...)
	b = t1.UTC().AppendFormat(b, timeLabel(t0, t1))
	b = append(b, ` UTC</text><path d="`...)
	for i, p := range pts {
		if i == 0 {
			b = append(b, 'M')
		} else {
			b = append(b, " L"...)
		}
		b = f(b, x(i, p.At))
		b = append(b, ' ')
		b = f(b, y(p.Ms))
	}
	b = append(b, `"/>`...)
	// Hover: the chart in at most 6 bands, each a tooltip with its
	// time range, average and peak (a tooltip per sample would weigh
	// megabytes on a page of 500 services).
	bands := min(6, len(pts))
	for k := range bands {
		lo, hi := k*len(pts)/bands, (k+1)*len(pts)/bands
		if hi <= lo {
			continue
		}
		sum, peak := 0.0, 0.0
		for _, p := range pts[lo:hi] {
			sum += p.Ms
			peak = max(peak, p.Ms)
		}
		x0, x1 := x(lo, pts[lo].At), x(hi-1, pts[hi-1].At)
		if hi < len(pts) {
			x1 = x(hi, pts[hi].At)
		}
		b = append(b, `<rect class="band" y="8" height="66" x="`...)
		b = f(b, x0)
		b = append(b, `" width="`...)
		b = f(b, max(x1-x0, 1))
		b = append(b, `"><title>`...)
		b = pts[lo].At.UTC().AppendFormat(b, "15:04")
		b = append(b, "–"...)
		b = pts[hi-1].At.UTC().AppendFormat(b, "15:04 UTC")
		b = append(b, ": average "...)
		b = strconv.AppendFloat(b, sum/float64(hi-lo), 'f', 0, 64)
		b = append(b, " ms, peak "...)
		b = strconv.AppendFloat(b, peak, 'f', 0, 64)
		b = append(b, " ms</title></rect>"...)
	}
	b = append(b, `</svg><figcaption class="muted">Response time: last `...)
	b = strconv.AppendFloat(b, pts[len(pts)-1].Ms, 'f', 0, 64)
	b = append(b, ` ms, 95th percentile `...)
	b = strconv.AppendFloat(b, p95, 'f', 0, 64)
	b = append(b, ` ms</figcaption></figure>`...)
	return template.HTML(b)
}

// niceCeil rounds a chart's top up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func msLabel(ms float64) string {
	if ms >= 1000 {
		return strconv.FormatFloat(ms/1000, 'f', -1, 64) + " s"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
}

// timeLabel is the axis' time format: the date too when the range spans
// more than a day.
func timeLabel(a, b time.Time) string {
	if b.Sub(a) > 24*time.Hour {
		return "Jan 2 15:04"
	}
	return "15:04"
}

// badgeSVG is a small shield: name and state.
func badgeSVG(name, status string) string {
	return shield(name, status, map[string]string{"up": "#2e7d32", "degraded": "#b26a00", "down": "#c62828"}[status])
}

// uptimeBadge shows an uptime share (negative: no data) over a span.
func uptimeBadge(name, span string, up float64) string {
	if up < 0 {
		return shield(name+" uptime "+span, "no data", "")
	}
	color := "#2e7d32"
	switch {
	case up < 0.99:
		color = "#c62828"
	case up < 0.999:
		color = "#b26a00"
	}
	return shield(name+" uptime "+span, strconv.FormatFloat(100*up, 'f', 2, 64)+"%", color)
}

// responseBadge shows an average response time (negative: no data).
func responseBadge(name string, ms float64) string {
	if ms < 0 {
		return shield(name+" response", "no data", "")
	}
	color := "#2e7d32"
	switch {
	case ms >= 2000:
		color = "#c62828"
	case ms >= 500:
		color = "#b26a00"
	}
	return shield(name+" response", strconv.FormatFloat(ms, 'f', 0, 64)+" ms", color)
}

// shield draws a badge: label on grey, value on color (grey when empty).
func shield(name, status, color string) string {
	if color == "" {
		color = "#616161"
	}
	lw := 6*len(name) + 12
	rw := 6*len(status) + 12
	esc := template.HTMLEscapeString
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s: %s">`+
		`<rect width="%d" height="20" fill="#555"/><rect x="%d" width="%d" height="20" fill="%s"/>`+
		`<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">`+
		`<text x="6" y="14">%s</text><text x="%d" y="14">%s</text></g></svg>`,
		lw+rw, esc(name), esc(status), lw, lw, rw, color, esc(name), lw+6, esc(status))
}
