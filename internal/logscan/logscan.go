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
}

// Run scans every input in order.
func Run(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	m := signatures.NewMatcher(o.Catalogue)
	m.Context = o.Context
	agg := signatures.NewAggregator()
	rep := &Report{Host: o.Host}
	keep := func(ev signatures.Event) {
		t := ev.Entry.Time
		if !t.IsZero() && (!o.Since.IsZero() && t.Before(o.Since) || !o.Until.IsZero() && t.After(o.Until)) {
			return
		}
		agg.Add(ev)
	}
	scan := func(name string, r io.Reader) error {
		st, err := m.Scan(r, name, keep)
		rep.Stats.Bytes += st.Bytes
		rep.Stats.Lines += st.Lines
		rep.Stats.Events += st.Events
		rep.Inputs = append(rep.Inputs, name)
		return err
	}
	for _, in := range o.Inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if in == "-" {
			r, err := Decompress(o.Stdin)
			if err != nil {
				return nil, fmt.Errorf("standard input: %w", err)
			}
			if err := scan("-", r); err != nil {
				return nil, fmt.Errorf("standard input: %w", err)
			}
			continue
		}
		if err := scanFile(in, scan); err != nil {
			return nil, err
		}
	}
	if o.Journal != nil {
		if err := scanJournal(ctx, o, scan); err != nil {
			return nil, err
		}
	}
	rep.Incidents = agg.Incidents()
	rep.Took = time.Since(start)
	return rep, nil
}

func scanFile(path string, scan func(string, io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := Decompress(f)
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
		Incidents []jsonIncident `json:"incidents"`
	}{Schema: JSONSchema, Inputs: r.Inputs, Bytes: r.Stats.Bytes, Lines: r.Stats.Lines,
		Seconds: math.Round(r.Took.Seconds()*1000) / 1000, Incidents: []jsonIncident{}}
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
		b.WriteString("\nNo known distress signature found.\n")
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
