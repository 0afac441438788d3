package probe

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// observation is what one run measured; the placeholders read it.
type observation struct {
	connected bool

	status    int
	hasStatus bool

	body      []byte
	hasBody   bool
	truncated bool
	// bodyStr and bodyShow are the body as text and as a failure shows
	// it, made once for all the conditions on [BODY].
	bodyStr, bodyShow string
	bodyDone          bool

	responseTime time.Duration
	hasRT        bool

	certLeft     time.Duration
	certNotAfter time.Time
	hasCert      bool

	ip    string
	rcode string

	domainLeft    time.Duration
	domainExpires time.Time
	hasDomain     bool
	domainErr     error  // why there is no expiry date
	domainReason  string // the same in plain words

	// missing says why the values that need an answer are absent (the run's error).
	missing string

	jsonDone bool
	json     any
	jsonErr  error
}

// value is a placeholder's resolved value.
type value struct {
	str   string
	num   float64
	isNum bool
	dur   time.Duration
	isDur bool
	arr   []any
	raw   any // the JSON value, for a path into the body
	show  string
}

// evaluate checks one condition; reason says why it failed, with the value seen.
func evaluate(c *condition, o *observation) (ok bool, reason string) {
	v, why := resolve(c.subject, o)
	if why != "" {
		return false, why
	}
	if ok, reason, done := compareRefs(c, v, o); done {
		return ok, reason
	}
	body := c.subject.name == phBody && len(c.subject.path) == 0
	switch c.op {
	case opContains:
		idx := -1
		if v.arr != nil {
			for i, e := range v.arr {
				if jsonString(e) == c.values[0].text {
					idx = i
				}
			}
		} else {
			idx = strings.Index(v.str, c.values[0].text)
		}
		found := idx >= 0
		if found != c.negate {
			return true, ""
		}
		switch {
		case found && body:
			return false, "body contained it: " + snippet(v.str, idx, len(c.values[0].text))
		case !found && body:
			return false, "body did not contain it" + truncNote(o)
		}
		return false, "was " + v.show
	case opMatches:
		if c.re == nil {
			if patMatch(c.glob, v.str) != c.negate {
				return true, ""
			}
			return false, "was " + v.show
		}
		loc := c.re.FindStringIndex(v.str)
		if (loc != nil) != c.negate {
			return true, ""
		}
		switch {
		case loc != nil && body:
			return false, "body matched: " + snippet(v.str, loc[0], loc[1]-loc[0])
		case loc == nil && body:
			return false, "body did not match" + truncNote(o)
		}
		return false, "was " + v.show
	case opIn:
		in := false
		for _, l := range c.values {
			in = in || equal(v, l, c.subject)
		}
		if in != c.negate {
			return true, ""
		}
		return false, "was " + v.show
	case opEq, opNe:
		if equal(v, c.values[0], c.subject) == (c.op == opEq) {
			return true, ""
		}
		return false, "was " + v.show
	}
	// Ordered comparisons: durations, or numbers.
	var order int
	l := c.values[0]
	switch {
	case v.isDur:
		order = cmp.Compare(v.dur, l.dur)
	case v.isNum:
		order = cmp.Compare(v.num, l.num)
	default:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.str), 64)
		if err != nil {
			return false, "was " + v.show + ", not a number"
		}
		order = cmp.Compare(f, l.num)
	}
	var pass bool
	switch c.op {
	case opLt:
		pass = order < 0
	case opLe:
		pass = order <= 0
	case opGt:
		pass = order > 0
	case opGe:
		pass = order >= 0
	}
	if pass {
		return true, ""
	}
	return false, "was " + v.show
}

// compareRefs decides a condition whose value is another placeholder
// ([BODY].age == [BODY].id): numbers as numbers, durations as durations,
// anything else as text. done is false when there is no such value.
func compareRefs(c *condition, v value, o *observation) (ok bool, reason string, done bool) {
	if len(c.values) != 1 || c.values[0].ref == nil {
		return false, "", false
	}
	r, why := resolve(*c.values[0].ref, o)
	if why != "" {
		return false, c.values[0].ref.String() + ": " + why, true
	}
	var order int
	comparable := true
	switch {
	case v.isNum && r.isNum:
		order = cmp.Compare(v.num, r.num)
	case v.isDur && r.isDur:
		order = cmp.Compare(v.dur, r.dur)
	default:
		order = strings.Compare(v.str, r.str)
		comparable = c.op == opEq || c.op == opNe
	}
	var pass bool
	switch c.op {
	case opEq:
		pass = order == 0
	case opNe:
		pass = order != 0
	case opLt:
		pass = comparable && order < 0
	case opLe:
		pass = comparable && order <= 0
	case opGt:
		pass = comparable && order > 0
	case opGe:
		pass = comparable && order >= 0
	}
	if pass {
		return true, "", true
	}
	return false, "was " + v.show + ", " + c.values[0].ref.String() + " was " + r.show, true
}

