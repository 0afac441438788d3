package tower

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/logstore"
)

// GET /api/v1/logs searches the log store. Parameters:
//
//	q       the query (logstore.ParseQuery: words, "phrases", -word, host:H unit:U source:S priority:err)
//	host    a host (repeatable), as host:H in q
//	since   RFC 3339 time, or a duration ago (1h); until likewise
//	around  an instant (RFC 3339) with window (default 60s): what every
//	        host said in the window before it
//	limit   at most this many lines (default 1000, at most 100000)
//	newest  true: the newest lines first
//	after   a cursor from the Hinomi-Cursor header of an earlier answer:
//	        only the lines the tower stored since (for follow)
//
// The answer is JSON lines, one stored line each; its Hinomi-Cursor
// header is where a follow continues from.

// maxSearchLimit bounds one answer.
const maxSearchLimit = 100000

// followRing and followBytes bound the latest stored lines a follow is
// served from: a client that falls further behind is told how many it
// missed.
const (
	followRing  = 50000
	followBytes = 32 << 20
)

// CursorHeader carries a search's cursor.
const CursorHeader = "Hinomi-Cursor"

// MissedHeader says how many lines a follow missed (it fell behind the
// ring, or the tower restarted).
const MissedHeader = "Hinomi-Missed"

// recentLines keeps the latest stored lines in the order they were
// stored, numbered, for follows.
type recentLines struct {
	// appendMu: appends hold it shared from the store's Append until the
	// lines are in the ring; a search's cursor is taken under it
	// exclusively, so a line is either in the store before the cursor or
	// in the ring after it, never both or neither.
	appendMu sync.RWMutex
	mu       sync.Mutex
	instance string
	first    uint64 // number of ring[0]
	next     uint64 // number of the next line
	ring     []logstore.Entry
	bytes    int
}

func newRecentLines() *recentLines {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &recentLines{instance: hex.EncodeToString(b[:]), first: 1, next: 1}
}

func entrySize(e *logstore.Entry) int {
	return len(e.Line) + len(e.Host) + len(e.Unit) + len(e.Source) + 64
}

func (r *recentLines) add(entries []logstore.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range entries {
		r.ring = append(r.ring, e)
		r.bytes += entrySize(&e)
		r.next++
		for len(r.ring) > followRing || r.bytes > followBytes {
			r.bytes -= entrySize(&r.ring[0])
			r.ring[0] = logstore.Entry{}
			r.ring = r.ring[1:]
			r.first++
		}
	}
}

// cursor is where a follow starting now continues from.
func (r *recentLines) cursor() string {
	r.appendMu.Lock()
	defer r.appendMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.instance + ":" + strconv.FormatUint(r.next, 10)
}

// since returns the lines stored from the cursor on that match, the next
// cursor, and how many lines the ring no longer held.
func (r *recentLines) since(cursor string, q logstore.Query, m *logstore.Matcher) ([]logstore.Entry, string, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	inst, n, _ := strings.Cut(cursor, ":")
	from, err := strconv.ParseUint(n, 10, 64)
	var missed uint64
	if inst != r.instance || err != nil || from > r.next {
		// Another run of the tower: its ring starts over.
		from, missed = 1, 1
	}
	if from < r.first {
		missed += r.first - from
		from = r.first
	}
	var out []logstore.Entry
	for i := from; i < r.next; i++ {
		e := r.ring[i-r.first]
		if m.Match(e) && (q.Since.IsZero() || !e.Time.Before(q.Since)) && (q.Until.IsZero() || e.Time.Before(q.Until)) {
			if len(out) >= q.Limit {
				return out, r.instance + ":" + strconv.FormatUint(i, 10), missed
			}
			out = append(out, e)
		}
	}
	return out, r.instance + ":" + strconv.FormatUint(r.next, 10), missed
}

// LogLine is a stored line as the API answers it.
type LogLine struct {
	Time     time.Time         `json:"time"`
	Host     string            `json:"host"`
	Source   string            `json:"source"`
	Unit     string            `json:"unit,omitempty"`
	Priority int               `json:"priority"`
	Line     string            `json:"line"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// parseLogsQuery reads the search's parameters.
func parseLogsQuery(r *http.Request, now time.Time) (logstore.Query, error) {
	v := r.URL.Query()
	q, err := logstore.ParseQuery(v.Get("q"))
	if err != nil {
		return q, err
	}
	q.Hosts = append(q.Hosts, v["host"]...)
	q.Units = append(q.Units, v["unit"]...)
	if s := v.Get("since"); s != "" {
		if q.Since, err = ParseWhen(s, now); err != nil {
			return q, fmt.Errorf("since: %w", err)
		}
	}
	if s := v.Get("until"); s != "" {
		if q.Until, err = ParseWhen(s, now); err != nil {
			return q, fmt.Errorf("until: %w", err)
		}
	}
	if s := v.Get("around"); s != "" {
		at, err := ParseWhen(s, now)
		if err != nil {
			return q, fmt.Errorf("around: %w", err)
		}
		window := time.Minute
		if w := v.Get("window"); w != "" {
			if window, err = time.ParseDuration(w); err != nil || window <= 0 {
				return q, fmt.Errorf("window %q: want a duration such as 60s", w)
			}
		}
		q.Since, q.Until = at.Add(-window), at.Add(time.Nanosecond)
	}
	q.Limit = logstore.DefaultLimit
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return q, fmt.Errorf("limit %q: want a number of lines, at least 1", s)
		}
		q.Limit = min(n, maxSearchLimit)
	}
	switch v.Get("newest") {
	case "", "false", "0":
	case "true", "1":
		q.Newest = true
	default:
		return q, fmt.Errorf("newest %q: want true or false", v.Get("newest"))
	}
	return q, nil
}

// ParseWhen reads a time: RFC 3339, "2006-01-02 15:04:05" (UTC), or a
// duration ago such as 1h.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time (2026-12-02T03:00:00Z), \"2026-12-02 03:00:00\" (UTC) or a duration ago such as 1h", s)
}

// handleLogSearch is GET /api/v1/logs.
func (t *Tower) handleLogSearch(w http.ResponseWriter, r *http.Request) {
	q, err := parseLogsQuery(r, t.now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if after := r.URL.Query().Get("after"); after != "" {
		m, err := logstore.NewMatcher(q)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		lines, next, missed := t.recent.since(after, q, m)
		w.Header().Set(CursorHeader, next)
		if missed > 0 {
			w.Header().Set(MissedHeader, strconv.FormatUint(missed, 10))
		}
		writeLogLines(w, lines)
		return
	}
	st, err := t.logStore(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	cursor := t.recent.cursor()
	var out []logstore.Entry
	if err := st.Search(r.Context(), q, func(e logstore.Entry) bool {
		out = append(out, e)
		return len(out) < q.Limit
	}); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the log store cannot be searched: " + err.Error()})
		return
	}
	w.Header().Set(CursorHeader, cursor)
	writeLogLines(w, out)
}

func writeLogLines(w http.ResponseWriter, entries []logstore.Entry) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, e := range entries {
		var fields map[string]string
		for k, v := range e.Fields {
			if k == "seq" {
				continue // the ingest's bookkeeping
			}
			if fields == nil {
				fields = map[string]string{}
			}
			fields[k] = v
		}
		_ = enc.Encode(LogLine{Time: e.Time, Host: e.Host, Source: e.Source, Unit: e.Unit, Priority: e.Priority, Line: e.Line, Fields: fields})
	}
}
