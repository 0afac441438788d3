package web

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hinomi/hinomi/internal/logstore"
)

// The console's log pages, at /console/logs: a search over the central
// log store (a GET form, so it works without JavaScript), and, given
// around=TIME, the cross-host timeline: every host's lines in the window
// before that instant, merged in time order, the instant marked.

// LogSearcher is what a Backend with a central log store also
// implements.
type LogSearcher interface {
	// SearchLogs calls fn for each line that matches q, in time order
	// (q.Newest: newest first), until fn returns false or q.Limit lines.
	SearchLogs(ctx context.Context, q logstore.Query, fn func(logstore.Entry) bool) error
	// KeepsLogs is false when the tower is set to keep no lines: the
	// console then links no log page.
	KeepsLogs() bool
}

// keepsLogs: the backend has a log store to link.
func (s *Site) keepsLogs() bool {
	ls, ok := s.b.(LogSearcher)
	return ok && ls.KeepsLogs()
}

const (
	// logPage is how many lines one page of search results shows: the
	// store reads only the blocks it needs for them, so a search stays
	// fast on a big store.
	logPage = 100
	// maxTieSkip bounds a load-more cursor's count of lines that share
	// its instant (a syslog burst within one second).
	maxTieSkip = 100000
	// timelineBefore is how many lines the timeline shows before the
	// instant at most (those nearest it); timelineAfter after it.
	timelineBefore = 2000
	timelineAfter  = 200
	// timelineTail is how long after the instant the timeline goes on.
	timelineTail = 30 * time.Second
	// timelineLine is where the timeline cuts a line (the search shows
	// it whole), so that its 2,200 lines stay within a few MiB.
	timelineLine = 4 << 10
	// maxWindow bounds the timeline's window before the instant.
	maxWindow = time.Hour
	// logSearchTimeout bounds one page's searching.
	logSearchTimeout = 20 * time.Second
)

// logRanges are the range picker's choices besides custom.
var logRanges = []struct{ Value, Label string }{
	{"15m", "last 15 min"}, {"1h", "last hour"}, {"24h", "last 24 hours"},
}

// timelineWindows are the timeline's choices of window.
var timelineWindows = []struct{ Value, Label string }{
	{"1m", "1 min"}, {"5m", "5 min"}, {"15m", "15 min"},
}

// logsView is what logs.html shows.
type logsView struct {
	Title, User, CSRF string
	Now               time.Time
	// The form's values.
	Q, Host, Range, Since, Until, Order string
	Ranges                              []option
	Hosts                               []string
	// Error is why the search could not run (a bad query, a bad time);
	// Unavailable is why the store could not be searched.
	Error, Unavailable string
	Searched           bool
	Lines              []logLineView
	// From and To are the searched range, as shown.
	From, To string
	// More is the link to the next page ("" when there is none).
	More string

	// The timeline (Around set).
	Around      string
	AroundTime  time.Time
	Window      string
	Windows     []option
	After       []logLineView
	Truncated   bool
	HostLegend  []hostCount
	SearchRange string // a search link over the timeline's range
	Before      int
}

type option struct {
	Value, Label string
	Selected     bool
	Href         string
}

type hostCount struct {
	Host  string
	Class string
	N     int
}

// logLineView is one line as the page shows it.
type logLineView struct {
	Time string
	ISO  string
	// Timeline links what every host said in the minute before it.
	Timeline  string
	Host      string
	HostClass string
	Unit      string
	Source    string
	Priority  string
	PrioClass string
	Parts     []linePart
}

// linePart is a piece of a line, marked when it matched the query.
type linePart struct {
	Text string
	Mark bool
}

var priorityLabels = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// PriorityName is a syslog severity's name (0 emerg .. 7 debug), "-" when
// it is unknown.
func PriorityName(p int) string {
	if p < 0 || p >= len(priorityLabels) {
		return "-"
	}
	return priorityLabels[p]
}

