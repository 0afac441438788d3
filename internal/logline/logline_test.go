package logline

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fixtureLines returns a format capture's lines without its "#" comments.
func fixtureLines(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "formats", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestFormats parses every line of each real capture and checks the
// format, the time, the source and that the message lost its prefix.
func TestFormats(t *testing.T) {
	ctx := Context{Year: 2026, Location: time.UTC, Now: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		file     string
		format   Format
		absolute bool   // the line carries an absolute time
		uptime   bool   // the line carries a time since boot
		source   string // "" : not checked
	}{
		{"dmesg.txt", Dmesg, false, true, "kernel"},
		{"dmesg-T.txt", DmesgT, true, false, "kernel"},
		{"dmesg-iso.txt", DmesgISO, true, false, "kernel"},
		{"dmesg-x.txt", DmesgX, false, true, "kernel"},
		{"kmsg-raw.txt", Kmsg, false, true, "kernel"},
		{"journal-short.txt", Syslog, true, false, ""},
		{"journal-short-iso.txt", ISO, true, false, ""},
		{"journal-short-iso-precise.txt", ISO, true, false, ""},
		{"journal-short-iso-berlin.txt", ISO, true, false, ""},
		{"journal-json.txt", JournalJSON, true, false, ""},
		{"syslog.txt", Syslog, true, false, ""},
		{"syslog-rfc3339.txt", ISO, true, false, ""},
		{"syslog-rfc3164-wire.txt", Syslog, true, false, "hinomi-capture"},
		{"rfc5424.txt", RFC5424, true, false, "hinomi-capture"},
		{"rfc5424-rsyslog.txt", RFC5424, true, false, ""},
		{"docker-json.txt", DockerJSON, true, false, ""},
		{"docker-json-split.txt", DockerJSON, true, false, ""},
		{"logfmt.txt", Logfmt, true, false, ""},
		{"logfmt-debug.txt", Logfmt, true, false, ""},
		{"journal-short-iso-public.txt", ISO, true, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			lines := fixtureLines(t, tt.file)
			if len(lines) == 0 {
				t.Fatal("empty capture")
			}
			for _, l := range lines {
				if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
					continue // a continuation line, or kmsg's " KEY=value"
				}
				want := tt.format
				if tt.format == RFC5424 && !strings.Contains(l[:min(len(l), 7)], ">1 ") {
					want = Syslog // the capture shows the RFC 3164 form beside it
				}
				e := Parse([]byte(l), nil, ctx)
				if e.Format != want {
					t.Errorf("format %s, want %s: %q", e.Format, want, l)
					continue
				}
				if tt.absolute && !strings.Contains(l, "notime") && (e.Time.IsZero() || e.Time.Year() < 2015) {
					t.Errorf("time %v: %q", e.Time, l)
				}
				if tt.uptime && !e.HasUptime {
					t.Errorf("no uptime: %q", l)
				}
				if tt.source != "" && e.Source != tt.source && strings.Contains(l, tt.source) {
					t.Errorf("source %q, want %q: %q", e.Source, tt.source, l)
				}
				if e.Message == "" && !strings.HasSuffix(l, ": ") {
					t.Errorf("empty message: %q", l)
				}
				if strings.HasPrefix(e.Message, "[ ") || strings.HasPrefix(e.Message, "20") && tt.format != DockerJSON {
					t.Errorf("prefix left in the message %q", e.Message)
				}
			}
		})
	}
}

func TestJournalExport(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "formats", "journal-export.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; i < len(b); {
		end := len(b)
		if j := strings.IndexByte(string(b[i:]), '\n'); j >= 0 {
			end = i + j
		}
		line := b[i:end]
		if strings.HasPrefix(string(line), "MESSAGE=") || strings.HasSuffix(string(b[:i]), "\nMESSAGE\n") {
			e := Parse(line, b[:i], Context{})
			if e.Format != JournalExport || e.Time.IsZero() || e.Host == "" || e.Message == "" {
				t.Errorf("entry %+v from %q", e, line)
			}
			n++
		}
		i = end + 1
	}
	if n == 0 {
		t.Fatal("no MESSAGE field in the capture")
	}
}

func TestKlogAndLogread(t *testing.T) {
	ctx := Context{Year: 2023, Location: time.UTC}
	for _, l := range fixtureLines(t, "klog.txt") {
		e := Parse([]byte(l), nil, ctx)
		if e.Time.IsZero() && !strings.HasPrefix(strings.TrimSpace(l), "kubelet[") || e.Message == "" || reKlogHead.MatchString(e.Message) {
			t.Errorf("klog %+v from %q", e, l)
		}
	}
	for _, l := range fixtureLines(t, "openwrt-logread.txt") {
		e := Parse([]byte(l), nil, ctx)
		if e.Format != Logread || e.Time.Year() < 2010 {
			t.Errorf("logread %+v from %q", e, l)
		}
		if strings.Contains(l, "kernel: [") && (!e.HasUptime || strings.HasPrefix(e.Message, "[")) {
			t.Errorf("logread kernel line keeps its uptime in the message: %+v", e)
		}
	}
}

