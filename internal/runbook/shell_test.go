package runbook_test

import (
	"strings"
	"testing"
)

// shellWords splits one command line the way a POSIX shell does after
// quote removal: words separated by blanks and operators (| ; & < > ( )),
// single and double quotes, backslash escapes, and $(…) command
// substitutions, whose words are returned too. A comment ends the line.
// It fails the test on an unterminated quote: a runbook must never print
// a command a shell cannot read.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	p := &shParser{s: line}
	words := p.words(false)
	if p.err != "" {
		t.Fatalf("%s in %q", p.err, line)
	}
	return words
}

type shParser struct {
	s   string
	i   int
	err string
}

// words reads words until the end, or until ")" when inside $(…).
func (p *shParser) words(sub bool) []string {
	var out []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			out = append(out, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == ')' && sub:
			p.i++
			flush()
			return out
		case c == ' ' || c == '\t' || strings.IndexByte("|;&<>()", c) >= 0:
			p.i++
			flush()
		case c == '#' && !inWord:
			p.i = len(p.s)
		case c == '\\':
			if p.i+1 < len(p.s) {
				cur.WriteByte(p.s[p.i+1])
			}
			p.i += 2
			inWord = true
		case c == '\'':
			end := strings.IndexByte(p.s[p.i+1:], '\'')
			if end < 0 {
				p.err = "unterminated single quote"
				return out
			}
			cur.WriteString(p.s[p.i+1 : p.i+1+end])
			p.i += end + 2
			inWord = true
		case c == '"':
			p.i++
			inWord = true
			for {
				if p.i >= len(p.s) {
					p.err = "unterminated double quote"
					return out
				}
				d := p.s[p.i]
				if d == '"' {
					p.i++
					break
				}
				if d == '\\' && p.i+1 < len(p.s) && strings.IndexByte("$`\"\\", p.s[p.i+1]) >= 0 {
					cur.WriteByte(p.s[p.i+1])
					p.i += 2
					continue
				}
				if strings.HasPrefix(p.s[p.i:], "$(") {
					p.i += 2
					out = append(out, p.words(true)...)
					continue
				}
				cur.WriteByte(d)
				p.i++
			}
		case strings.HasPrefix(p.s[p.i:], "$("):
			p.i += 2
			out = append(out, p.words(true)...)
			inWord = true
		default:
			cur.WriteByte(c)
			p.i++
			inWord = true
		}
	}
	if sub {
		p.err = "unterminated $("
	}
	flush()
	return out
}