// logsPage serves /console/logs.
func (s *Site) logsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	ls, ok := s.b.(LogSearcher)
	if !ok {
		http.Error(w, "this tower has no log store", http.StatusNotFound)
		return
	}
	now := s.o.Now().UTC()
	v := s.logsForm(r, sess, now)
	ctx, cancel := context.WithTimeout(r.Context(), logSearchTimeout)
	defer cancel()
	var status int
	if v.Around != "" {
		status = s.timeline(ctx, ls, r, &v, now)
	} else {
		status = s.logSearch(ctx, ls, r, &v, now)
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	s.render(w, "logs.html", v)
}

// logsForm reads the form's values and fills the pickers.
func (s *Site) logsForm(r *http.Request, sess *session, now time.Time) logsView {
	p := r.URL.Query()
	v := logsView{Title: s.o.Title, User: sess.user, CSRF: sess.csrf, Now: now,
		Q: p.Get("q"), Host: strings.TrimSpace(p.Get("host")), Range: p.Get("range"),
		Since: strings.TrimSpace(p.Get("since")), Until: strings.TrimSpace(p.Get("until")),
		Order: p.Get("order"), Around: strings.TrimSpace(p.Get("around")), Window: p.Get("window")}
	if v.Range == "" {
		v.Range = "1h"
	}
	if v.Since != "" || v.Until != "" {
		v.Range = "custom"
	}
	if v.Order != "oldest" {
		v.Order = "newest"
	}
	if v.Window == "" {
		v.Window = "1m"
	}
	for _, o := range logRanges {
		v.Ranges = append(v.Ranges, option{Value: o.Value, Label: o.Label, Selected: o.Value == v.Range})
	}
	v.Ranges = append(v.Ranges, option{Value: "custom", Label: "custom (the times below)", Selected: v.Range == "custom"})
	if hosts, err := s.b.Hosts(r.Context(), now); err == nil {
		for _, h := range hosts {
			v.Hosts = append(v.Hosts, h.Name)
		}
		sort.Strings(v.Hosts)
	}
	return v
}

// query parses the form's query and host into a store query; the caller
// sets the time bounds and the limit.
func (v *logsView) query() (logstore.Query, error) {
	q, err := logstore.ParseQuery(v.Q)
	if err != nil {
		return q, err
	}
	switch {
	case v.Host == "":
	case len(q.Hosts) == 0:
		q.Hosts = []string{v.Host}
	default:
		// The query's hosts are any of them; the picker narrows them.
		q.Terms = append(q.Terms, logstore.Term{Field: "host", Text: v.Host})
	}
	return q, nil
}

// logSearch runs the search of one page; it returns the page's status.
func (s *Site) logSearch(ctx context.Context, ls LogSearcher, r *http.Request, v *logsView, now time.Time) int {
	p := r.URL.Query()
	if len(p) == 0 {
		return http.StatusOK // the empty form
	}
	v.Searched = true
	q, err := v.query()
	if err != nil {
		v.Error = err.Error()
		return http.StatusBadRequest
	}
	since, until, err := searchRange(v, now)
	if err != nil {
		v.Error = err.Error()
		return http.StatusBadRequest
	}
	q.Since, q.Until = since, until
	q.Newest = v.Order == "newest"
	curT, skip, err := parseLogCursor(p.Get("more"))
	if err != nil {
		v.Error = err.Error()
		return http.StatusBadRequest
	}
	if !curT.IsZero() {
		if q.Newest && (q.Until.IsZero() || curT.Before(q.Until)) {
			q.Until = curT.Add(time.Nanosecond)
		}
		if !q.Newest && curT.After(q.Since) {
			q.Since = curT
		}
	}
	q.Limit = skip + logPage + 1
	var got []logstore.Entry
	seen := 0
	err = ls.SearchLogs(ctx, q, func(e logstore.Entry) bool {
		if seen < skip && e.Time.Equal(curT) {
			seen++
			return true
		}
		got = append(got, e)
		return len(got) <= logPage
	})
	if err != nil {
		v.Unavailable = err.Error()
		return http.StatusServiceUnavailable
	}
	v.From, v.To = whenOrOpen(since, "the oldest line"), whenOrOpen(until, "now")
	marks := highlighter(q)
	if len(got) > logPage {
		got = got[:logPage]
		last := got[len(got)-1].Time
		n := 0
		for i := len(got) - 1; i >= 0 && got[i].Time.Equal(last); i-- {
			n++
		}
		if last.Equal(curT) {
			n += skip
		}
		more := url.Values{"q": {v.Q}, "order": {v.Order}, "more": {formatLogCursor(last, n)}}
		if v.Host != "" {
			more.Set("host", v.Host)
		}
		// The next page keeps this page's range, though "now" moves on.
		if !since.IsZero() {
			more.Set("since", since.Format(time.RFC3339Nano))
		}
		more.Set("until", until.Format(time.RFC3339Nano))
		v.More = "/console/logs?" + more.Encode()
	}
	classes := hostClasses(got)
	for _, e := range got {
		v.Lines = append(v.Lines, lineView(e, marks, classes))
	}
	return http.StatusOK
}

