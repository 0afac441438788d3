package web

import (
	"fmt"
	"html/template"
	"strconv"
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
	b = append(b, ` 28" width="`...)
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
	b := make([]byte, 0, 200+len(pts)*16)
	b = append(b, `<svg class="spark" viewBox="0 0 300 40" width="300" height="40" role="img" aria-label="response time, last `...)
	b = strconv.AppendFloat(b, pts[len(pts)-1].Ms, 'f', 0, 64)
	b = append(b, ` ms, peak `...)
	b = strconv.AppendFloat(b, maxMs, 'f', 0, 64)
	b = append(b, ` ms"><path d="`...)
	for i, p := range pts {
		x := float64(i) * float64(w) / float64(len(pts)-1)
		y := float64(h) - 2 - p.Ms/maxMs*float64(h-4)
		if i == 0 {
			b = append(b, 'M')
		} else {
			b = append(b, " L"...)
		}
		b = strconv.AppendFloat(b, x, 'f', 1, 64)
		b = append(b, ' ')
		b = strconv.AppendFloat(b, y, 'f', 1, 64)
	}
	b = append(b, `"/></svg>`...)
	return template.HTML(b)
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
