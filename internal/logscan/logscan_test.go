package logscan

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/logline"
	"github.com/hinomi/hinomi/internal/signatures"
)

var update = flag.Bool("update", false, "rewrite the golden timelines")

func catalogue(t *testing.T) *signatures.Catalogue {
	t.Helper()
	c, err := signatures.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t *testing.T, o Options) *Report {
	t.Helper()
	if o.Catalogue == nil {
		o.Catalogue = catalogue(t)
	}
	o.Context = logline.Context{Year: 2024, Location: time.UTC}
	r, err := Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	r.Took = 0
	return r
}

// TestTimelines scans real logs (the project's samples and a corosync
// excerpt of a Proxmox cluster losing quorum) and compares the timeline with its golden file
// (testdata/NAME.timeline). Rewrite them with -update and read the diff.
func TestTimelines(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := run(t, Options{Inputs: []string{f}})
			if len(r.Incidents) == 0 {
				t.Errorf("no incident found in %s", f)
			}
			var got bytes.Buffer
			if err := WriteText(&got, r, time.UTC); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f, ".txt") + ".timeline"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got.String() != string(want) {
				t.Errorf("timeline of %s changed:\n%s", f, got.String())
			}
		})
	}
}

// TestCompressedAndStdin: gzip, zstd and standard input give the same
// incidents as the plain file.
func TestCompressedAndStdin(t *testing.T) {
	src := "testdata/pve-corosync-quorum-loss.txt"
	plain, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	zst, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	enc := zst.EncodeAll(plain, nil)
	if err := os.WriteFile(filepath.Join(dir, "log.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log.zst"), enc, 0o644); err != nil {
		t.Fatal(err)
	}
	summary := func(r *Report) string {
		var b strings.Builder
		for _, in := range r.Incidents {
			b.WriteString(in.Sig.ID + " " + in.Subject() + " " + string(rune('0'+in.Count%10)) + "\n")
		}
		return b.String()
	}
	want := summary(run(t, Options{Inputs: []string{src}}))
	for _, o := range []Options{
		{Inputs: []string{filepath.Join(dir, "log.gz")}},
		{Inputs: []string{filepath.Join(dir, "log.zst")}},
		{Inputs: []string{"-"}, Stdin: bytes.NewReader(plain)},
		{Inputs: []string{"-"}, Stdin: bytes.NewReader(gz.Bytes())},
	} {
		r := run(t, o)
		if got := summary(r); got != want {
			t.Errorf("%v: incidents\n%s\nwant\n%s", o.Inputs, got, want)
		}
		if r.Stats.Bytes != int64(len(plain)) {
			t.Errorf("%v: %d bytes scanned, want %d", o.Inputs, r.Stats.Bytes, len(plain))
		}
	}
}