// searchRange is the range the form asks for: the last 15 min, hour or
// day, or custom times (since, until; UTC unless they say otherwise).
func searchRange(v *logsView, now time.Time) (since, until time.Time, err error) {
	until = now.Add(time.Nanosecond) // a line written this instant is included
	switch v.Range {
	case "custom":
		if v.Since != "" {
			if since, err = parseConsoleTime(v.Since); err != nil {
				return since, until, fmt.Errorf("from: %w", err)
			}
		}
		if v.Until != "" {
			if until, err = parseConsoleTime(v.Until); err != nil {
				return since, until, fmt.Errorf("to: %w", err)
			}
		}
		if !since.IsZero() && !until.After(since) {
			return since, until, fmt.Errorf("the range from %s to %s is empty: the end must come after the start", fmtTime(since), fmtTime(until))
		}
	default:
		d, perr := time.ParseDuration(v.Range)
		if perr != nil || !slices.ContainsFunc(logRanges, func(o struct{ Value, Label string }) bool { return o.Value == v.Range }) {
			return since, until, fmt.Errorf("range %q: pick one of 15m, 1h, 24h or custom", v.Range)
		}
		since = now.Add(-d)
	}
	return since, until, nil
}

// timeline fills the cross-host timeline around v.Around.
func (s *Site) timeline(ctx context.Context, ls LogSearcher, r *http.Request, v *logsView, now time.Time) int {
	v.Searched = true
	at, err := parseConsoleTime(v.Around)
	if err != nil {
		v.Error = "around: " + err.Error()
		return http.StatusBadRequest
	}
	v.AroundTime = at.UTC()
	window, err := time.ParseDuration(v.Window)
	if err != nil || window <= 0 || window > maxWindow {
		v.Error = fmt.Sprintf("window %q: a duration from 1s to 1h, such as 1m, 5m or 15m", v.Window)
		return http.StatusBadRequest
	}
	for _, o := range timelineWindows {
		link := url.Values{"around": {v.AroundTime.Format(time.RFC3339Nano)}, "window": {o.Value}}
		if v.Q != "" {
			link.Set("q", v.Q)
		}
		if v.Host != "" {
			link.Set("host", v.Host)
		}
		d, _ := time.ParseDuration(o.Value)
		v.Windows = append(v.Windows, option{Value: o.Value, Label: o.Label, Selected: d == window, Href: "/console/logs?" + link.Encode()})
	}
	q, err := v.query()
	if err != nil {
		v.Error = err.Error()
		return http.StatusBadRequest
	}
	from, instant, to := at.Add(-window), at.Add(time.Nanosecond), at.Add(timelineTail)
	search := url.Values{"q": {v.Q}, "since": {from.UTC().Format(time.RFC3339Nano)}, "until": {to.UTC().Format(time.RFC3339Nano)}, "order": {"oldest"}}
	if v.Host != "" {
		search.Set("host", v.Host)
	}
	v.SearchRange = "/console/logs?" + search.Encode()
	v.From, v.To = fmtTime(from), fmtTime(to)

	// The lines nearest the instant matter most: newest first, then
	// turned around.
	before := q
	before.Since, before.Until, before.Newest, before.Limit = from, instant, true, timelineBefore+1
	var got []logstore.Entry
	if err := ls.SearchLogs(ctx, before, func(e logstore.Entry) bool {
		got = append(got, cutForTimeline(e))
		return len(got) <= timelineBefore
	}); err != nil {
		v.Unavailable = err.Error()
		return http.StatusServiceUnavailable
	}
	if len(got) > timelineBefore {
		got, v.Truncated = got[:timelineBefore], true
	}
	slices.Reverse(got)
	after := q
	after.Since, after.Until, after.Newest, after.Limit = instant, to, false, timelineAfter
	var tail []logstore.Entry
	if err := ls.SearchLogs(ctx, after, func(e logstore.Entry) bool {
		tail = append(tail, cutForTimeline(e))
		return len(tail) < timelineAfter
	}); err != nil {
		v.Unavailable = err.Error()
		return http.StatusServiceUnavailable
	}
	classes := hostClasses(append(slices.Clip(got), tail...))
	marks := highlighter(q)
	counts := map[string]int{}
	for _, e := range got {
		v.Lines = append(v.Lines, lineView(e, marks, classes))
		counts[e.Host]++
	}
	for _, e := range tail {
		v.After = append(v.After, lineView(e, marks, classes))
		counts[e.Host]++
	}
	v.Before = len(got)
	for h, c := range classes {
		v.HostLegend = append(v.HostLegend, hostCount{Host: h, Class: c, N: counts[h]})
	}
	sort.Slice(v.HostLegend, func(i, j int) bool { return v.HostLegend[i].Host < v.HostLegend[j].Host })
	return http.StatusOK
}

