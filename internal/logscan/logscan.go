// Package logscan is `hinomi logs scan`: offline triage of log files, a
// pipe or the journal. It opens the inputs (plain, gzip, zstd), runs the
// signature matcher over them and renders the incidents as a timeline.
package logscan

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/logline"
	"github.com/hinomi/hinomi/internal/signatures"
)

// Options select what to scan.
type Options struct {
	// Inputs are file paths; "-" is standard input.
	Inputs []string
	Stdin  io.Reader
	// Journal, when set, scans `journalctl` output with these extra
	// arguments (e.g. "-b", "-1").
	Journal     []string
	Since       time.Time
	Until       time.Time
	Catalogue   *signatures.Catalogue
	Context     logline.Context
	Host        string
	JournalTool string // default "journalctl"
}

// Report is the result of a scan.
type Report struct {
	Inputs    []string
	Stats     signatures.Stats
	Took      time.Duration
	Incidents []*signatures.Incident
	Host      string
	// Interrupted, when set, is why the scan stopped before the end of
	// its inputs (ctx's cause, such as the signal): the report covers
	// what was read until then, which Stats counts.
	Interrupted error
}

// grace is how long a stopped scan may take to finish the read it is in
// before the report is made from what it has: a read of a pipe that
// stays open never returns.
const grace = 400 * time.Millisecond

// Run scans every input in order. When ctx is done before the end, Run
// returns within grace a report of what was read so far, with Interrupted
// set, and no error.
func Run(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	m := signatures.NewMatcher(o.Catalogue)
	m.Context = o.Context
	// The scan runs in its own goroutine so that a read that does not
	// return (standard input kept open) cannot hold up the report; mu
	// guards what it shares with the report.
	var mu sync.Mutex
	agg := signatures.NewAggregator()
	rep := &Report{Host: o.Host}
	stopped := false
	var reading counter // the input being read
	keep := func(ev signatures.Event) {
		t := ev.Entry.Time
		if !t.IsZero() && (!o.Since.IsZero() && t.Before(o.Since) || !o.Until.IsZero() && t.After(o.Until)) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			agg.Add(ev)
		}
	}
	begin := func(name string) error {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return context.Cause(ctx)
		}
		rep.Inputs = append(rep.Inputs, name)
		reading.reset()
		return nil
	}
	scan := func(name string, r io.Reader) error {
		st, err := m.Scan(reading.wrap(r), name, keep)
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			rep.Stats.Bytes += st.Bytes
			rep.Stats.Lines += st.Lines
			rep.Stats.Events += st.Events
			reading.reset()
		}
		return err
	}
	done := make(chan error, 1)
	go func() { done <- scanAll(ctx, o, begin, scan) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		t := time.NewTimer(grace)
		select {
		case err = <-done:
		case <-t.C:
		}
		t.Stop()
	}
	mu.Lock()
	defer mu.Unlock()
	stopped = true
	if ctx.Err() != nil {
		// Whatever the scan's own error, it is the stop's doing.
		rep.Interrupted = context.Cause(ctx)
		rep.Stats.Bytes += reading.bytes.Load()
		rep.Stats.Lines += reading.lines.Load()
	} else if err != nil {
		return nil, err
	}
	rep.Incidents = agg.Incidents()
	rep.Took = time.Since(start)
	return rep, nil
}

// scanAll scans the inputs in order; begin is called as each starts.
func scanAll(ctx context.Context, o Options, begin func(string) error, scan func(string, io.Reader) error) error {
	for _, in := range o.Inputs {
		if err := begin(in); err != nil {
			return err
		}
		if in == "-" {
			r, err := Decompress(untilDone(ctx, o.Stdin))
			if err != nil {
				return fmt.Errorf("standard input: %w", err)
			}
			if err := scan("-", r); err != nil {
				return fmt.Errorf("standard input: %w", err)
			}
			continue
		}
		if err := scanFile(ctx, in, scan); err != nil {
			return err
		}
	}
	if o.Journal != nil {
		if err := begin("journal"); err != nil {
			return err
		}
		if err := scanJournal(ctx, o, scan); err != nil {
			return err
		}
	}
	return nil
}

// counter counts what is read of one input, for the report of a scan
// stopped midway.
type counter struct {
	bytes, lines atomic.Int64
}

func (c *counter) reset() { c.bytes.Store(0); c.lines.Store(0) }

// wrap counts what is read through r (after decompression).
func (c *counter) wrap(r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		c.bytes.Add(int64(n))
		c.lines.Add(int64(bytes.Count(p[:n], []byte{'\n'})))
		return n, err
	})
}

