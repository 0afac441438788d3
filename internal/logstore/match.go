package logstore

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf8"
)

// matcher is a Query compiled for matching entries one by one.
type matcher struct {
	terms  []termMatcher
	hosts  map[string]bool
	units  map[string]bool
	maxPri int // -1: any priority
	since  int64
	until  int64 // exclusive; 0: none
	hasLow bool  // some term looks in the line
	// tokens every matching line holds (from the positive line terms), for
	// the blocks' bloom filters.
	tokens []uint64
	// lead is a positive line term in ASCII: a block's text is scanned
	// for it at once, and only the lines that hold it are looked at.
	lead *termMatcher
}

type termMatcher struct {
	Term
	lower      []byte // the text in lower case
	edgeBefore bool   // the text starts with a word rune: a word must start there
	edgeAfter  bool
	pri        int
}

func compile(q Query) (*matcher, error) {
	m := &matcher{maxPri: -1}
	if q.MaxPriority >= 0 && q.MaxPriority < 7 {
		m.maxPri = q.MaxPriority
	}
	if len(q.Hosts) > 0 {
		m.hosts = make(map[string]bool, len(q.Hosts))
		for _, h := range q.Hosts {
			m.hosts[h] = true
		}
	}
	if len(q.Units) > 0 {
		m.units = make(map[string]bool, len(q.Units))
		for _, u := range q.Units {
			m.units[u] = true
		}
	}
	if !q.Since.IsZero() {
		m.since = q.Since.UnixNano()
	} else {
		m.since = -1 << 63
	}
	if !q.Until.IsZero() {
		m.until = q.Until.UnixNano()
	} else {
		m.until = 1<<63 - 1
	}
	for _, t := range q.Terms {
		tm := termMatcher{Term: t}
		switch t.Field {
		case "":
			tm.lower = lowerInto(nil, []byte(t.Text))
			if len(tm.lower) > 0 {
				r, _ := utf8.DecodeRune(tm.lower)
				tm.edgeBefore = isTokenRune(r)
				r, _ = utf8.DecodeLastRune(tm.lower)
				tm.edgeAfter = isTokenRune(r)
			}
			m.hasLow = true
			if !t.Not {
				forEachToken(tm.lower, func(tok []byte) { m.tokens = append(m.tokens, hashToken(tok)) })
			}
		case "host", "unit", "source":
		case "priority":
			p, err := ParsePriority(t.Text)
			if err != nil {
				return nil, err
			}
			tm.pri = p
		default:
			return nil, errUnknownField(t.Field)
		}
		m.terms = append(m.terms, tm)
	}
	for i := range m.terms {
		t := &m.terms[i]
		if t.Field == "" && !t.Not && len(t.lower) > 0 && isASCII(t.lower) && (m.lead == nil || len(t.lower) > len(m.lead.lower)) {
			m.lead = t
		}
	}
	return m, nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

type errUnknownField string

func (e errUnknownField) Error() string {
	return "logstore: unknown field " + strconv.Quote(string(e)) + " (want host, unit, source or priority)"
}

// match reports whether r matches; lower is scratch space for the line in
// lower case, returned for reuse.
func (m *matcher) match(r *rawEntry, lower []byte) (bool, []byte) {
	if r.t < m.since || r.t >= m.until {
		return false, lower
	}
	if m.maxPri >= 0 && (r.priority < 0 || r.priority > m.maxPri) {
		return false, lower
	}
	if m.hosts != nil && !m.hosts[string(r.host)] {
		return false, lower
	}
	if m.units != nil && !m.units[string(r.unit)] {
		return false, lower
	}
	if m.hasLow {
		lower = lowerInto(lower[:0], r.line)
	}
	for i := range m.terms {
		t := &m.terms[i]
		var ok bool
		switch t.Field {
		case "":
			ok = t.matchLine(lower)
		case "host":
			ok = string(r.host) == t.Text
		case "unit":
			ok = string(r.unit) == t.Text
		case "source":
			ok = string(r.source) == t.Text
		case "priority":
			ok = r.priority >= 0 && r.priority <= t.pri
		}
		if ok == t.Not {
			return false, lower
		}
	}
	return true, lower
}

// matchLine finds the term in a line already in lower case, where it
// starts and ends at word boundaries (when its own ends are word runes).
func (t *termMatcher) matchLine(line []byte) bool {
	if len(t.lower) == 0 {
		return true
	}
	off := 0
	for {
		i := bytes.Index(line[off:], t.lower)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(t.lower)
		if (!t.edgeBefore || tokenBoundaryBefore(line, i)) && (!t.edgeAfter || tokenBoundaryAfter(line, end)) {
			return true
		}
		_, size := utf8.DecodeRune(line[i:])
		off = i + size
	}
}

// blockMayMatch reports whether a block described by meta may hold a match.
func (m *matcher) blockMayMatch(b *blockMeta) bool {
	if b.maxT < m.since || b.minT >= m.until {
		return false
	}
	if m.maxPri >= 0 && (b.minPri < 0 || b.minPri > m.maxPri) {
		return false
	}
	if m.hosts != nil && !anyIn(b.hosts, m.hosts) {
		return false
	}
	if m.units != nil && !anyIn(b.units, m.units) {
		return false
	}
	for i := range m.terms {
		t := &m.terms[i]
		if t.Not {
			continue
		}
		switch t.Field {
		case "host":
			if !contains(b.hosts, t.Text) {
				return false
			}
		case "unit":
			if !contains(b.units, t.Text) {
				return false
			}
		case "source":
			if !contains(b.sources, t.Text) {
				return false
			}
		case "priority":
			if b.minPri < 0 || b.minPri > t.pri {
				return false
			}
		}
	}
	return true
}

func anyIn(list []string, set map[string]bool) bool {
	for _, s := range list {
		if set[s] {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Matcher tests entries one by one against a Query, with the stores'
// semantics (whole words, case-insensitive; field values exact), for
// lines that are not in a store, such as those a follow has just seen.
// Time bounds and Limit aside.
type Matcher struct{ m *matcher }

// NewMatcher compiles q.
func NewMatcher(q Query) (*Matcher, error) {
	q.Since, q.Until = time.Time{}, time.Time{}
	m, err := compile(q)
	if err != nil {
		return nil, err
	}
	return &Matcher{m: m}, nil
}

// Match reports whether e matches. It is safe for one goroutine at a time.
func (m *Matcher) Match(e Entry) bool {
	r := rawEntry{t: e.Time.UnixNano(), host: []byte(e.Host), unit: []byte(e.Unit), source: []byte(e.Source), priority: e.Priority, line: []byte(e.Line)}
	ok, _ := m.m.match(&r, nil)
	return ok
}
