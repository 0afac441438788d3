package probe

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/miekg/dns"
)

// The condition language (docs/probes.md): a placeholder, optionally followed by a JSON path
// for [BODY], an operator and a value. Unlike Gatus, which splits the text on " == " and
// silently compares a mistyped placeholder as a literal string, every condition is parsed
// and type-checked when the spec is validated, and errors carry a column.

const (
	phStatus       = "STATUS"
	phBody         = "BODY"
	phResponseTime = "RESPONSE_TIME"
	phCert         = "CERTIFICATE_EXPIRATION"
	phConnected    = "CONNECTED"
	phIP           = "IP"
	phRcode        = "DNS_RCODE"
	phDomain       = "DOMAIN_EXPIRATION"
)

type kind int

const (
	kindNumber kind = iota
	kindText
	kindDuration
	kindBool
	kindIP
	kindRcode
	kindJSON
)

var placeholders = map[string]struct {
	kind  kind
	types []Type
}{
	phStatus:       {kindNumber, []Type{HTTP}},
	phBody:         {kindText, []Type{HTTP, DNS, SMTP, IMAP, SSH, Docker, Domain}},
	phResponseTime: {kindDuration, []Type{HTTP, TCP, DNS, TLS, ICMP, SMTP, IMAP, SSH, Docker}},
	phCert:         {kindDuration, []Type{HTTP, TLS, SMTP, IMAP}},
	phConnected:    {kindBool, Types},
	phIP:           {kindIP, []Type{HTTP, TCP, DNS, TLS, ICMP, SMTP, IMAP, SSH}},
	phRcode:        {kindRcode, []Type{DNS}},
	// As in Gatus, every type with a host name in its target but dns.
	phDomain: {kindDuration, []Type{Domain, HTTP, TCP, TLS, ICMP, SMTP, IMAP, SSH}},
}

// placeholderOrder is how the placeholders are listed in error messages.
var placeholderOrder = []string{phStatus, phBody, phResponseTime, phCert, phConnected, phIP, phRcode, phDomain}

// jsonBody lists the probe types whose [BODY] is JSON and takes a path: an http response,
// a docker container's inspect document, a domain's RDAP answer.
var jsonBody = []Type{HTTP, Docker, Domain}

// reads reports whether the condition reads placeholder name, on either side.
func (c *condition) reads(name string) bool {
	if c.subject.name == name {
		return true
	}
	for _, v := range c.values {
		if v.ref != nil && v.ref.name == name {
			return true
		}
	}
	return false
}

type operator int

const (
	opEq operator = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opContains
	opMatches
	opIn
)

var opNames = map[operator]string{opEq: "==", opNe: "!=", opLt: "<", opLe: "<=", opGt: ">", opGe: ">=",
	opContains: "contains", opMatches: "matches", opIn: "in"}

type pathElem struct {
	key     string
	index   int
	isIndex bool
}

func (e pathElem) String() string {
	if e.isIndex {
		return "[" + strconv.Itoa(e.index) + "]"
	}
	return "." + e.key
}

type subject struct {
	// fn is Gatus's function around the placeholder: "len" (a length,
	// a number) or "has" (whether the path exists, true/false); "" for
	// none.
	fn   string
	name string
	path []pathElem
}

func (s subject) kind() kind {
	switch {
	case s.fn == fnLen:
		return kindNumber
	case s.fn == fnHas:
		return kindBool
	case len(s.path) > 0:
		return kindJSON
	}
	return placeholders[s.name].kind
}

// String is the subject as written, for messages: len([BODY].data).
func (s subject) String() string {
	out := "[" + s.name + "]"
	for _, e := range s.path {
		out += e.String()
	}
	if s.fn != "" {
		out = s.fn + "(" + out + ")"
	}
	return out
}

// The functions Gatus puts around a placeholder.
const (
	fnLen = "len"
	fnHas = "has"
)

type literal struct {
	text   string
	quoted bool
	col    int
	num    float64
	isNum  bool
	dur    time.Duration
	b      bool
	ip     net.IP
	// ref is a placeholder on the right ([BODY].age == [BODY].id),
	// compared with the left one's value in each run.
	ref *subject
}