// untilDone ends the raw input r with ctx's cause once ctx is done, so that
// a long scan stops at its next read; what the decompressor has buffered
// by then is still scanned.
func untilDone(ctx context.Context, r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		if ctx.Err() != nil {
			return 0, context.Cause(ctx)
		}
		return r.Read(p)
	})
}

func scanFile(ctx context.Context, path string, scan func(string, io.Reader) error) error {
	// Opening a FIFO waits for a writer: not beyond ctx.
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.Open(path)
		ch <- opened{f, err}
	}()
	var f *os.File
	select {
	case o := <-ch:
		if o.err != nil {
			return o.err
		}
		f = o.f
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.f != nil {
				o.f.Close()
			}
		}()
		return context.Cause(ctx)
	}
	defer f.Close()
	// A pipe's pending read returns when the file is closed.
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	r, err := Decompress(untilDone(ctx, f))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := scan(path, r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Decompress returns r, or a gzip or zstd reader over it when the data
// starts with their magic bytes.
func Decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return br, nil
}

func scanJournal(ctx context.Context, o Options, scan func(string, io.Reader) error) error {
	tool := o.JournalTool
	if tool == "" {
		tool = "journalctl"
	}
	args := append([]string{"-q", "--no-pager", "-o", "short-iso"}, o.Journal...)
	if !o.Since.IsZero() {
		args = append(args, "--since", o.Since.Local().Format("2006-01-02 15:04:05"))
	}
	if !o.Until.IsZero() {
		args = append(args, "--until", o.Until.Local().Format("2006-01-02 15:04:05"))
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.WaitDelay = time.Second // a child holding the pipe does not hold up the stop
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	var lines int64
	scanErr := scan("journal", countLines(out, &lines))
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("journal: %s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if scanErr == nil && lines == 0 {
		// No journal (no journald, or a volatile one without that boot)
		// and an empty window look alike: either way nothing was read,
		// which must not pass for an all-clear.
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "no journal files, or no entries in that window"
		}
		return fmt.Errorf("journal: %s %s gave no lines (%s): nothing was scanned", tool, strings.Join(args, " "), msg)
	}
	return scanErr
}

// countLines counts the newlines read through it.
func countLines(r io.Reader, n *int64) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		k, err := r.Read(p)
		*n += int64(bytes.Count(p[:k], []byte{'\n'}))
		return k, err
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// JSONSchema names the layout of `logs scan --json`.
const JSONSchema = "hinomi.logscan/v1"

type jsonIncident struct {
	Signature string            `json:"signature"`
	Title     string            `json:"title"`
	Fields    map[string]string `json:"fields"`
	Count     int               `json:"count"`
	First     jsonOccurrence    `json:"first"`
	Last      jsonOccurrence    `json:"last"`
	Resolved  *jsonOccurrence   `json:"resolved,omitempty"`
	Seconds   float64           `json:"duration_seconds"`
	Trace     []string          `json:"trace,omitempty"`
	finding.Finding
}

type jsonOccurrence struct {
	Time          *time.Time `json:"time,omitempty"`
	UptimeSeconds *float64   `json:"uptime_seconds,omitempty"`
	Input         string     `json:"input"`
	Line          int64      `json:"line"`
	Text          string     `json:"text"`
}

func occurrence(ev signatures.Event) jsonOccurrence {
	o := jsonOccurrence{Input: ev.Input, Line: ev.LineNo, Text: ev.Line}
	if t := ev.Entry.Time; !t.IsZero() {
		o.Time = &t
	}
	if ev.Entry.HasUptime {
		s := ev.Entry.Uptime.Seconds()
		o.UptimeSeconds = &s
	}
	return o
}

// hostOf is the host an incident is about: the one its lines name, else
// the host that scanned them.
func (r *Report) hostOf(in *signatures.Incident) string {
	if h := in.Host(); h != "" {
		return h
	}
	return r.Host
}

