package web

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hinomi/hinomi/internal/logstore"
)

func marked(parts []linePart) string {
	var b strings.Builder
	for _, p := range parts {
		if p.Mark {
			b.WriteString("[" + p.Text + "]")
		} else {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// TestHighlight: what the query's words and phrases match is marked as
// the store matches them: whole words, any case; negated words and
// fields are not marked.
func TestHighlight(t *testing.T) {
	for _, tc := range []struct{ query, line, want string }{
		{`error`, "ERROR: disk error, errors counted", "[ERROR]: disk [error], errors counted"},
		{`error`, "IOError and error_code", "IOError and error_code"},
		{`"link is down"`, "eth0: Link is Down, link is down", "eth0: [Link is Down], [link is down]"},
		{`EXT4-fs error`, "EXT4-fs error (device sda1)", "[EXT4-fs] [error] (device sda1)"},
		{`10.0.0.5`, "from 10.0.0.5 and 110.0.0.55", "from [10.0.0.5] and 110.0.0.55"},
		{`-timeout disk host:pve1 unit:disk`, "disk timeout", "[disk] timeout"},
		{`ärger`, "Ärger über ärger", "[Ärger] über [ärger]"},
		{`quorum lost`, "quorum lost; quorum regained", "[quorum] [lost]; [quorum] regained"},
		{`a "a b"`, "a b c", "[a b] c"},
	} {
		q, err := logstore.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if got := marked(highlight(tc.line, highlighter(q))); got != tc.want {
			t.Errorf("%s on %q: got %q; want %q", tc.query, tc.line, got, tc.want)
		}
	}
}

func TestLogCursor(t *testing.T) {
	at := time.Date(2026, 12, 2, 3, 0, 0, 123456789, time.UTC)
	got, n, err := parseLogCursor(formatLogCursor(at, 7))
	if err != nil || !got.Equal(at) || n != 7 {
		t.Errorf("round trip: %v %d %v", got, n, err)
	}
	for _, bad := range []string{"x", "12", "12.", ".3", "12.-1", "12.100001", "1e9.2"} {
		if _, _, err := parseLogCursor(bad); err == nil || !strings.Contains(err.Error(), "search again") {
			t.Errorf("cursor %q: %v; want a clear error", bad, err)
		}
	}
}

func TestParseConsoleTime(t *testing.T) {
	want := time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC)
	for _, s := range []string{"2026-12-02 03:04:05", "2026-12-02T03:04:05", "2026-12-02T03:04:05Z", "2026-12-02T04:04:05+01:00", " 2026-12-02 03:04:05.000 "} {
		if got, err := parseConsoleTime(s); err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
	if got, err := parseConsoleTime("2026-12-02 03:04"); err != nil || !got.Equal(want.Add(-5*time.Second)) {
		t.Errorf("minutes: %v %v", got, err)
	}
	if _, err := parseConsoleTime("yesterday"); err == nil || !strings.Contains(err.Error(), "2026-12-02 03:00:00") {
		t.Errorf("a bad time: %v; want the forms it takes", err)
	}
}

func TestPrintable(t *testing.T) {
	if got := Printable("\x1b[31mred\x1b[0m\tx\x00"); got != "␛[31mred␛[0m\tx␀" {
		t.Errorf("Printable: %q", got)
	}
}

func FuzzParseLogCursor(f *testing.F) {
	f.Add("1764644400000000000.3")
	f.Add("-1.0")
	f.Add("9223372036854775807.100000")
	f.Fuzz(func(t *testing.T, s string) {
		at, n, err := parseLogCursor(s)
		if err != nil || s == "" {
			return
		}
		if n < 0 || n > maxTieSkip {
			t.Fatalf("%q: skip %d out of bounds", s, n)
		}
		if s2 := formatLogCursor(at, n); s2 != s {
			if at2, n2, err := parseLogCursor(s2); err != nil || !at2.Equal(at) || n2 != n {
				t.Fatalf("%q: %q does not read back", s, s2)
			}
		}
	})
}

// FuzzHighlight: whatever the query and the line, the parts put back
// together are the line, and a marked part is never empty.
// fuzz budget: 40000x
func FuzzHighlight(f *testing.F) {
	f.Add(`error "link down" -x`, "ERROR: link down\x00 \xff ärger")
	f.Add(`a`, "aaa a")
	f.Fuzz(func(t *testing.T, query, line string) {
		q, err := logstore.ParseQuery(query)
		if err != nil {
			return
		}
		parts := highlight(line, highlighter(q))
		var b strings.Builder
		for _, p := range parts {
			if p.Mark && p.Text == "" {
				t.Fatalf("an empty mark in %q for %q", line, query)
			}
			b.WriteString(p.Text)
		}
		if b.String() != line {
			t.Fatalf("parts %q do not make %q", b.String(), line)
		}
		if utf8.ValidString(line) {
			for _, p := range parts {
				if !utf8.ValidString(p.Text) {
					t.Fatalf("a part cuts a character: %q", p.Text)
				}
			}
		}
	})
}

func FuzzParseConsoleTime(f *testing.F) {
	f.Add("2026-12-02 03:04:05")
	f.Add("2026-12-02T03:04:05.123+01:00")
	f.Fuzz(func(t *testing.T, s string) {
		at, err := parseConsoleTime(s)
		if err != nil {
			if len(err.Error()) > 200 {
				t.Fatalf("an error of %d bytes", len(err.Error()))
			}
			return
		}
		if at.Location() != time.UTC {
			t.Fatalf("%q: %v not in UTC", s, at)
		}
	})
}
