package notify

import (
	"fmt"
	"github.com/hinomi/hinomi/internal/finding"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// How long an outage lasted decides how it looks (FM-A2: the 03:00 outage
// that was read as "the usual blip"):
//
//   - resolved after less than BriefOutage: marked "(brief)";
//   - open, or resolved, for LongOutage or more: marked "LONG OUTAGE" in
//     every state, right after the status tag, where a phone's truncated
//     preview still shows it;
//   - in between: no mark, the duration speaks for itself.
const (
	BriefOutage = 2 * time.Minute
	LongOutage  = 30 * time.Minute
)

// Bounds on the rendered text, so a runaway log line or label cannot make
// a message that a channel rejects or a phone cannot show.
const (
	maxTitle      = 200
	maxHost       = 100
	maxKey        = 200
	maxSeverity   = 20
	maxSummary    = 1000
	maxDetails    = 20
	maxDetailLine = 200
	maxLabels     = 10
	maxLabelLine  = 500
	maxRunbook    = 64
	maxURL        = 2048
)

// Text renders m as the subject line and plain-text body every channel
// uses. Times are UTC with the zone written; the start time carries its
// date when it is not on Now's day; durations are in human units.
func Text(m Message) (subject, body string) {
	r := render(m)
	return r.subject, r.body
}

// rendered is Text's result plus the cleaned parts that some channels
// place separately (Discord's content, ntfy's tags).
type rendered struct {
	subject, body string
	title         string
	summary       string
	host          string
	severity      string
	key           string
	url           string
	runbook       string
	long, brief   bool
}

func render(m Message) rendered {
	r := rendered{
		title:    oneLine(m.Title, maxTitle),
		summary:  oneLine(m.Summary, maxSummary),
		host:     oneLine(m.Host, maxHost),
		severity: oneLine(m.Severity, maxSeverity),
		key:      oneLine(m.Key, maxKey),
		url:      oneLine(m.URL, maxURL),
		runbook:  oneLine(m.Runbook, maxRunbook),
	}
	if r.title == "" {
		r.title = r.key
	}
	if r.title == "" {
		r.title = "hinomi alert"
	}
	// A title like "Too many open files" must still say where.
	if r.host != "" && !strings.Contains(r.title, r.host) {
		r.title += " on " + r.host
	}

	now := m.Now
	if now.IsZero() { // a caller bug, but never print year 1
		now = later(m.Started, m.Ended)
	}
	now = now.UTC()
	start := m.Started.UTC()
	end := m.Ended.UTC()
	if m.State == Resolved && m.Ended.IsZero() {
		end = now
	}
	known := !m.Started.IsZero()
	var dur time.Duration
	if known {
		if m.State == Resolved {
			dur = end.Sub(start)
		} else {
			dur = now.Sub(start)
		}
		dur = max(dur, 0)
	}
	flap := m.Flap
	if m.State != Resolved || flap != nil && flap.Spells == 0 {
		flap = nil
	}
	r.long = known && dur >= LongOutage && flap == nil
	r.brief = known && m.State == Resolved && dur < BriefOutage && flap == nil

	mark := ""
	switch {
	case r.long:
		mark = "LONG OUTAGE: "
	case r.brief:
		mark = "(brief) "
	}
	d := human(dur)
	switch {
	case flap != nil:
		r.subject = fmt.Sprintf("[RESOLVED] %s — flapped %s between %s, down %s in total; up and stable since %s",
			r.title, times(flap.Spells), between(flap.First, flap.Last, now), human(flap.Down), clock(flap.StableSince, now))
	case m.State == Resolved && known && m.Condition:
		r.subject = fmt.Sprintf("[RESOLVED] %s%s — lasted %s (%s)", mark, r.title, d, span(start, end, now))
	case m.State == Resolved && known:
		r.subject = fmt.Sprintf("[RESOLVED] %s%s — was down %s (%s)", mark, r.title, d, span(start, end, now))
	case m.State == Resolved:
		r.subject = fmt.Sprintf("[RESOLVED] %s — downtime unknown (ended %s)", r.title, clock(end, now))
	case m.State == Repeat && known:
		r.subject = fmt.Sprintf("[STILL FIRING] %s%s — for %s, since %s", mark, r.title, d, clock(start, now))
	case m.State == Repeat:
		r.subject = fmt.Sprintf("[STILL FIRING] %s — start time unknown", r.title)
	case known && m.Delayed > 0:
		r.subject = fmt.Sprintf("[FIRING] %s%s — since %s, %s ago; delivery was delayed", mark, r.title, clock(start, now), d)
	case known:
		r.subject = fmt.Sprintf("[FIRING] %s%s — since %s (%s ago)", mark, r.title, clock(start, now), d)
	default:
		r.subject = fmt.Sprintf("[FIRING] %s — start time unknown", r.title)
	}
	if m.State == Resolved && m.Delayed > 0 {
		r.subject += "; delivery was delayed " + human(m.Delayed)
	}

	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	if r.summary != "" {
		line("%s", r.summary)
		line("")
	}
	switch {
	case flap != nil:
		line("STABLE AGAIN after flapping: it went bad %s between %s and %s, %s in total, and has been good since %s (%s).",
			times(flap.Spells), full(flap.First), full(flap.Last), human(flap.Down), full(flap.StableSince), human(max(now.Sub(flap.StableSince), 0)))
	case !known && m.State == Resolved:
		line("RESOLVED at %s. When it started is unknown, so the downtime is too.", full(end))
	case !known:
		line("When this problem started is unknown.")
	case m.State == Resolved && m.Condition:
		line("RESOLVED after %s, from %s to %s.", d, full(start), full(end))
	case m.State == Resolved:
		line("RESOLVED after %s of downtime, from %s to %s.", d, full(start), full(end))
	case m.State == Repeat:
		line("STILL FIRING: this is a reminder about an outage that is still going on, not a new problem.")
		line("It has lasted %s so far, since %s.", d, full(start))
	default:
		line("FIRING since %s, %s ago, and still going on.", full(start), d)
	}
	switch {
	case m.Delayed > 0 && m.Overtook:
		line("Its FIRING message could not be delivered before it ended: this message tells both. Delivery was delayed %s.", human(m.Delayed))
	case m.Delayed > 0:
		line("Delivery was delayed %s: it could not be sent when it was meant to be.", human(m.Delayed))
	}
	switch {
	case r.long && m.State == Resolved:
		line("This was a LONG OUTAGE (%s or more), not a blip.", human(LongOutage))
	case r.long:
		line("This is a LONG OUTAGE (%s or more), not a blip.", human(LongOutage))
	case r.brief:
		line("This was a brief blip (under %s).", human(BriefOutage))
	}
	var fields []string
	field := func(name, value string) {
		if value != "" {
			fields = append(fields, fmt.Sprintf("%-9s %s", name+":", value))
		}
	}
	if known && flap == nil {
		field("Started", full(start))
	}
	switch {
	case flap != nil:
		field("Flapped", times(flap.Spells))
		field("First", full(flap.First))
		field("Last", full(flap.Last))
		field("Down", human(flap.Down)+" in total")
		field("Stable", "since "+full(flap.StableSince))
	case m.State == Resolved:
		field("Ended", full(end))
		switch {
		case known && m.Condition:
			field("Lasted", d)
		case known:
			field("Downtime", d)
		}
	case known:
		field("Duration", d+" so far")
	}
	field("Severity", r.severity)
	field("Host", r.host)
	field("Alert", r.key)
	field("Labels", labelLine(m.Labels))
	if len(fields) > 0 {
		line("")
		for _, f := range fields {
			line("%s", f)
		}
	}
	if ev := evidence(m.Details); len(ev) > 0 {
		line("")
		line("Evidence:")
		for _, e := range ev {
			line("  %s", e)
		}
	}
	if r.runbook != "" || r.url != "" {
		line("")
	}
	if r.runbook != "" {
		line("Runbook:  hinomi runbook %s", r.runbook)
	}
	if r.url != "" {
		line("Link:     %s", r.url)
	}
	line("")
	fmt.Fprintf(&b, "Sent by hinomi at %s.", full(now))
	r.body = b.String()
	return r
}

// evidence cleans the detail lines: multi-line entries are split, blank
// lines dropped, at most maxDetails kept, each clipped.
func evidence(details []string) []string {
	var lines []string
	total := 0
	for _, d := range details {
		for l := range strings.SplitSeq(d, "\n") {
			if len(lines) == maxDetails { // past the bound, only count
				if strings.TrimFunc(l, isBlank) != "" {
					total++
				}
				continue
			}
			if l = oneLine(l, maxDetailLine); l != "" {
				total++
				lines = append(lines, l)
			}
		}
	}
	if total > len(lines) {
		lines = append(lines, fmt.Sprintf("… and %d more lines", total-len(lines)))
	}
	return lines
}

func labelLine(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	keys := slices.Sorted(maps.Keys(labels))
	var parts []string
	for i, k := range keys {
		if i == maxLabels {
			parts = append(parts, fmt.Sprintf("… and %d more", len(keys)-maxLabels))
			break
		}
		parts = append(parts, oneLine(k, 64)+"="+oneLine(labels[k], 128))
	}
	return oneLine(strings.Join(parts, ", "), maxLabelLine)
}

// human writes d in at most two units: see finding.HumanDuration.
func human(d time.Duration) string { return finding.HumanDuration(d) }

// clock writes t as "03:00:12 UTC", with the date in front when t is not
// on now's day.
func clock(t, now time.Time) string {
	if sameDay(t, now) {
		return t.UTC().Format("15:04:05") + " UTC"
	}
	return full(t)
}

// span writes a start → end range; both carry dates unless both are on
// now's day, so a range across midnight is never ambiguous.
func span(start, end, now time.Time) string {
	if sameDay(start, now) && sameDay(end, now) {
		return start.UTC().Format("15:04:05") + " → " + end.UTC().Format("15:04:05") + " UTC"
	}
	const f = "2006-01-02 15:04:05"
	return start.UTC().Format(f) + " → " + end.UTC().Format(f) + " UTC"
}

// between writes "03:00:10 and 03:04:50 UTC", with dates unless both are
// on now's day.
func between(a, b, now time.Time) string {
	if sameDay(a, now) && sameDay(b, now) {
		return a.UTC().Format("15:04:05") + " and " + b.UTC().Format("15:04:05") + " UTC"
	}
	return full(a) + " and " + full(b)
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

func full(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" }

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.UTC().Date()
	by, bm, bd := b.UTC().Date()
	return ay == by && am == bm && ad == bd
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// oneLine makes s safe for a single line of text: valid UTF-8, control
// characters as spaces, runs of space collapsed, at most n runes (the last
// one "…" when clipped).
func oneLine(s string, n int) string {
	var b strings.Builder
	space := false
	kept := 0
	for _, r := range s {
		if isBlank(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
			kept++
		}
		space = false
		b.WriteRune(r)
		if kept++; kept > n { // enough to know it gets clipped
			break
		}
	}
	return clipRunes(b.String(), n)
}

func isBlank(r rune) bool {
	return unicode.IsControl(r) || unicode.IsSpace(r)
}

// clipRunes keeps at most n runes of s, ending in "…" when it cut.
func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	i, k := 0, 0
	for i = range s {
		if k == n-1 {
			break
		}
		k++
	}
	return s[:i] + "…"
}

// clipUTF16 keeps s within n UTF-16 code units (how Discord and Telegram
// count), ending in "…" when it cut.
func clipUTF16(s string, n int) string {
	units := 0
	for _, r := range s {
		units += utf16Len(r)
	}
	if units <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	units = 0
	for i, r := range s {
		if units+utf16Len(r) > n-1 {
			return s[:i] + "…"
		}
		units += utf16Len(r)
	}
	return s
}

func utf16Len(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}