func equal(v value, l literal, s subject) bool {
	switch {
	case v.isDur:
		return v.dur == l.dur
	case s.name == phConnected || s.fn == fnHas:
		return v.str == strconv.FormatBool(l.b)
	case s.name == phIP && len(s.path) == 0:
		ip := net.ParseIP(v.str)
		return ip != nil && ip.Equal(l.ip)
	case v.isNum && l.isNum:
		return v.num == l.num
	}
	return v.str == l.text
}

func truncNote(o *observation) string {
	if o.truncated {
		return fmt.Sprintf(" (only the first %d bytes were read)", maxBody)
	}
	return ""
}

// resolve reads a placeholder; why is non-empty when there is no value to compare.
func resolve(s subject, o *observation) (v value, why string) {
	if s.fn != "" {
		return resolveFn(s, o)
	}
	missing := func(what string) string {
		if o.missing != "" {
			return what + ": " + o.missing
		}
		return what
	}
	switch s.name {
	case phStatus:
		if !o.hasStatus {
			return v, missing("no response")
		}
		v.num, v.isNum, v.str = float64(o.status), true, strconv.Itoa(o.status)
		v.show = v.str
	case phResponseTime:
		if !o.hasRT {
			return v, missing("not measured")
		}
		v.dur, v.isDur, v.show = o.responseTime, true, formatDuration(o.responseTime)
	case phCert:
		if !o.hasCert {
			return v, missing("no certificate")
		}
		v.dur, v.isDur = o.certLeft, true
		v.show = fmt.Sprintf("%s (expires %s)", formatDuration(o.certLeft), o.certNotAfter.UTC().Format(time.RFC3339))
	case phDomain:
		if !o.hasDomain {
			if o.domainErr != nil {
				return v, "no expiry date: " + o.domainErr.Error()
			}
			return v, missing("no expiry date")
		}
		v.dur, v.isDur = o.domainLeft, true
		v.show = fmt.Sprintf("%s (expires %s)", formatDuration(o.domainLeft), o.domainExpires.UTC().Format(time.RFC3339))
	case phConnected:
		v.str = strconv.FormatBool(o.connected)
		v.show = v.str
	case phIP:
		if o.ip == "" {
			return v, missing("no address")
		}
		v.str, v.show = o.ip, o.ip
	case phRcode:
		if o.rcode == "" {
			return v, missing("no answer")
		}
		v.str, v.show = o.rcode, o.rcode
	case phBody:
		if !o.hasBody {
			return v, missing("no body")
		}
		if len(s.path) == 0 {
			if !o.bodyDone {
				o.bodyStr = string(o.body)
				o.bodyShow, o.bodyDone = quoteTrunc(o.bodyStr), true
			}
			v.str, v.show = o.bodyStr, o.bodyShow
			return v, ""
		}
		return resolveJSON(s.path, o)
	}
	return v, ""
}

func resolveJSON(path []pathElem, o *observation) (v value, why string) {
	if !o.jsonDone {
		o.jsonDone = true
		d := json.NewDecoder(bytes.NewReader(o.body))
		d.UseNumber()
		o.jsonErr = d.Decode(&o.json)
		if o.jsonErr == nil && d.More() {
			o.jsonErr = errors.New("more than one JSON value")
		}
	}
	if o.jsonErr != nil {
		return v, "body is not JSON: " + o.jsonErr.Error() + truncNote(o)
	}
	cur := o.json
	where := "[BODY]"
	for _, e := range path {
		if e.isIndex {
			arr, ok := cur.([]any)
			if !ok {
				return v, fmt.Sprintf("%s is %s, not an array", where, jsonKind(cur))
			}
			if e.index >= len(arr) {
				return v, fmt.Sprintf("%s has %d element(s), no [%d]", where, len(arr), e.index)
			}
			cur = arr[e.index]
		} else {
			obj, ok := cur.(map[string]any)
			if !ok {
				return v, fmt.Sprintf("%s is %s, not an object", where, jsonKind(cur))
			}
			next, ok := obj[e.key]
			if !ok {
				return v, fmt.Sprintf("no field %q in %s", e.key, where)
			}
			cur = next
		}
		where += e.String()
	}
	v.str = jsonString(cur)
	v.raw = cur
	switch x := cur.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			v.num, v.isNum = f, true
		}
		v.show = v.str
	case string:
		v.show = quoteTrunc(x)
	case []any:
		v.arr = x
		v.show = trunc(v.str)
	default:
		v.show = trunc(v.str)
	}
	return v, ""
}