func TestJSONReport(t *testing.T) {
	r := run(t, Options{Inputs: []string{"testdata/kernel-7.txt"}})
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema    string `json:"schema"`
		Incidents []struct {
			Signature string `json:"signature"`
			Mode      string `json:"mode"`
			Count     int    `json:"count"`
			Runbook   string `json:"runbook"`
			First     struct {
				Input string `json:"input"`
				Line  int    `json:"line"`
			} `json:"first"`
		} `json:"incidents"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if doc.Schema != JSONSchema || len(doc.Incidents) == 0 {
		t.Fatalf("report %+v", doc)
	}
	for _, in := range doc.Incidents {
		if in.Signature == "" || in.Mode == "" || in.Runbook == "" || in.Count < 1 || in.First.Line < 1 {
			t.Errorf("incident %+v", in)
		}
	}
}

func TestSinceUntil(t *testing.T) {
	all := run(t, Options{Inputs: []string{"testdata/kernel-7.txt"}})
	none := run(t, Options{Inputs: []string{"testdata/kernel-7.txt"}, Since: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	withTime := 0
	for _, in := range all.Incidents {
		if !in.First.Entry.Time.IsZero() {
			withTime++
		}
	}
	if withTime == 0 {
		t.Fatal("sample has no dated incident")
	}
	if len(none.Incidents) != len(all.Incidents)-withTime {
		t.Errorf("--since 2030 kept %d of %d incidents (%d dated)", len(none.Incidents), len(all.Incidents), withTime)
	}
}

func TestMissingInput(t *testing.T) {
	_, err := Run(t.Context(), Options{Inputs: []string{filepath.Join(t.TempDir(), "nope.log")}, Catalogue: catalogue(t)})
	if err == nil || !strings.Contains(err.Error(), "nope.log") {
		t.Errorf("err %v, want one naming the file", err)
	}
}

// A journal that yields nothing (no journald, a volatile journal without
// the previous boot) is an error, not an all-clear.
func TestEmptyJournalIsNotAllClear(t *testing.T) {
	cat, err := signatures.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{Journal: []string{"-b", "-1"}, JournalTool: "true", Catalogue: cat})
	if err == nil || !strings.Contains(err.Error(), "gave no lines") {
		t.Errorf("empty journal: %v, want an error saying nothing was scanned", err)
	}
	// echo prints its arguments: one line, scanned, no error.
	rep, err := Run(context.Background(), Options{Journal: []string{"-b"}, JournalTool: "echo", Catalogue: cat})
	if err != nil || rep.Stats.Lines != 1 {
		t.Errorf("a journal with one line: %+v, %v", rep, err)
	}
}

// TestInterruptedScan: a scan of input that never ends (a pipe whose
// writer stays open) stops when its context is cancelled, within a
// second, and reports what it had read with how much that was.
func TestInterruptedScan(t *testing.T) {
	log, err := os.ReadFile("testdata/kernel-10.txt")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		input string
		feed  func(t *testing.T) (stdin io.Reader, write func([]byte), closeAll func())
	}{
		{"stdin pipe", "-", func(t *testing.T) (io.Reader, func([]byte), func()) {
			r, w := io.Pipe()
			// io.Pipe's Write returns once the scan has read every byte.
			return r, func(b []byte) { w.Write(b) }, func() { w.Close() }
		}},
		{"FIFO", fifo, func(t *testing.T) (io.Reader, func([]byte), func()) {
			// O_RDWR: the test holds the FIFO open without waiting for
			// the scan to open it.
			w, err := os.OpenFile(fifo, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			return nil, func(b []byte) {
				if _, err := w.Write(b); err != nil {
					t.Fatal(err)
				}
				waitDrained(t, w)
			}, func() { w.Close() }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdin, write, closeAll := tc.feed(t)
			defer closeAll()
			ctx, cancel := context.WithCancelCause(t.Context())
			type result struct {
				r   *Report
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := Run(ctx, Options{Inputs: []string{tc.input}, Stdin: stdin, Catalogue: catalogue(t),
					Context: logline.Context{Year: 2024, Location: time.UTC}})
				done <- result{r, err}
			}()
			write(log)
			stopped := time.Now()
			cancel(errors.New("SIGINT"))
			var res result
			select {
			case res = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the scan did not stop within 5 s of its cancellation")
			}
			if took := time.Since(stopped); took > time.Second {
				t.Errorf("the scan stopped %s after its cancellation, want within 1 s", took)
			}
			if res.err != nil {
				t.Fatalf("an interrupted scan returns its report, got %v", res.err)
			}
			r := res.r
			if r.Interrupted == nil || r.Interrupted.Error() != "SIGINT" {
				t.Errorf("Interrupted = %v, want SIGINT", r.Interrupted)
			}
			if r.Stats.Lines != 8 || r.Stats.Bytes != int64(len(log)) {
				t.Errorf("read %d lines, %d bytes; want 8, %d", r.Stats.Lines, r.Stats.Bytes, len(log))
			}
			if len(r.Incidents) != 1 || r.Incidents[0].Sig.Mode != "FM-B4" || r.Incidents[0].Count != 2 {
				t.Fatalf("incidents %+v, want the conntrack table full twice", r.Incidents)
			}
			var out bytes.Buffer
			if err := WriteText(&out, r, time.UTC); err != nil {
				t.Fatal(err)
			}
			want := "INTERRUPTED (SIGINT) while reading " + tc.input + ", after 8 lines (444 B) in all: the report covers only what was read."
			if !strings.Contains(out.String(), want) {
				t.Errorf("report does not say %q:\n%s", want, out.String())
			}
		})
	}
}

// waitDrained polls, with a deadline, until the pipe behind f holds no
// unread byte: the scan has read everything written.
func waitDrained(t *testing.T, f *os.File) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still unread after 10 s", n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestInterruptedJournal: journalctl that keeps its output open (a stand-in
// that prints a real log, then execs sleep) is stopped with the scan, and
// the lines it printed are in the report.
func TestInterruptedJournal(t *testing.T) {
	dir := t.TempDir()
	log, err := filepath.Abs("testdata/kernel-10.txt")
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "pid")
	tool := filepath.Join(dir, "journalctl")
	script := "#!/bin/sh\ncat '" + log + "'\necho $$ > '" + marker + ".tmp'\nmv '" + marker + ".tmp' '" + marker + "'\nexec sleep 1000\n"
	if err := os.WriteFile(tool, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	done := make(chan *Report, 1)
	go func() {
		r, err := Run(ctx, Options{Journal: []string{}, JournalTool: tool, Catalogue: catalogue(t),
			Context: logline.Context{Year: 2024, Location: time.UTC}})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(marker)
		if err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the journal stand-in did not start within 10 s")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	stopped := time.Now()
	cancel(errors.New("SIGTERM"))
	var r *Report
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the journal scan did not stop within 5 s")
	}
	if took := time.Since(stopped); took > time.Second {
		t.Errorf("stopped %s after the cancellation, want within 1 s", took)
	}
	if r == nil || r.Interrupted == nil || len(r.Incidents) != 1 || r.Stats.Lines != 8 {
		t.Fatalf("report %+v, want the 8 lines and the conntrack incident, interrupted", r)
	}
	// The child is killed and reaped, not left behind.
	for syscall.Kill(pid, 0) == nil {
		if time.Since(stopped) > 5*time.Second {
			t.Fatalf("journalctl (pid %d) still runs 5 s after the scan stopped", pid)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}