// cutForTimeline cuts a long line to timelineLine bytes, copied, so that
// the whole line need not stay in memory.
func cutForTimeline(e logstore.Entry) logstore.Entry {
	if len(e.Line) <= timelineLine {
		return e
	}
	n := timelineLine
	for n > 0 && !utf8.RuneStart(e.Line[n]) {
		n--
	}
	e.Line = strings.Clone(e.Line[:n]) + fmt.Sprintf(" …[cut: %d bytes; the search shows it whole]", len(e.Line))
	return e
}

// hostPalette is the number of host colours (style.css, .h0 to .h7).
const hostPalette = 8

// hostClasses gives each host of the lines a colour class: by a hash of
// its name, so a host keeps its colour from page to page, moved on to
// the next free colour while one is free.
func hostClasses(es []logstore.Entry) map[string]string {
	var hosts []string
	for _, e := range es {
		if !slices.Contains(hosts, e.Host) {
			hosts = append(hosts, e.Host)
		}
	}
	sort.Strings(hosts)
	used := map[int]bool{}
	out := map[string]string{}
	for _, h := range hosts {
		f := fnv.New32a()
		_, _ = f.Write([]byte(h))
		c := int(f.Sum32() % hostPalette)
		for i := 0; i < hostPalette && used[c] && len(used) < hostPalette; i++ {
			c = (c + 1) % hostPalette
		}
		used[c] = true
		out[h] = "h" + strconv.Itoa(c)
	}
	return out
}

func lineView(e logstore.Entry, marks []*regexp.Regexp, classes map[string]string) logLineView {
	l := logLineView{Time: e.Time.UTC().Format("2006-01-02 15:04:05.000"), ISO: e.Time.UTC().Format(time.RFC3339Nano), Timeline: TimelineHref(e.Time),
		Host: e.Host, HostClass: classes[e.Host], Unit: e.Unit, Source: e.Source, Priority: "—", PrioClass: "pu",
		Parts: highlight(Printable(e.Line), marks)}
	if e.Priority >= 0 && e.Priority < len(priorityLabels) {
		l.Priority, l.PrioClass = priorityLabels[e.Priority], "p"+strconv.Itoa(e.Priority)
	}
	return l
}

// Printable shows a line's control characters (terminal colours, NULs)
// as the Unicode pictures of them, so they neither vanish nor garble a
// page; tabs stay.
func Printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return r
		case r < 0x20:
			return 0x2400 + r
		case r == 0x7f:
			return 0x2421
		}
		return r
	}, s)
}