// resolveFn reads len(...) or has(...) of the body or a path in it.
func resolveFn(s subject, o *observation) (v value, why string) {
	inner := subject{name: s.name, path: s.path}
	if !o.hasBody {
		return resolve(inner, o) // says why there is no body
	}
	got, why := resolve(inner, o)
	if s.fn == fnHas {
		v.str = strconv.FormatBool(why == "")
		v.show = v.str
		if why != "" {
			v.show += " (" + why + ")"
		}
		return v, ""
	}
	if why != "" {
		return v, why
	}
	n := len(got.str) // the body itself: its length in bytes, as Gatus counts it
	if len(s.path) > 0 {
		switch x := got.raw.(type) {
		case string:
			n = utf8.RuneCountInString(x)
		case []any:
			n = len(x)
		case map[string]any:
			n = len(x)
		}
	}
	v.num, v.isNum = float64(n), true
	v.str = strconv.Itoa(n)
	v.show = v.str
	return v, ""
}

func jsonKind(x any) string {
	switch x.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

// jsonString is a JSON value as text: strings bare, everything else as compact JSON.
func jsonString(x any) string {
	if s, ok := x.(string); ok {
		return s
	}
	b, err := json.Marshal(x)
	if err != nil {
		return fmt.Sprint(x)
	}
	return string(b)
}

const maxShown = 80

// trunc keeps failure messages short: Gatus users found whole bodies copied into alerts
// and storage (TwiN/gatus#98).
func trunc(s string) string {
	if utf8.RuneCountInString(s) <= maxShown {
		return s
	}
	r := []rune(s)
	return string(r[:maxShown]) + "…"
}

func quoteTrunc(s string) string {
	// The byte offset of rune maxShown, without decoding the rest (a body
	// can be a megabyte).
	n, i := 0, 0
	for i < len(s) && n < maxShown {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	if i >= len(s) {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:i]) + "…"
}

// snippet shows the text around s[i:i+n], for "contained it" messages.
func snippet(s string, i, n int) string {
	const around = 30
	start, end := max(0, i-around), min(len(s), i+n+around)
	for start > 0 && !utf8.RuneStart(s[start]) {
		start--
	}
	for end < len(s) && !utf8.RuneStart(s[end]) {
		end++
	}
	out := strconv.Quote(s[start:end])
	if start > 0 {
		out = "…" + out
	}
	if end < len(s) {
		out += "…"
	}
	return fmt.Sprintf("%s at byte %d", out, i)
}

// formatDuration shows response times in ms and long durations in days.
func formatDuration(d time.Duration) string {
	abs := d
	if abs < 0 {
		abs = -abs
	}
	switch {
	case abs >= 24*time.Hour:
		days := int64(abs / (24 * time.Hour))
		rest := (abs % (24 * time.Hour)).Truncate(time.Hour)
		s := strconv.FormatInt(days, 10) + "d"
		if rest > 0 {
			s += strconv.FormatInt(int64(rest/time.Hour), 10) + "h"
		}
		if d < 0 {
			s = "-" + s
		}
		return s
	case abs >= time.Hour:
		return d.Truncate(time.Minute).String()
	case abs >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// judge evaluates a plan: failed conditions make DOWN, failed degraded conditions DEGRADED.
// reason is the first failed condition that decided the status, in plain words.
func judge(p *plan, o *observation, runErr string, t Type) (status Status, failed []string, reason string) {
	down := runErr != "" && !p.connected
	for _, c := range p.conditions {
		if ok, why := evaluate(c, o); !ok {
			failed = append(failed, c.text+": "+why)
			if reason == "" {
				reason = conditionReason(c, o, t)
			}
			down = true
		}
	}
	degraded := false
	var degradedReason string
	for _, c := range p.degraded {
		if ok, why := evaluate(c, o); !ok {
			failed = append(failed, c.text+": "+why)
			if degradedReason == "" {
				degradedReason = conditionReason(c, o, t)
			}
			degraded = true
		}
	}
	switch {
	case down:
		return Down, failed, reason
	case degraded:
		return Degraded, failed, degradedReason
	}
	return Up, failed, ""
}