var reKlogHead = regexp.MustCompile(`^[IWEF]\d{4} \d\d:\d\d:\d\d`)

// TestWall reads wall messages as a terminal shows them: the header names
// the host and time, the next line the source and message.
func TestWall(t *testing.T) {
	for _, name := range []string{"wall.txt", "wall-raw.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", "formats", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		n := 0
		for i, l := range lines {
			if i == 0 || !strings.Contains(lines[i-1], "Message from syslogd@") || strings.HasPrefix(l, "#") {
				continue
			}
			before := strings.Join(lines[:i], "\n") + "\n"
			e := Parse([]byte(l), []byte(before), Context{Year: 2026, Location: time.UTC})
			if e.Format != Wall || e.Host == "" || e.Time.IsZero() || e.Source == "" || e.Message == "" {
				t.Errorf("%s: %+v from %q", name, e, l)
			}
			n++
		}
		if n == 0 {
			t.Errorf("%s: no wall message", name)
		}
	}
}

func TestKernelUptimeInSyslog(t *testing.T) {
	// ../shared/samples/kernel-7.txt (https://github.com/docker/for-linux/issues/1001)
	l := "May 15 23:09:30 ubuntu-s-1vcpu-2gb-ams3-01 kernel: [  518.050606] Out of memory: Killed process 15784 (python3) total-vm:11964kB, anon-rss:4288kB, file-rss:3028kB, shmem-rss:0kB"
	e := Parse([]byte(l), nil, Context{Year: 2020, Location: time.UTC})
	if e.Host != "ubuntu-s-1vcpu-2gb-ams3-01" || e.Source != "kernel" || !e.HasUptime || e.Uptime != 518050606*time.Microsecond {
		t.Errorf("got %+v", e)
	}
	if !strings.HasPrefix(e.Message, "Out of memory: Killed process 15784") {
		t.Errorf("message %q", e.Message)
	}
	if want := time.Date(2020, 5, 15, 23, 9, 30, 0, time.UTC); !e.Time.Equal(want) {
		t.Errorf("time %v, want %v", e.Time, want)
	}
}

func TestYearGuessNeverInTheFuture(t *testing.T) {
	ctx := Context{Location: time.UTC, Now: time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)}
	e := Parse([]byte("Dec 31 23:59:59 h kernel: x"), nil, ctx)
	if e.Time.Year() != 2026 {
		t.Errorf("a December line read on January 2nd is from %d, want 2026", e.Time.Year())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"[  123.456789] BUG: x", "6,1,2,-;msg", "Nov 25 21:14:01 h k[1]: m", "<13>1 2026-11-25T21:42:35Z h a - - - m",
		`{"log":"x\n","stream":"stdout","time":"2026-11-25T21:43:20Z"}`, `{"MESSAGE":[104,105],"__REALTIME_TIMESTAMP":"1"}`,
		"E0812 16:26:52.166955   12345 f.go:1] m", "Wed Nov 25 21:14:01 2026 kern.err kernel: [ 1.2] m", `time="x" msg="y \"q\""`,
		"kern  :notice: [    0.000000] x", "2026-11-25T21:10:13,000000+00:00 x", "MESSAGE=x",
	} {
		f.Add([]byte(s), []byte("Message from syslogd@h at Nov 25 21:14:01 ...\n"))
	}
	f.Fuzz(func(t *testing.T, line, before []byte) {
		e := Parse(line, before, Context{})
		if len(e.Message) > MaxLine*2 {
			t.Errorf("message of %d bytes from a %d-byte line", len(e.Message), len(line))
		}
	})
}

func FuzzParseLogfmt(f *testing.F) {
	f.Add(`time="2026-11-25T21:43:56Z" level=info msg="Starting up" a b=`)
	f.Fuzz(func(t *testing.T, s string) { _ = ParseLogfmt(s) })
}

