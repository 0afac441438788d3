package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/signatures"
	"github.com/hinomi/hinomi/internal/testload"
	"github.com/hinomi/hinomi/internal/wire"
)

// Real lines (the catalogue's examples, from
// https://github.com/pulibrary/princeton_ansible/issues/6612 and the nfs-ok
// signature's).
const (
	nfsDown = "Oct 24 00:11:11 figgy-web-staging1 kernel: nfs: server td-mf-cl2.princeton.edu not responding, still trying"
	nfsOK   = "Oct 24 00:12:40 figgy-web-staging1 kernel: nfs: server td-mf-cl2.princeton.edu OK"
)

func builtinMatcher(t *testing.T) *signatures.Matcher {
	t.Helper()
	cat, err := signatures.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return signatures.NewMatcher(cat)
}

func feed(w *logWatch, m *signatures.Matcher, line string, at time.Time) {
	m.Line([]byte(line), "kernel", func(ev signatures.Event) { w.add(ev, at) })
}

func TestLogWatchFoldsRepeatsAndGoesQuiet(t *testing.T) {
	m := builtinMatcher(t)
	w := newLogWatch()
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	feed(w, m, nfsDown, t0)
	feed(w, m, nfsDown, t0.Add(time.Minute))
	fs := w.findings("figgy", t0.Add(2*time.Minute))
	if len(fs) != 1 {
		t.Fatalf("%d findings; want the two lines folded into one: %+v", len(fs), fs)
	}
	f := fs[0]
	if f.Mode != "FM-C6" || f.Severity != finding.High || f.Subject != "log nfs-not-responding server=td-mf-cl2.princeton.edu" ||
		!strings.Contains(f.Summary, "2 times") || f.Key != "FM-C6/"+f.Subject {
		t.Errorf("finding %s %s %q %q", f.Mode, f.Severity, f.Subject, f.Summary)
	}
	var lines []string
	for _, l := range f.Evidence.Lines {
		lines = append(lines, l.Text)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "nfs: server td-mf-cl2.princeton.edu not responding") {
		t.Errorf("the finding does not carry the matched line: %v", lines)
	}
	// Still open just inside the quiet period, gone after it.
	if n := len(w.findings("figgy", t0.Add(time.Minute+DefaultQuiet-time.Second))); n != 1 {
		t.Errorf("%d findings inside the quiet period; want 1", n)
	}
	if n := len(w.findings("figgy", t0.Add(time.Minute+DefaultQuiet+time.Second))); n != 0 {
		t.Errorf("%d findings after the quiet period; want 0", n)
	}
}

func TestLogWatchResolvingLine(t *testing.T) {
	m := builtinMatcher(t)
	w := newLogWatch()
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	feed(w, m, nfsDown, t0)
	if n := len(w.findings("figgy", t0)); n != 1 {
		t.Fatalf("%d findings; want 1", n)
	}
	feed(w, m, nfsOK, t0.Add(90*time.Second))
	if fs := w.findings("figgy", t0.Add(91*time.Second)); len(fs) != 0 {
		t.Errorf("the server answered again, yet: %+v", fs)
	}
}

func TestLogWatchIsBounded(t *testing.T) {
	m := builtinMatcher(t)
	w := newLogWatch()
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for i := range 3 * maxLogIncidents {
		feed(w, m, strings.Replace(nfsDown, "td-mf-cl2.princeton.edu", fmt.Sprintf("nas%d", i), 1), t0.Add(time.Duration(i)*time.Millisecond))
	}
	fs := w.findings("figgy", t0.Add(time.Second))
	if len(fs) == 0 || len(fs) > maxLogIncidents {
		t.Fatalf("%d findings; want at most %d", len(fs), maxLogIncidents)
	}
	last := fmt.Sprintf("server=nas%d", 3*maxLogIncidents-1)
	found := false
	for _, f := range fs {
		found = found || strings.HasSuffix(f.Subject, last)
	}
	if !found {
		t.Error("the newest incident was dropped instead of the oldest")
	}
}

// TestAgentFollowsLogFiles: a distress line written to a followed file
// becomes a finding within a cycle; after the file is rotated the next
// line is read from the new file; a restarted agent resumes where it
// stopped instead of reading the file again.
func TestAgentFollowsLogFiles(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(logDir, "syslog")
	if err := os.WriteFile(path, []byte("Oct 24 00:10:00 figgy-web-staging1 systemd[1]: Started Session 3.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	start := func() (*Agent, func()) {
		a, err := New(Config{Towers: []string{"http://127.0.0.1:9"}, Token: "tok", Name: "figgy", StateDir: state, Kmsg: "-",
			Interval: 200 * time.Millisecond, LogFiles: []string{filepath.Join(logDir, "sys*")}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = a.Run(ctx); close(done) }()
		return a, func() { stop(); <-done }
	}
	appendLine := func(p, line string) {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	logCount := func(a *Agent) int {
		recs, err := a.towers[0].spool.Peek(10000, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range recs {
			if strings.Contains(string(r.Data), `"kind":"`+wire.KindLog+`"`) && strings.Contains(string(r.Data), "td-mf-cl2") {
				n++
			}
		}
		return n
	}
	poll := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(testload.ReadyTimeout)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, testload.ReadyTimeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	openFinding := func(a *Agent) *finding.Finding {
		var got *finding.Finding
		for _, rec := range spooledFindings(t, a) {
			for i, f := range rec.Open {
				if strings.HasPrefix(f.Subject, "log nfs-not-responding") {
					got = &rec.Open[i]
				}
			}
		}
		return got
	}

	a, stop := start()
	poll("the first diagnosis", func() bool { return len(spooledFindings(t, a)) > 0 })
	poll("the file followed", func() bool { return a.filesFollowed.Load() == 1 })
	appendLine(path, nfsDown)
	poll("a log finding", func() bool { return openFinding(a) != nil })
	if f := openFinding(a); f.Severity != finding.High || f.Mode != "FM-C6" {
		t.Errorf("finding %s %s", f.Mode, f.Severity)
	}

	// Rotation: the old file moves away, a new one takes its name.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendLine(path, nfsDown)
	poll("the line in the rotated-in file", func() bool { return logCount(a) == 2 })
	// syslog.1 matches the glob too, but was read as syslog: another
	// interval passes and it is not followed.
	followed, scans := a.filesFollowed.Load(), a.fileScans.Load()
	poll("the globs matched twice more", func() bool { return a.fileScans.Load() >= scans+2 })
	if n := a.filesFollowed.Load(); n != followed || logCount(a) != 2 {
		t.Errorf("after rotation: %d files followed (was %d), %d log records; want the rotated file skipped and 2 records", n, followed, logCount(a))
	}
	stop()

	// A restart resumes after the last line: nothing is read twice.
	a2, stop2 := start()
	defer stop2()
	poll("the file followed again", func() bool { return a2.filesFollowed.Load() >= 1 })
	appendLine(path, strings.Replace(nfsDown, "td-mf-cl2", "td-mf-cl3", 1))
	poll("the new line after a restart", func() bool {
		recs, _ := a2.towers[0].spool.Peek(10000, 64<<20)
		for _, r := range recs {
			if strings.Contains(string(r.Data), "td-mf-cl3") {
				return true
			}
		}
		return false
	})
	if n := logCount(a2); n != 2 {
		t.Errorf("after a restart the spool holds %d records of the old lines; want the 2 sent before (none read again)", n)
	}
}
