package signatures

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/logline"
)

func loadBuiltin(t testing.TB) *Catalogue {
	t.Helper()
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// scanText runs the matcher over text and returns the events.
func scanText(t testing.TB, m *Matcher, text string) []Event {
	t.Helper()
	var evs []Event
	if _, err := m.Scan(strings.NewReader(text), "test", func(e Event) { evs = append(evs, e) }); err != nil {
		t.Fatal(err)
	}
	return evs
}

// A source is a public URL, a shared sample or seed, or a capture of
// real kernel lines kept in testdata/captures.
var reSource = regexp.MustCompile(`^(https?://\S+|\.\./shared/(samples|seeds)/\S+|testdata/captures/\S+)`)

func TestCatalogueExamples(t *testing.T) {
	c := loadBuiltin(t)
	m := NewMatcher(c)
	for _, s := range c.Sigs {
		t.Run(s.ID, func(t *testing.T) {
			if s.Title == "" {
				t.Error("no title")
			}
			if len(s.Examples) == 0 {
				t.Fatal("no real example line")
			}
			for _, ex := range s.Examples {
				if !reSource.MatchString(ex.Source) {
					t.Errorf("example %q: source %q is not a URL or a shared sample", ex.Line, ex.Source)
				}
				if strings.HasPrefix(ex.Source, "testdata/") {
					if b, err := os.ReadFile(ex.Source); err != nil || !strings.Contains(string(b), ex.Line) {
						t.Errorf("example %q is not in its capture %s (%v)", ex.Line, ex.Source, err)
					}
				}
				var got *Event
				for _, e := range scanText(t, m, ex.Line+"\n") {
					if e.Sig == s {
						got = &e
					}
				}
				if got == nil {
					t.Errorf("does not match its example %q (message %q)", ex.Line, logline.Parse([]byte(ex.Line), nil, logline.Context{}).Message)
					continue
				}
				for k, want := range ex.Fields {
					if got.Fields[k] != want {
						t.Errorf("example %q: field %s = %q, want %q", ex.Line, k, got.Fields[k], want)
					}
				}
			}
			for _, ex := range s.CounterExamples {
				for _, e := range scanText(t, m, ex.Line+"\n") {
					if e.Sig == s {
						t.Errorf("matches its counter-example %q", ex.Line)
					}
				}
			}
		})
	}
}

func TestCatalogueCoverage(t *testing.T) {
	c := loadBuiltin(t)
	if len(c.Sigs) < 60 {
		t.Errorf("%d signatures, want at least 60", len(c.Sigs))
	}
	modes := map[string]bool{}
	for _, s := range c.Sigs {
		modes[s.Mode] = true
	}
	for _, want := range []string{"FM-E1", "FM-E2", "FM-E3", "FM-E4", "FM-E5", "FM-E6", "FM-E7", "FM-E8",
		"FM-B1", "FM-B2", "FM-B4", "FM-C4", "FM-C5", "FM-C6", "FM-C8", "FM-D5", "FM-D6", "FM-D8", "FM-D10"} {
		if !modes[want] {
			t.Errorf("no signature for %s", want)
		}
	}
}

// TestBenignCorpora scans real logs of healthy machines: any event is a
// false alarm.
func TestBenignCorpora(t *testing.T) {
	m := NewMatcher(loadBuiltin(t))
	n := 0
	err := filepath.WalkDir("../logline/testdata/benign", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".md") {
			return err
		}
		n++
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = m.Scan(f, p, func(e Event) {
			t.Errorf("false alarm %s in %s:%d: %s", e.Sig.ID, p, e.LineNo, e.Line)
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no benign corpora")
	}
}

func TestAggregationAndResolution(t *testing.T) {
	cat, err := Parse([]byte(`
- id: nfs-down
  mode: FM-C6
  severity: high
  title: NFS server not responding
  anchors: ["not responding"]
  pattern: 'nfs: server (?P<server>\S+) not responding'
  group_by: [server]
  examples: [{line: x, source: x}]
- id: nfs-up
  mode: FM-C6
  severity: info
  title: NFS server OK
  anchors: ["nfs: server"]
  pattern: 'nfs: server (?P<server>\S+) OK'
  group_by: [server]
  resolves: nfs-down
  examples: [{line: x, source: x}]
`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cat)
	if err != nil {
		t.Fatal(err)
	}
	// Lines from ../shared/samples/kernel-* style syslog; the server names
	// and times differ so that two outages interleave.
	log := "Oct 11 06:07:26 h kernel: nfs: server fs1 not responding, still trying\n" +
		"Oct 11 06:07:36 h kernel: nfs: server fs1 not responding, still trying\n" +
		"Oct 11 06:07:40 h kernel: nfs: server fs2 not responding, still trying\n" +
		"Oct 11 06:08:06 h kernel: nfs: server fs1 OK\n"
	ins := aggregate(t, c, log, 2017)
	if len(ins) != 2 {
		t.Fatalf("%d incidents, want 2", len(ins))
	}
	fs1 := ins[0]
	if fs1.Fields["server"] != "fs1" || fs1.Count != 2 || fs1.Ended == nil || fs1.Duration().Seconds() != 40 {
		t.Errorf("fs1 incident: server %s count %d ended %v duration %s", fs1.Fields["server"], fs1.Count, fs1.Ended != nil, fs1.Duration())
	}
	if ins[1].Fields["server"] != "fs2" || ins[1].Ended != nil {
		t.Errorf("fs2 incident should be open: %+v", ins[1].Fields)
	}
	f := fs1.Finding("h")
	if !strings.Contains(f.Summary, "resolved after 40s") || f.Key != "FM-C6/nfs-down server=fs1" {
		t.Errorf("finding %q key %q", f.Summary, f.Key)
	}
}

// TestHostileInput: one 10 MB line, NUL bytes, invalid UTF-8 and CRLF do
// not crash the matcher, and matches around them are still found.
func TestHostileInput(t *testing.T) {
	m := NewMatcher(loadBuiltin(t))
	ex := loadBuiltin(t).Sigs[0].Examples[0].Line
	var b bytes.Buffer
	b.WriteString(strings.Repeat("x", 10<<20))
	b.WriteString("\n\x00\x00\xff\xfe garbage \x00\r\n")
	b.WriteString(ex + "\r\n")
	b.WriteString(strings.Repeat("\xc3", 1000) + "\n")
	var evs []Event
	st, err := m.Scan(&b, "hostile", func(e Event) { evs = append(evs, e) })
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 || evs[0].LineNo != 3 {
		t.Fatalf("events %d (first at line %d), want the example at line 3", len(evs), lineOf0(evs))
	}
	if st.Lines != 4 {
		t.Errorf("%d lines, want 4", st.Lines)
	}
}

func lineOf0(evs []Event) int64 {
	if len(evs) == 0 {
		return 0
	}
	return evs[0].LineNo
}

func TestLineNumbersAcrossChunks(t *testing.T) {
	m := NewMatcher(loadBuiltin(t))
	ex := loadBuiltin(t).Sigs[0].Examples[0].Line
	var b strings.Builder
	const filler = 50_000
	for i := 0; i < filler; i++ {
		b.WriteString("Nov 25 21:14:01 host systemd[1]: Started a perfectly ordinary unit number something.\n")
	}
	b.WriteString(ex + "\n")
	evs := scanText(t, m, b.String())
	if len(evs) == 0 || evs[0].LineNo != filler+1 {
		t.Fatalf("event at line %d, want %d", lineOf0(evs), filler+1)
	}
}

// fuzz budget: 20000x
func FuzzScan(f *testing.F) {
	c, err := Builtin()
	if err != nil {
		f.Fatal(err)
	}
	m := NewMatcher(c)
	for _, s := range c.Sigs {
		for _, ex := range s.Examples {
			f.Add([]byte(ex.Line + "\n"))
		}
	}
	// Whole real excerpts: wrapped records, continuation traces, wall
	// broadcasts, goroutine dumps.
	paths, _ := filepath.Glob("testdata/corpus/*/*")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := m.Scan(bytes.NewReader(b), "fuzz", func(e Event) {
			if e.Sig == nil || len(e.Line) > logline.MaxLine {
				t.Errorf("bad event %+v", e)
			}
		})
		if err != nil {
			t.Error(err)
		}
	})
}

// TestMatcherAgreesWithNaive: the fast path (anchors first, patterns only
// on lines holding one) finds exactly what testing every pattern on every
// line finds, on a corpus of real benign lines with every example mixed in.
func TestMatcherAgreesWithNaive(t *testing.T) {
	c := loadBuiltin(t)
	m := NewMatcher(c)
	path := corpus(t, c, 2<<20, 40)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fast := map[string]int{}
	if _, err := m.Scan(f, "corpus", func(e Event) { fast[e.Sig.ID]++ }); err != nil {
		t.Fatal(err)
	}
	slow := map[string]int{}
	g, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sc := bufio.NewScanner(g)
	sc.Buffer(make([]byte, 1<<20), logline.MaxLine)
	for sc.Scan() {
		e := logline.Parse(sc.Bytes(), nil, logline.Context{})
		for _, s := range c.Sigs {
			if s.Repeat {
				slow[s.ID] += len(s.MatchAll(e.Message))
			} else if _, ok := s.Match(e.Message); ok {
				slow[s.ID]++
			}
		}
	}
	for id, n := range slow {
		if fast[id] != n {
			t.Errorf("%s: matcher found %d, every-pattern-on-every-line %d", id, fast[id], n)
		}
	}
	for id, n := range fast {
		if slow[id] == 0 {
			t.Errorf("%s: matcher found %d the naive scan did not", id, n)
		}
	}
}

// The second line of the old two-line OOM report joins the first when the
// pid matches; with another pid, or alone, it is an incident of its own.
func TestCompletesJoinsTheEventItFollows(t *testing.T) {
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	// ../shared/samples/kernel-7.txt, and the same second line with
	// another pid.
	log := "Apr 15 20:56:15 wordpress-nyc kernel: [ 3454.697831] Out of memory: Kill process 1312 (java) score 497 or sacrifice child\n" +
		"Apr 15 20:56:15 wordpress-nyc kernel: [ 3454.698319] Killed process 1312 (java) total-vm:2133696kB, anon-rss:256140kB, file-rss:0kB\n" +
		"Apr 15 20:56:15 wordpress-nyc kernel: [ 3454.698319] Killed process 1313 (java) total-vm:2133696kB, anon-rss:256140kB, file-rss:0kB\n"
	ins := aggregate(t, c, log, 2024)
	if len(ins) != 2 || ins[0].Sig.ID != "oom-killed-process" || ins[1].Sig.ID != "oom-victim-killed" {
		for _, in := range ins {
			t.Logf("%s %v", in.Sig.ID, in.Fields)
		}
		t.Fatalf("%d incidents, want the kill (completed) and the other pid's line", len(ins))
	}
	if ins[0].Completion == nil || ins[0].Completion.Fields["pid"] != "1312" {
		t.Errorf("the kill was not completed by pid 1312's line: %+v", ins[0].Completion)
	}
	if f := ins[0].Finding("h"); len(f.Evidence.Lines) != 2 || !strings.Contains(f.Evidence.Lines[1].Text, "total-vm:2133696kB") {
		t.Errorf("the completed finding's lines %+v, want both halves", f.Evidence.Lines)
	}
}

// aggregate scans log (with year for lines that lack one) and returns its
// incidents.
func aggregate(t *testing.T, c *Catalogue, log string, year int) []*Incident {
	t.Helper()
	m := NewMatcher(c)
	m.Context = logline.Context{Year: year}
	agg := NewAggregator()
	for _, e := range scanText(t, m, log) {
		agg.Add(e)
	}
	return agg.Incidents()
}