// TestWrappers: a line keeps its message whatever wraps it. Each case is
// a real line of testdata/formats; want is the start of the message the
// line must come out with (nothing of the wrapper left in it).
func TestWrappers(t *testing.T) {
	ctx := Context{Year: 2026, Location: time.UTC, Now: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		file, contains string
		format         Format
		want           string
		uptime, abs    bool
	}{
		{"wrappers.txt", "324986342Z", Stamped, "2019/05/08 06:02:13 http2: Framer", false, true},
		{"wrappers.txt", "nginx: [emerg]", Stamped, "nginx: [emerg] host not found", false, true},
		{"wrappers.txt", "4274.089861", Monotonic, "ACPI: EC: interrupt blocked", true, false},
		{"wrappers.txt", "SERVICE_STOP", Monotonic, "SERVICE_STOP pid=1", true, false},
		{"wrappers.txt", "Hostname set", Monotonic, "Hostname set to <localhost>.", true, false},
		{"wrappers.txt", "Using TOML", Logfmt, "Using TOML configuration file /dev/null", false, true},
		{"wrappers.txt", "runner-host01", Syslog, "WARNING: Checking for jobs... failed", false, true},
		{"wrappers.txt", `"error":"failed"`, AppJSON, "failed to fetch URL: failed", false, false},
		{"wrappers.txt", "21:28:11.869453", Syslog, "rcu: INFO: rcu_preempt detected stalls", false, true},
		{"dmesg-color.txt", "hinomi-test-pids-23843", Dmesg, "cgroup: fork rejected by pids controller in /hinomi-test-pids-23843", true, false},
		{"dmesg-color.txt", "[Wed Dec  2 00:48:25 2026]", DmesgT, "hinomi-testload invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0", false, true},
		{"line-numbers.txt", "1:[", Dmesg, "cgroup: fork rejected by pids controller in /hinomi-test-pids-23843", true, false},
		{"line-numbers.txt", "\t[Wed Dec  2 00:48:25", DmesgT, "hinomi-testload invoked oom-killer", false, true},
		{"line-numbers.txt", "     2 | [", Dmesg, "cgroup: fork rejected by pids controller in /docker/", true, false},
	}
	for _, tt := range tests {
		var line string
		for _, l := range fixtureLines(t, tt.file) {
			if strings.Contains(l, tt.contains) {
				line = l
				break
			}
		}
		if line == "" {
			t.Fatalf("%s: no line holds %q", tt.file, tt.contains)
		}
		e := Parse([]byte(line), nil, ctx)
		if e.Format != tt.format || !strings.HasPrefix(e.Message, tt.want) {
			t.Errorf("%s %q:\n got %s %q\nwant %s %q…", tt.file, tt.contains, e.Format, e.Message, tt.format, tt.want)
		}
		if strings.ContainsAny(e.Message, "\x1b") || strings.Contains(e.Message, "#033[") {
			t.Errorf("colour left in %q", e.Message)
		}
		if tt.contains == "21:28:11.869453" && e.Time.Nanosecond() != 869453000 {
			t.Errorf("short-precise: time %v lost its microseconds", e.Time)
		}
		if tt.uptime != e.HasUptime || tt.abs == e.Time.IsZero() {
			t.Errorf("%s %q: uptime %v (%v), time %v", tt.file, tt.contains, e.HasUptime, e.Uptime, e.Time)
		}
	}
}

func TestStripANSI(t *testing.T) {
	for in, want := range map[string]string{
		"\x1b[32m[ 1.0] \x1b[0mx":     "[ 1.0] x",
		"#033[0;33mWARNING#033[0;m y": "WARNING y",
		"\x1b]0;title\x07text":        "text",
		"a #033 b":                    "a #033 b",
		"\x1b[":                       "",
		"\x1b":                        "",
	} {
		if got := string(stripANSI([]byte(in))); got != want {
			t.Errorf("stripANSI(%q) = %q, want %q", in, got, want)
		}
	}
}

// fuzz budget: 2000x
func FuzzWrappers(f *testing.F) {
	for _, name := range []string{"wrappers.txt", "dmesg-color.txt", "line-numbers.txt", "klog.txt", "docker-json.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", "formats", name))
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, "#") && l != "" {
				f.Add([]byte(l))
			}
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		e := Parse(line, nil, Context{})
		if strings.IndexByte(e.Message, 0x1b) >= 0 {
			t.Errorf("escape byte left in the message %q", e.Message)
		}
		if len(e.Message) > MaxLine*2 {
			t.Errorf("message of %d bytes from a %d-byte line", len(e.Message), len(line))
		}
		// Peeling wrappers never invents text: the message is made of
		// the line's bytes, colours aside (JSON and journal fields decode escapes, so
		// they are left out of this check).
		if line := string(stripANSI(line)); !strings.ContainsAny(line, `{"\`) && e.Message != "" && len(line) < MaxLine {
			for _, w := range strings.Fields(e.Message) {
				if !strings.Contains(line, w) {
					t.Errorf("word %q of the message %q is not in the line %q", w, e.Message, line)
					break
				}
			}
		}
	})
}
