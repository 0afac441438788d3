package logstore

import (
	"fmt"
	"strconv"
	"strings"
)

// Priorities names the syslog severities, 0 (emerg) to 7 (debug).
var priorityNames = map[string]int{
	"emerg": 0, "panic": 0,
	"alert": 1,
	"crit":  2, "critical": 2,
	"err": 3, "error": 3,
	"warning": 4, "warn": 4,
	"notice": 5,
	"info":   6,
	"debug":  7,
}

// ParsePriority reads a severity as a number 0..7 or a syslog name (err,
// warning...).
func ParsePriority(s string) (int, error) {
	if p, ok := priorityNames[strings.ToLower(s)]; ok {
		return p, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 7 {
		return n, nil
	}
	return 0, fmt.Errorf("priority %q: want 0..7 or emerg, alert, crit, err, warning, notice, info, debug", s)
}

// queryFields are the field names a term may carry.
var queryFields = map[string]bool{"host": true, "unit": true, "source": true, "priority": true}

// ParseQuery parses the query language shared by the CLI, the console and both backends:
// words (AND), "phrases", -word, host:H unit:U source:S priority:err (or 0..7, meaning <=).
//
// host:H and unit:U fill Hosts and Units (several mean any of them);
// priority:P lowers MaxPriority; source:S and every negated field (-host:H)
// become Terms with their Field. A word with characters other than letters,
// digits and _ is matched as a phrase. The result has MaxPriority 7 unless
// the query says otherwise, and no time bounds or Limit.
func ParseQuery(s string) (Query, error) {
	q := Query{MaxPriority: 7}
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			break
		}
		start := i
		not := false
		if s[i] == '-' {
			not = true
			i++
			if i >= len(s) || isSpace(s[i]) {
				return Query{}, fmt.Errorf("query: nothing after the - at offset %d", start)
			}
		}
		field := ""
		// field:value, when the word before the colon names a field.
		if j := strings.IndexByte(s[i:], ':'); j > 0 && !strings.ContainsAny(s[i:i+j], " \t\r\n\"") {
			if name := strings.ToLower(s[i : i+j]); queryFields[name] {
				field = name
				i += j + 1
			}
		}
		var text string
		phrase := false
		if i < len(s) && s[i] == '"' {
			t, n, err := readQuoted(s[i:])
			if err != nil {
				return Query{}, fmt.Errorf("query: %w at offset %d", err, i)
			}
			text, phrase = t, true
			i += n
			if i < len(s) && !isSpace(s[i]) {
				return Query{}, fmt.Errorf("query: a space must follow the closing quote at offset %d", i-1)
			}
		} else {
			j := i
			for j < len(s) && !isSpace(s[j]) {
				j++
			}
			text = s[i:j]
			i = j
		}
		if text == "" {
			if field != "" {
				return Query{}, fmt.Errorf("query: %s: needs a value at offset %d", field, start)
			}
			if phrase {
				return Query{}, fmt.Errorf("query: an empty phrase at offset %d", start)
			}
		}
		if field == "" && !phrase && !isWord(text) {
			phrase = true
		}
		switch {
		case field == "priority":
			p, err := ParsePriority(text)
			if err != nil {
				return Query{}, fmt.Errorf("query: %w", err)
			}
			if not {
				q.Terms = append(q.Terms, Term{Text: strconv.Itoa(p), Field: field, Not: true})
			} else if p < q.MaxPriority {
				q.MaxPriority = p
			}
		case field == "host" && !not:
			q.Hosts = append(q.Hosts, text)
		case field == "unit" && !not:
			q.Units = append(q.Units, text)
		case field != "":
			q.Terms = append(q.Terms, Term{Text: text, Field: field, Not: not})
		default:
			q.Terms = append(q.Terms, Term{Text: text, Phrase: phrase, Not: not})
		}
	}
	return q, nil
}

// readQuoted reads a "quoted phrase" at the start of s, where \" and \\ stand
// for " and \; it returns the phrase and the bytes read.
func readQuoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				i++
				b.WriteByte(s[i])
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("an unclosed quote")
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isWord reports whether s is one token: letters, digits and _ only.
func isWord(s string) bool {
	for _, r := range s {
		if !isTokenRune(r) {
			return false
		}
	}
	return s != ""
}

// String writes q back in the query language (time bounds and Limit aside).
func (q Query) String() string {
	var parts []string
	for _, h := range q.Hosts {
		parts = append(parts, "host:"+quoteIfNeeded(h))
	}
	for _, u := range q.Units {
		parts = append(parts, "unit:"+quoteIfNeeded(u))
	}
	if q.MaxPriority >= 0 && q.MaxPriority < 7 {
		parts = append(parts, "priority:"+strconv.Itoa(q.MaxPriority))
	}
	for _, t := range q.Terms {
		s := ""
		if t.Not {
			s = "-"
		}
		if t.Field != "" {
			s += t.Field + ":"
		}
		if t.Phrase {
			s += quote(t.Text)
		} else {
			s += quoteIfNeeded(t.Text)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\r\n\"") || s[0] == '-' {
		return quote(s)
	}
	return s
}
