package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/doctor"
	"github.com/hinomi/hinomi/internal/explain"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/runbook"
)

// explainMaxBytes bounds one input: explain reads what a person pasted,
// and a whole log belongs to `hinomi logs scan`, which streams.
const explainMaxBytes = 8 << 20

// explainJSONSchema names the layout of `explain --json`; docs/explain.md
// describes it. Fields are only ever added under this name.
const explainJSONSchema = "hinomi.explain/v1"

// explained is one input and what became of it.
type explained struct {
	in     explain.Input
	format string
	res    explain.Result
	// err is why a recognised input could not be read; unrecognised says
	// no format claimed it.
	err          error
	unrecognised bool
}

func runExplain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("explain", "[flags] [FILE...|-]", `Diagnose what a command printed, or a log, pasted into FILE or standard input (-, or no
FILE): hinomi recognises the command (docker ps -a, docker inspect, docker info, any log …),
reads it with the same parser and rules as doctor's live checks, and prints the findings as
doctor does. Several commands pasted with their shell prompts are explained one by one.
Exit status: 0 nothing at or above --min-severity, 1 findings, 2 could not run or an input
was not recognised.`, stdout, stderr)
	as := fs.String("as", "", "read every input as the format `NAME` instead of recognising it (see --list)")
	asJSON := fs.Bool("json", false, "print JSON (schema "+explainJSONSchema+", see docs/explain.md)")
	list := fs.Bool("list", false, "list the formats explain knows and the command that prints each")
	minSev := fs.String("min-severity", "low", "show findings at or above: info, low, medium, high, catastrophic")
	rbDir := fs.String("runbooks", "", "directory of runbook overrides (default $HINOMI_RUNBOOKS)")
	color := fs.String("color", "auto", "colour the output: auto (on a terminal, unless $NO_COLOR), always, never")
	files, err := fs.parseInterspersed(args)
	if err != nil {
		return err
	}
	formats := explain.All()
	if *list {
		return writeFormats(stdout, formats)
	}
	switch *color {
	case "auto", "always", "never":
	default:
		return fmt.Errorf("explain: --color %q: want auto, always or never", *color)
	}
	min, err := finding.ParseSeverity(*minSev)
	if err != nil {
		return fmt.Errorf("explain: --min-severity: %w", err)
	}
	var forced *explain.Format
	if *as != "" {
		f, ok := explain.Lookup(*as, formats)
		if !ok {
			fmt.Fprintf(stderr, "hinomi explain: --as %q: no such format; these are the formats I know:\n", *as)
			_ = writeFormats(stderr, formats)
			return exitError{doctor.ExitFailed}
		}
		forced = &f
	}
	book, err := runbook.Load(runbookDir(*rbDir))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		files = []string{"-"}
	}

	now := time.Now()
	var all []explained
	var unknownFiles []string
	failed := false
	for _, name := range files {
		raw, err := readInput(ctx, name, stdin, stderr)
		if err != nil {
			if code, ok := interrupted(ctx); ok {
				return exitError{code}
			}
			return err
		}
		ins := explain.Clean(name, raw, now)
		if len(ins) == 0 {
			fmt.Fprintf(stderr, "hinomi explain: %s: nothing to read (empty, or only blank lines and prompts)\n", displayName(name))
			failed = true
			continue
		}
		known := 0
		for _, in := range ins {
			e := explained{in: in}
			f, ok := explain.Format{}, false
			if forced != nil {
				f, ok = *forced, true
			} else {
				f, ok = explain.Recognise(&in, formats)
			}
			if !ok {
				e.unrecognised = true
				all = append(all, e)
				continue
			}
			known++
			e.format = f.Name
			e.res, e.err = explain.Explain(&in, f)
			all = append(all, e)
		}
		if known == 0 {
			failed = true
			unknownFiles = append(unknownFiles, displayName(name))
		}
	}

	useCol := useColor(*color, stdout)
	if *asJSON {
		err = writeExplainJSON(stdout, all, now, min, book)
	} else {
		err = writeExplainText(stdout, all, now, doctor.TextOptions{Min: min, Color: useCol}, book)
	}
	if err != nil {
		return err
	}
	if len(unknownFiles) > 0 {
		// Parts of a paste that other parts explain (a line of prose, an
		// unrelated command) are only marked in the output.
		fmt.Fprintf(stderr, "hinomi explain: %s: not recognised; these are the formats I know:\n", strings.Join(unknownFiles, ", "))
		_ = writeFormats(stderr, formats)
		fmt.Fprintf(stderr, "Paste the command's whole output, header included, or name its format with --as NAME.\n")
	}
	for _, e := range all {
		if e.err != nil {
			failed = true
		}
	}
	if failed {
		return exitError{doctor.ExitFailed}
	}
	for _, e := range all {
		for _, f := range e.res.Findings {
			if f.Severity >= min {
				return exitError{doctor.ExitFindings}
			}
		}
	}
	return nil
}