// WriteJSON writes the report for scripts.
func WriteJSON(w io.Writer, r *Report) error {
	out := struct {
		Schema    string         `json:"schema"`
		Inputs    []string       `json:"inputs"`
		Bytes     int64          `json:"bytes"`
		Lines     int64          `json:"lines"`
		Seconds   float64        `json:"took_seconds"`
		Stopped   string         `json:"interrupted,omitempty"`
		Incidents []jsonIncident `json:"incidents"`
	}{Schema: JSONSchema, Inputs: r.Inputs, Bytes: r.Stats.Bytes, Lines: r.Stats.Lines,
		Seconds: math.Round(r.Took.Seconds()*1000) / 1000, Incidents: []jsonIncident{}}
	if r.Interrupted != nil {
		out.Stopped = r.Interrupted.Error()
	}
	for _, in := range r.Incidents {
		ji := jsonIncident{
			Signature: in.Sig.ID, Title: in.Sig.Title, Fields: in.Fields, Count: in.Count,
			First: occurrence(in.First), Last: occurrence(in.Last), Seconds: in.Duration().Seconds(),
			Trace: in.First.Trace, Finding: in.Finding(r.hostOf(in)),
		}
		if in.Ended != nil {
			o := occurrence(*in.Ended)
			ji.Resolved = &o
		}
		out.Incidents = append(out.Incidents, ji)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteText writes the incidents as a timeline.
func WriteText(w io.Writer, r *Report, loc *time.Location) error {
	if loc == nil {
		loc = time.Local
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hinomi logs scan: %s, %d lines (%s) in %.2f s: %d incident(s)\n",
		strings.Join(r.Inputs, ", "), r.Stats.Lines, finding.HumanBytes(float64(r.Stats.Bytes)), r.Took.Seconds(), len(r.Incidents))
	if r.Interrupted != nil {
		at := "before reading any input"
		if len(r.Inputs) > 0 {
			at = "while reading " + r.Inputs[len(r.Inputs)-1]
		}
		fmt.Fprintf(&b, "INTERRUPTED (%v) %s, after %d lines (%s) in all: the report covers only what was read.\n",
			r.Interrupted, at, r.Stats.Lines, finding.HumanBytes(float64(r.Stats.Bytes)))
	}
	if len(r.Incidents) > 3 {
		writeSummary(&b, r)
	}
	worst := map[finding.Severity]int{}
	for _, in := range r.Incidents {
		worst[in.Sig.Severity]++
		f := in.Finding(r.hostOf(in))
		fmt.Fprintf(&b, "\n%s  %-12s %-6s %s\n", when(in.First, loc), strings.ToUpper(in.Sig.Severity.String()), in.Sig.Mode, f.Summary)
		const ind = "                        "
		for _, l := range f.Evidence.Lines {
			fmt.Fprintf(&b, "%s| %s\n", ind, clip(l.Text, 200))
		}
		fmt.Fprintf(&b, "%sat %s:%d", ind, in.First.Input, in.First.LineNo)
		if in.Count > 1 {
			fmt.Fprintf(&b, ", last %s:%d", in.Last.Input, in.Last.LineNo)
		}
		if h := in.Host(); h != "" && h != r.Host {
			fmt.Fprintf(&b, " (host %s)", h)
		}
		fmt.Fprintf(&b, "; runbook: hinomi runbook %s\n", in.Sig.Mode)
	}
	if len(r.Incidents) == 0 {
		if r.Interrupted != nil {
			b.WriteString("\nNo known distress signature found in what was read.\n")
		} else {
			b.WriteString("\nNo known distress signature found.\n")
		}
	} else {
		var sevs []finding.Severity
		for s := range worst {
			sevs = append(sevs, s)
		}
		sort.Slice(sevs, func(i, j int) bool { return sevs[i] > sevs[j] })
		var parts []string
		for _, s := range sevs {
			parts = append(parts, fmt.Sprintf("%d %s", worst[s], s))
		}
		fmt.Fprintf(&b, "\n%s.\n", strings.Join(parts, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeSummary is the short version first: one line per failure mode,
// worst first, with its runbook.
func writeSummary(b *strings.Builder, r *Report) {
	type modeSum struct {
		mode   string
		worst  finding.Severity
		n      int
		titles []string
	}
	byMode := map[string]*modeSum{}
	var order []*modeSum
	for _, in := range r.Incidents {
		m := byMode[in.Sig.Mode]
		if m == nil {
			m = &modeSum{mode: in.Sig.Mode}
			byMode[in.Sig.Mode] = m
			order = append(order, m)
		}
		m.n++
		m.worst = max(m.worst, in.Sig.Severity)
		if !slices.Contains(m.titles, in.Sig.Title) && len(m.titles) < 4 {
			m.titles = append(m.titles, in.Sig.Title)
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].worst > order[j].worst })
	b.WriteString("\nIn short:\n")
	for _, m := range order {
		fmt.Fprintf(b, "  %-12s %-6s %d incident(s): %s (hinomi runbook %s)\n", strings.ToUpper(m.worst.String()), m.mode, m.n, strings.Join(m.titles, "; "), m.mode)
	}
}

func when(ev signatures.Event, loc *time.Location) string {
	if t := ev.Entry.Time; !t.IsZero() {
		return t.In(loc).Format("2006-01-02 15:04:05")
	}
	if ev.Entry.HasUptime {
		return fmt.Sprintf("%19s", fmt.Sprintf("+%.3fs after boot", ev.Entry.Uptime.Seconds()))
	}
	return fmt.Sprintf("%19s", "(no time)")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
