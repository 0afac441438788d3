package web

import (
	"fmt"
	"html/template"
	"strings"
)

// daysSVG draws one bar per day: its colour says the day's worst state,
// its title the uptime.
func daysSVG(days []Day) template.HTML {
	const w, gap, h = 6, 2, 28
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bars" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="uptime per day, last %d days">`,
		len(days)*(w+gap), h, len(days)*(w+gap), h, len(days))
	for i, d := range days {
		class, label := "nodata", "no data"
		if d.Uptime >= 0 {
			class = "up"
			switch {
			case d.Uptime < 0.99:
				class = "down"
			case d.Uptime < 0.9999 || d.Worst == "degraded":
				class = "degraded"
			}
			label = fmt.Sprintf("%.2f%% up", 100*d.Uptime)
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%d" y="0" width="%d" height="%d" rx="1"><title>%s: %s</title></rect>`,
			class, i*(w+gap), w, h, d.Date.Format("2006-01-02"), label)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// latencySVG draws response times as a line.
func latencySVG(pts []Point) template.HTML {
	const w, h = 300, 40
	if len(pts) < 2 {
		return template.HTML(`<svg class="spark" viewBox="0 0 300 40" width="300" height="40" role="img" aria-label="no response times yet"></svg>`)
	}
	maxMs := 1.0
	for _, p := range pts {
		maxMs = max(maxMs, p.Ms)
	}
	var path strings.Builder
	for i, p := range pts {
		x := float64(i) * float64(w) / float64(len(pts)-1)
		y := float64(h) - 2 - p.Ms/maxMs*float64(h-4)
		if i == 0 {
			fmt.Fprintf(&path, "M%.1f %.1f", x, y)
		} else {
			fmt.Fprintf(&path, " L%.1f %.1f", x, y)
		}
	}
	last := pts[len(pts)-1].Ms
	return template.HTML(fmt.Sprintf(`<svg class="spark" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="response time, last %.0f ms, peak %.0f ms"><path d="%s"/></svg>`,
		w, h, w, h, last, maxMs, path.String()))
}

// badgeSVG is a small shield: name and state.
func badgeSVG(name, status string) string {
	color := map[string]string{"up": "#2e7d32", "degraded": "#b26a00", "down": "#c62828"}[status]
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