// readInput reads a file, or standard input for "-", refusing more than
// explainMaxBytes. A read of standard input that does not end (a terminal
// left open) gives way to a signal.
func readInput(ctx context.Context, name string, stdin io.Reader, stderr io.Writer) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		if f, ok := stdin.(*os.File); ok {
			if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
				fmt.Fprintln(stderr, "hinomi explain: reading what you paste; end it with Ctrl-D on a line of its own.")
			}
		}
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("explain: %w", err)
		}
		defer f.Close()
		r = f
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(r, explainMaxBytes+1))
		done <- result{b, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("explain: reading %s: %w", displayName(name), context.Cause(ctx))
	}
	if res.err != nil {
		return nil, fmt.Errorf("explain: reading %s: %w", displayName(name), res.err)
	}
	switch kind := compressed(res.b); kind {
	case "gzip", "zstd":
		return nil, fmt.Errorf("explain: %s is %s-compressed; a compressed log is read by: hinomi logs scan %s", displayName(name), kind, name)
	case "":
	default:
		return nil, fmt.Errorf("explain: %s is %s-compressed; decompress it first", displayName(name), kind)
	}
	if len(res.b) > explainMaxBytes {
		return nil, fmt.Errorf("explain: %s is larger than %d MiB, the most explain reads; for a whole log use: hinomi logs scan %s",
			displayName(name), explainMaxBytes>>20, name)
	}
	return res.b, nil
}

// compressed names the compression of b by its magic bytes, or "".
func compressed(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	case bytes.HasPrefix(b, []byte("BZh")) && len(b) > 4 && b[3] >= '1' && b[3] <= '9' && b[4] == 0x31:
		return "bzip2"
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "xz"
	}
	return ""
}

func displayName(name string) string {
	if name == "-" {
		return "standard input"
	}
	return name
}

func writeFormats(w io.Writer, fs []explain.Format) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range fs {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Name, f.Command)
	}
	return tw.Flush()
}

// what names an input in a heading: its name, the command its prompt
// showed and the host.
func (e explained) what() string {
	s := displayName(e.in.Name)
	if e.in.Command != "" {
		s += " (" + e.in.Command
		if e.in.Host != "" {
			s += " on " + e.in.Host
		}
		s += ")"
	}
	return s
}

func writeExplainText(w io.Writer, all []explained, now time.Time, o doctor.TextOptions, book *runbook.Book) error {
	for i, e := range all {
		if i > 0 {
			fmt.Fprintln(w)
		}
		switch {
		case e.unrecognised:
			fmt.Fprintf(w, "hinomi explain: %s: not recognised.\n", e.what())
			continue
		case e.err != nil:
			fmt.Fprintf(w, "hinomi explain: %s: read as %s, but %v.\n", e.what(), e.format, e.err)
		default:
			fmt.Fprintf(w, "hinomi explain: %s: %s\n", e.what(), e.format)
		}
		var shown []finding.Finding
		for _, f := range e.res.Findings {
			if f.Severity >= o.Min {
				shown = append(shown, f)
			}
		}
		if e.err == nil {
			switch below := len(e.res.Findings) - len(shown); {
			case len(shown) == 0 && below > 0:
				fmt.Fprintf(w, "\nNothing at or above %s; %d finding(s) below it (--min-severity info shows them).\n", o.Min, below)
			case len(shown) == 0:
				fmt.Fprintf(w, "\nNothing wrong in what this shows (nothing at or above %s).\n", o.Min)
			}
		}
		if err := doctor.WriteFindings(w, shown, now, o, book); err != nil {
			return err
		}
		if len(e.res.Notes) > 0 {
			fmt.Fprintf(w, "\nAbout this reading:\n")
			for _, n := range e.res.Notes {
				fmt.Fprintf(w, "  - %s\n", n)
			}
		}
	}
	return nil
}

// explainJSONInput is one input in `explain --json`.
type explainJSONInput struct {
	Name       string               `json:"name"`
	Command    string               `json:"command,omitempty"`
	Host       string               `json:"host,omitempty"`
	Recognised bool                 `json:"recognised"`
	Format     string               `json:"format,omitempty"`
	Error      string               `json:"error,omitempty"`
	Worst      string               `json:"worst"`
	Findings   []doctor.JSONFinding `json:"findings"`
	Notes      []string             `json:"notes"`
}

type explainJSONReport struct {
	Schema      string             `json:"schema"`
	Taken       time.Time          `json:"taken"`
	MinSeverity finding.Severity   `json:"min_severity"`
	Worst       string             `json:"worst"`
	Inputs      []explainJSONInput `json:"inputs"`
}

func writeExplainJSON(w io.Writer, all []explained, now time.Time, min finding.Severity, book *runbook.Book) error {
	r := explainJSONReport{Schema: explainJSONSchema, Taken: now.UTC(), MinSeverity: min, Worst: "none", Inputs: []explainJSONInput{}}
	var worst finding.Severity
	for _, e := range all {
		in := explainJSONInput{
			Name: e.in.Name, Command: e.in.Command, Host: e.in.Host,
			Recognised: !e.unrecognised, Format: e.format, Worst: "none", Notes: e.res.Notes,
		}
		if e.err != nil {
			in.Error = e.err.Error()
		}
		var shown []finding.Finding
		var w finding.Severity
		for _, f := range e.res.Findings {
			w = max(w, f.Severity)
			if f.Severity >= min {
				shown = append(shown, f)
			}
		}
		if w > 0 {
			in.Worst = w.String()
		}
		worst = max(worst, w)
		in.Findings = doctor.JSONFindings(shown, book)
		if in.Notes == nil {
			in.Notes = []string{}
		}
		r.Inputs = append(r.Inputs, in)
	}
	if worst > 0 {
		r.Worst = worst.String()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
