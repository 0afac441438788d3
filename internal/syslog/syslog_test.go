package syslog

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

var (
	sender = netip.MustParseAddr("192.0.2.7")
	now    = time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
)

// captures reads testdata/captures.txt: real messages from public issues.
func captures(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/captures.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && l[0] != '#' {
			out = append(out, l)
		}
	}
	return out
}

// TestParseRealCaptures: what routers, appliances, busybox, rsyslog and
// syslog-ng really send is read with its host, program, severity and
// text; what no parser reads keeps its text and the sender's address.
func TestParseRealCaptures(t *testing.T) {
	want := map[string]struct {
		format, host, app, text string
		sev                     int
	}{
		"MikroTik user abc":      {"rfc3164", "MikroTik", "", "user abc logged in from 192.168.88.1 via api", 6},
		"User logged into":       {"raw", "192.0.2.7", "", "User logged into the appliance. User: bmagistro.", 6},
		"chronyd[1119]":          {"rfc3164", "192.0.2.7", "chronyd", "Selected source 192.168.65.1", 6},
		"[UFW BLOCK]":            {"rfc3164", "myname", "kernel", "[ 357.266774] [UFW BLOCK] IN=enp9s0", 4},
		"syslog-ng starting up":  {"rfc3164", "ShortSysName", "syslog-ng", "syslog-ng starting up; version='2.0.9'", 5},
		"'su root' failed":       {"rfc5424", "mymachine.example.com", "su", "'su root' failed for lonvick on /dev/pts/8", 2},
		"Hello Info 3":           {"", "", "", "Hello Info 3", 6},
		"GET /test/test.html":    {"rfc3164", "bsd3", "nginx", "192.168.0.104 - - [03/Jun/2016", 6},
		"An application event":   {"rfc5424", "mymachine.example.com", "evntslog", "An application event log entry...", 5},
		"COMMAND=/etc/nagios/z":  {"rfc5424", "system.xxxx.local", "sudo", "nagios : TTY=unknown", 5},
		"This is a test":         {"rfc3164", "test_source", "", "This is a test", 6},
		"unlocked login keyring": {"rfc3164", "xiaoleidouglas", "compiz", "gkr-pam: unlocked login keyring", 6},
	}
	p := NewParser(time.UTC)
	seen := 0
	for _, line := range captures(t) {
		m := p.Parse([]byte(line), sender, now)
		if m.Text == "" || m.Severity < 0 || m.Facility < 0 {
			t.Errorf("%q: read as %+v; want its text and PRI", line, m)
		}
		if m.Time.After(now.Add(48 * time.Hour)) {
			t.Errorf("%q: dated %s, in the future", line, m.Time)
		}
		for key, w := range want {
			if !strings.Contains(line, key) {
				continue
			}
			seen++
			if w.format != "" && (m.Format != w.format || m.Host != w.host || m.App != w.app) {
				t.Errorf("%q: format %s host %q app %q; want %s %q %q", line, m.Format, m.Host, m.App, w.format, w.host, w.app)
			}
			if !strings.Contains(m.Text, w.text) || m.Severity != w.sev {
				t.Errorf("%q: text %q severity %d; want it to hold %q, severity %d", line, m.Text, m.Severity, w.text, w.sev)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("%d of the %d expected captures found in testdata/captures.txt", seen, len(want))
	}
}

func TestParseHostileInput(t *testing.T) {
	p := NewParser(time.UTC)
	for _, in := range [][]byte{
		nil, []byte("<"), []byte("<999>x"), []byte("<13>"), []byte("\xff\xfe\x00garbage\x00\x01"),
		[]byte("<13>1 2026-13-45T99:99:99Z h a - - - bad date"), bytes.Repeat([]byte("<"), 1000),
		[]byte("<34>Oct 11 22:14:15 mymachine su: 'su root' failed \xc3\x28 on /dev/pts/8"),
	} {
		m := p.Parse(in, sender, now)
		if !utf8Valid(m.Text) || strings.ContainsRune(m.Text, 0) || m.Host == "" {
			t.Errorf("%q: %+v; want valid UTF-8 without NUL and a host", in, m)
		}
	}
	// A BSD date in the future is last year's.
	m := p.Parse([]byte("<13>Dec 31 23:59:59 h app: old"), sender, time.Date(2027, 1, 1, 0, 0, 5, 0, time.UTC))
	if m.Time.Year() != 2026 {
		t.Errorf("Dec 31 read on January 1st: %s; want last year", m.Time)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

type frame struct {
	msg string
	cut int64
}

func frames(t testing.TB, in string, max int) []frame {
	t.Helper()
	var out []frame
	if err := Frames(strings.NewReader(in), max, func(m []byte, cut int64) error {
		out = append(out, frame{string(m), cut})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFrames(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []frame
	}{
		{"newline", "<13>a b\n<14>c d\n", []frame{{"<13>a b", 0}, {"<14>c d", 0}}},
		{"octet counting", "7 <13>a b8 <14>c de", []frame{{"<13>a b", 0}, {"<14>c de", 0}}},
		{"mixed, crlf, NUL trailers", "7 <13>a b\r\n<14>c d\x00\n", []frame{{"<13>a b", 0}, {"<14>c d\x00", 0}}},
		{"a line that starts with digits", "2026-12-02 app: up\n", []frame{{"2026-12-02 app: up", 0}}},
		{"no final newline", "<13>last words", []frame{{"<13>last words", 0}}},
		{"cut newline frame", "<13>0123456789\n<14>x\n", []frame{{"<13>012", 7}, {"<14>x", 0}}},
		{"cut counted frame", "14 <13>0123456789<14>x\n", []frame{{"<13>012", 7}, {"<14>x", 0}}},
		{"a count cut short by the end", "30 <13>only this", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			max := 64
			if strings.HasPrefix(c.name, "cut") {
				max = 7
			}
			got := frames(t, c.in, max)
			if len(got) != len(c.want) {
				t.Fatalf("frames %+v; want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("frame %d: %+v; want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

// TestFramesTenMegabyteLine: a 10 MB line is cut to the bound, the rest
// read past, and the next message arrives whole.
func TestFramesTenMegabyteLine(t *testing.T) {
	big := "<13>" + strings.Repeat("x", 10<<20)
	for _, in := range []string{big + "\n<14>after\n", "10485764 " + big + "<14>after\n"} {
		got := frames(t, in, 64<<10)
		if len(got) != 2 || len(got[0].msg) != 64<<10 || got[0].cut != int64(len(big)-64<<10) || got[1].msg != "<14>after" {
			t.Fatalf("%d frames, first %d bytes cut %d; want the first cut to 64 KiB and <14>after whole", len(got), len(got[0].msg), got[0].cut)
		}
	}
}

func TestFramesStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	err := Frames(strings.NewReader("<13>a\n<13>b\n"), 64, func([]byte, int64) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("err %v; want the callback's", err)
	}
}

// fuzz budget: 40000x
func FuzzParse(f *testing.F) {
	for _, c := range captures(f) {
		f.Add([]byte(c))
	}
	f.Add([]byte("<13>1 - - - - - -"))
	f.Add([]byte("\x00\xff<"))
	p := NewParser(time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		m := p.Parse(b, sender, now)
		if !utf8Valid(m.Text) || !utf8Valid(m.Host) || !utf8Valid(m.App) || m.Host == "" {
			t.Fatalf("%q: %+v", b, m)
		}
		if m.Severity < -1 || m.Severity > 7 || m.Facility < -1 || m.Facility > 23 {
			t.Fatalf("%q: severity %d facility %d", b, m.Severity, m.Facility)
		}
	})
}

func FuzzFrames(f *testing.F) {
	f.Add([]byte("7 <13>a b\n<14>c d\n"), uint16(8))
	f.Add([]byte("999999999 x"), uint16(4))
	f.Add([]byte("12\n34 56\x00\r\n"), uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, max uint16) {
		limit := int(max%1024) + 1
		var total int64
		err := Frames(bytes.NewReader(in), limit, func(m []byte, cut int64) error {
			if len(m) > limit || cut < 0 {
				t.Fatalf("frame of %d bytes (cut %d) past the bound %d", len(m), cut, limit)
			}
			total += int64(len(m))
			return nil
		})
		if err != nil {
			t.Fatalf("a reader that cannot fail: %v", err)
		}
		if total > int64(len(in)) {
			t.Fatalf("%d bytes of frames out of %d in", total, len(in))
		}
	})
}