// highlighter compiles the query's words and phrases (those a line must
// hold) for marking in the lines.
func highlighter(q logstore.Query) []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, t := range q.Terms {
		if t.Field != "" || t.Not || t.Text == "" {
			continue
		}
		// A query's invalid UTF-8 matches what the store made of it.
		re, err := regexp.Compile("(?i)" + regexp.QuoteMeta(strings.ToValidUTF8(t.Text, "\uFFFD")))
		if err == nil {
			out = append(out, re)
		}
	}
	return out
}

// highlight cuts a line into parts, marking what the query's terms
// match. A term matches as the store does: on word boundaries, case
// aside.
func highlight(line string, marks []*regexp.Regexp) []linePart {
	if len(marks) == 0 {
		return []linePart{{Text: line}}
	}
	var spans [][2]int
	for _, re := range marks {
		for _, m := range re.FindAllStringIndex(line, -1) {
			if onBoundary(line, m[0], m[1]) {
				spans = append(spans, [2]int{m[0], m[1]})
			}
		}
	}
	if len(spans) == 0 {
		return []linePart{{Text: line}}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i][0] < spans[j][0] })
	// Overlapping and touching matches make one mark.
	merged := spans[:1]
	for _, sp := range spans[1:] {
		if last := &merged[len(merged)-1]; sp[0] <= last[1] {
			last[1] = max(last[1], sp[1])
		} else {
			merged = append(merged, sp)
		}
	}
	var out []linePart
	pos := 0
	for _, sp := range merged {
		if sp[0] > pos {
			out = append(out, linePart{Text: line[pos:sp[0]]})
		}
		out = append(out, linePart{Text: line[sp[0]:sp[1]], Mark: true})
		pos = sp[1]
	}
	if pos < len(line) {
		out = append(out, linePart{Text: line[pos:]})
	}
	return out
}

// onBoundary: the match line[i:j] does not start or end inside a word
// (a word is letters, digits and _, as the store's tokens).
func onBoundary(line string, i, j int) bool {
	first, _ := utf8.DecodeRuneInString(line[i:])
	last, _ := utf8.DecodeLastRuneInString(line[:j])
	if isWordRune(first) && i > 0 {
		if r, _ := utf8.DecodeLastRuneInString(line[:i]); isWordRune(r) {
			return false
		}
	}
	if isWordRune(last) && j < len(line) {
		if r, _ := utf8.DecodeRuneInString(line[j:]); isWordRune(r) {
			return false
		}
	}
	return true
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// parseLogCursor reads a load-more cursor: the time of the last line
// shown (Unix nanoseconds) and how many lines of that instant were shown.
func parseLogCursor(s string) (time.Time, int, error) {
	if s == "" {
		return time.Time{}, 0, nil
	}
	ns, n, ok := strings.Cut(s, ".")
	t, err1 := strconv.ParseInt(ns, 10, 64)
	skip, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || skip < 0 || skip > maxTieSkip {
		return time.Time{}, 0, errors.New("more: not a cursor of this page; search again")
	}
	return time.Unix(0, t).UTC(), skip, nil
}

func formatLogCursor(t time.Time, n int) string {
	return strconv.FormatInt(t.UnixNano(), 10) + "." + strconv.Itoa(n)
}

// parseConsoleTime reads a time typed in the console: RFC 3339, or
// "2006-01-02 15:04[:05[.000]]" (UTC; a T may stand for the space).
func parseConsoleTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if len(s) > 24 {
		s = s[:24] + "…"
	}
	return time.Time{}, fmt.Errorf("%q: want a UTC time such as 2026-12-02 03:00:00 (or RFC 3339)", s)
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

func whenOrOpen(t time.Time, open string) string {
	if t.IsZero() {
		return open
	}
	return fmtTime(t)
}

// TimelineHref is the console's link to the cross-host timeline before
// an instant: the minute before it, or the window given (5m).
func TimelineHref(at time.Time, window ...string) string {
	w := "1m"
	if len(window) > 0 {
		w = window[0]
	}
	return "/console/logs?" + url.Values{"around": {at.UTC().Format(time.RFC3339Nano)}, "window": {w}}.Encode()
}