type condition struct {
	text    string
	subject subject
	op      operator
	negate  bool
	values  []literal
	re      *regexp.Regexp
	// glob is pat(...)'s pattern, with opMatches; re is nil then.
	glob string
}

type parser struct {
	src string
	pos int
	// The probe's type and target, for placeholders on the right.
	t      Type
	target string
}

func (p *parser) col(pos int) int { return utf8.RuneCountInString(p.src[:pos]) + 1 }

func (p *parser) errAt(pos int, format string, args ...any) error {
	return &ConditionError{Column: p.col(pos), Condition: p.src, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

func (p *parser) skipSpace() {
	for !p.eof() && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

func (p *parser) hasPrefix(s string) bool { return strings.HasPrefix(p.src[p.pos:], s) }

// token returns the text of the token at pos, for messages.
func (p *parser) token(pos int) string {
	rest := p.src[pos:]
	if rest == "" {
		return ""
	}
	if strings.ContainsRune("()[],;\"/", rune(rest[0])) {
		return rest[:1]
	}
	for _, op := range []string{"==", "!=", "<=", ">=", "&&", "||"} {
		if strings.HasPrefix(rest, op) {
			return op
		}
	}
	if strings.ContainsRune("<>=!&|", rune(rest[0])) {
		return rest[:1]
	}
	end := strings.IndexAny(rest, " \t()[],\"")
	if end < 0 {
		end = len(rest)
	}
	return rest[:end]
}

// isWordEnd reports whether a bare word ends at byte c.
func isWordEnd(c byte) bool { return strings.IndexByte(" \t(),;\"", c) >= 0 }

// isFieldEnd reports whether a JSON field name ends at byte c.
func isFieldEnd(c byte) bool { return strings.IndexByte(" \t.[]()=!<>,\"", c) >= 0 }

// parseCondition parses and type-checks one condition for a probe of type t aimed at target.
func parseCondition(text string, t Type, target string) (*condition, error) {
	p := &parser{src: text, t: t, target: target}
	c := &condition{text: text}
	p.skipSpace()
	if p.eof() {
		return nil, p.errAt(p.pos, "empty condition")
	}
	sub, err := p.parseSubject(t, target)
	if err != nil {
		return nil, err
	}
	c.subject = sub
	p.skipSpace()
	if p.eof() {
		return nil, p.errAt(p.pos, "missing operator after %s (one of ==, !=, <, <=, >, >=, contains, not contains, matches, not matches, in, not in)", strings.TrimSpace(text[:p.pos]))
	}
	opPos := p.pos
	if err := p.parseOperator(c); err != nil {
		return nil, err
	}
	k := c.subject.kind()
	if fn, arg, argPos, ok := p.valueFunction(); ok && (c.op == opEq || c.op == opNe) {
		// Gatus's == pat(glob) and == any(a, b): a match and a list.
		c.negate = c.op == opNe
		switch fn {
		case "pat":
			if k == kindDuration || k == kindBool {
				return nil, p.errAt(opPos, "%s is not text: pat(...) matches text and numbers", c.subject)
			}
			if !utf8.ValidString(arg) {
				return nil, p.errAt(argPos, "pat(...) takes text: the pattern is not valid UTF-8")
			}
			if _, err := path.Match(strings.ReplaceAll(arg, "/", ""), ""); err != nil {
				return nil, p.errAt(argPos, "pat(%s) is not a pattern: a [ without its ], or a \\ at the end", arg)
			}
			c.op = opMatches
			c.glob = arg
			c.values = []literal{{text: arg, col: p.col(argPos)}}
			p.pos = len(p.src)
			return c, nil
		case "any":
			c.op = opIn
			p.pos = argPos - 1 // at the "(" of the list
		}
	}
	if err := checkOperator(p, opPos, c, k); err != nil {
		return nil, err
	}

	switch c.op {
	case opMatches:
		if err := p.parseRegex(c); err != nil {
			return nil, err
		}
	case opIn:
		p.skipSpace()
		if p.eof() || p.src[p.pos] != '(' {
			return nil, p.errAt(p.pos, "in takes a list in parentheses, e.g. in (200, 204)")
		}
		open := p.pos
		p.pos++
		p.skipSpace()
		if !p.eof() && p.src[p.pos] == ')' {
			return nil, p.errAt(open, "empty list")
		}
		for {
			v, err := p.parseValue(c.op)
			if err != nil {
				return nil, err
			}
			c.values = append(c.values, v)
			p.skipSpace()
			if p.eof() {
				return nil, p.errAt(open, "unclosed list: missing )")
			}
			if p.src[p.pos] == ')' {
				p.pos++
				break
			}
			if p.src[p.pos] != ',' {
				return nil, p.errAt(p.pos, "unexpected %q: expected , or )", p.token(p.pos))
			}
			p.pos++
		}
	default:
		v, err := p.parseValue(c.op)
		if err != nil {
			return nil, err
		}
		c.values = []literal{v}
	}

	p.skipSpace()
	if !p.eof() {
		tok := p.token(p.pos)
		hint := ""
		switch strings.ToLower(tok) {
		case "&&", "||", "and", "or", "&", "|":
			hint = " (write one condition per line; all of them must hold)"
		}
		return nil, p.errAt(p.pos, "unexpected %q%s", tok, hint)
	}
	for i := range c.values {
		if err := checkValue(p, c, k, &c.values[i]); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (p *parser) parseOperator(c *condition) error {
	opPos := p.pos
	for _, o := range []struct {
		s  string
		op operator
	}{{"==", opEq}, {"!=", opNe}, {"<=", opLe}, {">=", opGe}, {"<", opLt}, {">", opGt}} {
		if p.hasPrefix(o.s) {
			p.pos += len(o.s)
			c.op = o.op
			return nil
		}
	}
	switch p.src[p.pos] {
	case '=':
		return p.errAt(opPos, "\"=\" is not an operator: write ==")
	case '!':
		return p.errAt(opPos, "\"!\" is not an operator: write != or not contains")
	}
	word := func() string {
		s := p.pos
		for !p.eof() && (p.src[p.pos]|0x20) >= 'a' && (p.src[p.pos]|0x20) <= 'z' {
			p.pos++
		}
		return strings.ToLower(p.src[s:p.pos])
	}
	w := word()
	if w == "not" {
		p.skipSpace()
		wp := p.pos
		w = word()
		if w != "contains" && w != "matches" && w != "in" {
			return p.errAt(wp, "expected contains, matches or in after \"not\", not %q", p.token(wp))
		}
		c.negate = true
	}
	switch w {
	case "contains":
		c.op = opContains
	case "matches":
		c.op = opMatches
	case "in":
		c.op = opIn
	default:
		return p.errAt(opPos, "unexpected %q: expected an operator (==, !=, <, <=, >, >=, contains, not contains, matches, not matches, in, not in)", p.token(opPos))
	}
	if !p.eof() && !isWordEnd(p.src[p.pos]) {
		return p.errAt(opPos, "unexpected %q: expected an operator", p.token(opPos))
	}
	return nil
}

func checkOperator(p *parser, opPos int, c *condition, k kind) error {
	name := c.subject.String()
	if k == kindJSON {
		return nil
	}
	ordered := c.op >= opLt && c.op <= opGe
	switch k {
	case kindNumber:
		if c.op == opContains || c.op == opMatches {
			return p.errAt(opPos, "%s is a number: use ==, !=, <, <=, >, >= or in", name)
		}
	case kindDuration:
		if !ordered && c.op != opEq && c.op != opNe {
			return p.errAt(opPos, "%s is a duration: use <, <=, >, >=, == or !=", name)
		}
	case kindBool:
		if c.op != opEq && c.op != opNe {
			return p.errAt(opPos, "%s is true or false: use == or !=", name)
		}
	case kindText, kindIP, kindRcode:
		if ordered {
			return p.errAt(opPos, "%s is text: %s compares numbers and durations", name, opNames[c.op])
		}
		if k == kindRcode && (c.op == opContains || c.op == opMatches) {
			return p.errAt(opPos, "%s is a response code: use ==, != or in", name)
		}
	}
	return nil
}

func (p *parser) parseRegex(c *condition) error {
	p.skipSpace()
	if p.eof() || p.src[p.pos] != '/' {
		return p.errAt(p.pos, "matches takes a /regular expression/")
	}
	open := p.pos
	p.pos++
	var b strings.Builder
	closed := false
	for !p.eof() {
		ch := p.src[p.pos]
		if ch == '\\' && p.pos+1 < len(p.src) && p.src[p.pos+1] == '/' {
			b.WriteByte('/')
			p.pos += 2
			continue
		}
		if ch == '\\' && p.pos+1 < len(p.src) {
			b.WriteString(p.src[p.pos : p.pos+2])
			p.pos += 2
			continue
		}
		p.pos++
		if ch == '/' {
			closed = true
			break
		}
		b.WriteByte(ch)
	}
	if !closed {
		return p.errAt(open, "unterminated regular expression: missing closing /")
	}
	expr := b.String()
	for !p.eof() && p.src[p.pos] >= 'a' && p.src[p.pos] <= 'z' {
		if p.src[p.pos] != 'i' {
			return p.errAt(p.pos, "unknown regular expression flag %q (only i, ignore case)", p.src[p.pos:p.pos+1])
		}
		expr = "(?i)" + expr
		p.pos++
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return p.errAt(open, "invalid regular expression: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	c.re = re
	c.values = []literal{{text: b.String(), col: p.col(open)}}
	return nil
}

func (p *parser) parseValue(op operator) (literal, error) {
	p.skipSpace()
	if p.eof() {
		return literal{}, p.errAt(p.pos, "missing value after %s", opNames[op])
	}
	start := p.pos
	if p.src[p.pos] == '[' || p.hasPrefix(fnLen+"(") || p.hasPrefix(fnHas+"(") {
		if op == opContains || op == opMatches || op == opIn {
			return literal{}, p.errAt(start, "%s takes values, not a placeholder", opNames[op])
		}
		ref, err := p.parseSubject(p.t, p.target)
		if err != nil {
			return literal{}, err
		}
		return literal{text: ref.String(), ref: &ref, col: p.col(start)}, nil
	}
	if p.src[p.pos] == '"' {
		p.pos++
		var b strings.Builder
		for {
			if p.eof() {
				return literal{}, p.errAt(start, "unterminated string: missing closing \"")
			}
			ch := p.src[p.pos]
			p.pos++
			if ch == '"' {
				break
			}
			if ch == '\\' {
				if p.eof() {
					return literal{}, p.errAt(start, "unterminated string: missing closing \"")
				}
				e := p.src[p.pos]
				p.pos++
				switch e {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '\\', '"':
					b.WriteByte(e)
				default:
					return literal{}, p.errAt(p.pos-2, "unknown escape \\%c in string (use \\\" \\\\ \\n \\t \\r)", e)
				}
				continue
			}
			b.WriteByte(ch)
		}
		return literal{text: b.String(), quoted: true, col: p.col(start)}, nil
	}
	for !p.eof() && !isWordEnd(p.src[p.pos]) {
		p.pos++
	}
	if start == p.pos {
		return literal{}, p.errAt(start, "unexpected %q: expected a value", p.token(start))
	}
	text := p.src[start:p.pos]
	if strings.EqualFold(text, "pat") && !p.eof() && p.src[p.pos] == '(' {
		return literal{}, p.errAt(start, "pat(...) compares with == or !=")
	}
	return literal{text: text, col: p.col(start)}, nil
}

// checkValue type-checks one literal against the subject and fills its parsed forms.
func checkValue(p *parser, c *condition, k kind, v *literal) error {
	name := c.subject.String()
	bad := func(format string, args ...any) error {
		return &ConditionError{Column: v.col, Condition: p.src, Msg: fmt.Sprintf(format, args...)}
	}
	if v.ref != nil {
		rk := v.ref.kind()
		if rk != k && rk != kindJSON && k != kindJSON && !(rk == kindNumber && k == kindNumber) {
			return bad("%s cannot be compared with %s", name, v.ref)
		}
		return nil
	}
	if f, err := strconv.ParseFloat(v.text, 64); err == nil && !v.quoted && isDecimal(v.text) {
		v.num, v.isNum = f, true
	}
	if c.op == opMatches || c.op == opContains {
		if v.text == "" {
			return bad("empty text")
		}
		return nil
	}
	switch k {
	case kindNumber:
		if !isDecimal(v.text) {
			return bad("%s is compared with a number, not %q", name, v.text)
		}
		v.num, v.isNum = mustFloat(v.text), true
	case kindDuration:
		if c.subject.name == phResponseTime && isDecimal(v.text) && !v.quoted {
			// Gatus's unit for a bare response time: milliseconds.
			v.dur = time.Duration(mustFloat(v.text) * float64(time.Millisecond))
			return nil
		}
		d, err := parseDuration(v.text)
		if err != nil {
			if isDecimal(v.text) {
				return bad("%q needs a unit, e.g. 500ms, 2s, 48h or 14d", v.text)
			}
			return bad("%q is not a duration (e.g. 500ms, 2s, 48h, 14d)", v.text)
		}
		v.dur = d
	case kindBool:
		switch strings.ToLower(v.text) {
		case "true":
			v.b = true
		case "false":
		default:
			return bad("%s is compared with true or false, not %q", name, v.text)
		}
	case kindIP:
		v.ip = net.ParseIP(v.text)
		if v.ip == nil {
			return bad("%q is not an IP address", v.text)
		}
	case kindRcode:
		if _, ok := dns.StringToRcode[strings.ToUpper(v.text)]; !ok {
			return bad("%q is not a DNS response code (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ...)", v.text)
		}
		v.text = strings.ToUpper(v.text)
	case kindJSON:
		if c.op >= opLt && c.op <= opGe && !v.isNum {
			return bad("%s compares numbers, not %q", opNames[c.op], v.text)
		}
	}
	return nil
}

// isDecimal accepts what a person writes as a number: digits, an optional sign and point.
func isDecimal(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

func mustFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// parseDuration is time.ParseDuration plus a leading whole or decimal number of days: 14d,
// 1.5d, 1d12h.
func parseDuration(s string) (time.Duration, error) {
	i := strings.IndexByte(s, 'd')
	if i < 0 {
		return time.ParseDuration(s)
	}
	if !isDecimal(s[:i]) {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	days := time.Duration(mustFloat(s[:i]) * float64(24*time.Hour))
	if s[i+1:] == "" {
		return days, nil
	}
	rest, err := time.ParseDuration(s[i+1:])
	if err != nil || strings.HasPrefix(s[i+1:], "-") || strings.HasPrefix(s[i+1:], "+") {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	if days < 0 {
		return days - rest, nil
	}
	return days + rest, nil
}

// valueFunction reports whether the rest of the condition is Gatus's
// pat(...) or any(...): its name, the text inside the parentheses and
// where that text starts. p.pos does not move.
func (p *parser) valueFunction() (fn, arg string, argPos int, ok bool) {
	rest := strings.TrimRight(p.src[p.pos:], " \t")
	lead := len(rest) - len(strings.TrimLeft(rest, " \t"))
	rest = rest[lead:]
	for _, f := range []string{"pat", "any"} {
		if len(rest) > len(f)+1 && strings.EqualFold(rest[:len(f)], f) && rest[len(f)] == '(' && strings.HasSuffix(rest, ")") {
			return f, rest[len(f)+1 : len(rest)-1], p.pos + lead + len(f) + 1, true
		}
	}
	return "", "", 0, false
}

// patMatch is Gatus's pat(): the whole value against a pattern of Go's
// path.Match (* any run of characters, ? one, [a-z] a class, \ escapes),
// with every "/" taken out of both first, as Gatus does, since a * stops
// at a "/".
func patMatch(pattern, s string) bool {
	if pattern == "*" {
		return true
	}
	ok, _ := path.Match(strings.ReplaceAll(pattern, "/", ""), strings.ReplaceAll(s, "/", ""))
	return ok
}

// parseSubject parses a placeholder, its JSON path and a len(...) or
// has(...) around it, checked against the probe type t and its target.
func (p *parser) parseSubject(t Type, target string) (subject, error) {
	var sub subject
	fnPos := p.pos
	for _, fn := range []string{fnLen, fnHas} {
		if len(p.src)-p.pos > len(fn) && strings.EqualFold(p.src[p.pos:p.pos+len(fn)], fn) && p.src[p.pos+len(fn)] == '(' {
			sub.fn = fn
			p.pos += len(fn) + 1
			p.skipSpace()
			break
		}
	}
	if p.eof() || p.src[p.pos] != '[' {
		if sub.fn != "" {
			return subject{}, p.errAt(p.pos, "%s(...) takes a placeholder such as [BODY].data", sub.fn)
		}
		return subject{}, p.errAt(p.pos, "a condition starts with a placeholder such as [STATUS], not %q", p.token(p.pos))
	}
	start := p.pos
	end := strings.IndexByte(p.src[start:], ']')
	if end < 0 {
		return subject{}, p.errAt(start, "unterminated placeholder: missing ]")
	}
	name := p.src[start+1 : start+end]
	p.pos = start + end + 1
	ph, ok := placeholders[name]
	if !ok {
		if _, ok := placeholders[strings.ToUpper(name)]; ok {
			return subject{}, p.errAt(start, "placeholders are written in capitals: [%s]", strings.ToUpper(name))
		}
		known := make([]string, len(placeholderOrder))
		for i, n := range placeholderOrder {
			known[i] = "[" + n + "]"
		}
		return subject{}, p.errAt(start, "unknown placeholder [%s] (known: %s)", name, strings.Join(known, ", "))
	}
	if !slices.Contains(ph.types, t) {
		return subject{}, p.errAt(start, "[%s] is not measured by %s probes", name, t)
	}
	if name == phCert && t == HTTP && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(target)), "https://") {
		return subject{}, p.errAt(start, "[%s] needs an https:// target", name)
	}
	if name == phDomain && t != Domain {
		if _, err := targetDomain(t, target); err != nil {
			return subject{}, p.errAt(start, "[%s] needs a registered domain name in the target: %v", name, err)
		}
	}
	sub.name = name
	for !p.eof() && (p.src[p.pos] == '.' || p.src[p.pos] == '[') {
		if name != phBody || !slices.Contains(jsonBody, t) {
			return subject{}, p.errAt(p.pos, "[%s] has no fields: only [BODY] of an http, docker or domain probe takes a JSON path", name)
		}
		if p.src[p.pos] == '.' {
			p.pos++
			fs := p.pos
			for !p.eof() && !isFieldEnd(p.src[p.pos]) {
				p.pos++
			}
			if fs == p.pos {
				return subject{}, p.errAt(fs, "expected a field name after \".\"")
			}
			sub.path = append(sub.path, pathElem{key: p.src[fs:p.pos]})
			continue
		}
		bs := p.pos
		p.pos++
		ds := p.pos
		for !p.eof() && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		if ds == p.pos || p.eof() || p.src[p.pos] != ']' {
			return subject{}, p.errAt(bs, "expected an array index such as [0]")
		}
		n, err := strconv.Atoi(p.src[ds:p.pos])
		if err != nil {
			return subject{}, p.errAt(ds, "array index too large")
		}
		p.pos++
		sub.path = append(sub.path, pathElem{index: n, isIndex: true})
	}
	if sub.fn != "" {
		if name != phBody {
			return subject{}, p.errAt(fnPos, "%s(...) applies to [BODY] and its JSON paths, not [%s]", sub.fn, name)
		}
		p.skipSpace()
		if p.eof() || p.src[p.pos] != ')' {
			return subject{}, p.errAt(fnPos, "%s( is not closed: missing ) after %s", sub.fn, p.src[start:p.pos])
		}
		p.pos++
	}

	return sub, nil
}
