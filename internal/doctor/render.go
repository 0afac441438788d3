package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/runbook"
)

// JSONSchema names the layout of `doctor --json`; docs/doctor-json.md
// describes it. Fields are only ever added under this name.
const JSONSchema = "hinomi.doctor/v1"

// JSONFinding is a finding as the JSON views print it (`doctor --json`,
// `explain --json`): the finding with its runbook's recovery commands.
type JSONFinding struct {
	finding.Finding
	// Recover are the runbook's recovery commands filled with the evidence.
	Recover []string `json:"recover"`
	// RecoverReady are the steps among them whose every value is known
	// (what the text view prints): no <placeholder> left to choose.
	RecoverReady []string `json:"recover_ready"`
}

type jsonReport struct {
	Schema      string            `json:"schema"`
	Host        string            `json:"host"`
	Taken       time.Time         `json:"taken"`
	Source      string            `json:"source"`
	TookSeconds float64           `json:"took_seconds"`
	Processes   int               `json:"processes"`
	ProcessPass string            `json:"process_pass"`
	PassNote    string            `json:"process_pass_note,omitempty"`
	MinSeverity finding.Severity  `json:"min_severity"`
	Worst       string            `json:"worst"`
	Findings    []JSONFinding     `json:"findings"`
	Headroom    []finding.Figure  `json:"headroom"`
	Blind       []string          `json:"could_not_see"`
	Errors      map[string]string `json:"check_errors"`
}

// WriteJSON writes the diagnosis for scripts.
func WriteJSON(w io.Writer, d *Diagnosis, min finding.Severity, book *runbook.Book) error {
	r := jsonReport{
		Schema: JSONSchema, Host: d.Host, Taken: d.Taken, Source: d.Source,
		TookSeconds: math.Round(d.Took.Seconds()*1000) / 1000, Processes: d.Processes,
		ProcessPass: d.ProcessPass, PassNote: d.ProcessPassNote,
		MinSeverity: min, Worst: "none",
		Headroom: d.Headroom, Blind: d.Blind, Errors: d.Errors,
	}
	if w := d.Worst(); w > 0 {
		r.Worst = w.String()
	}
	if r.Headroom == nil {
		r.Headroom = []finding.Figure{}
	}
	if r.Blind == nil {
		r.Blind = []string{}
	}
	r.Findings = JSONFindings(d.AtLeast(min), book)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// JSONFindings pairs each finding with its recovery commands; never nil.
func JSONFindings(fs []finding.Finding, book *runbook.Book) []JSONFinding {
	out := make([]JSONFinding, 0, len(fs))
	for _, f := range fs {
		all, ready := recoverCommands(book, f)
		out = append(out, JSONFinding{Finding: f, Recover: all, RecoverReady: ready})
	}
	return out
}

// recoverCommands renders the runbook's recovery steps for the finding:
// the commands of every step that fits its case and owner, and those of
// the ready steps (every value known, nothing for a person to decide),
// which the text view shows.
func recoverCommands(book *runbook.Book, f finding.Finding) (all, ready []string) {
	all, ready = []string{}, []string{}
	rb := book.Get(f.Runbook)
	if rb == nil {
		return all, ready
	}
	steps, err := rb.Steps("Recover", f.Evidence.Vars)
	if err != nil {
		return all, ready
	}
	for _, s := range steps {
		all = append(all, s.Lines...)
		if s.Ready {
			ready = append(ready, s.Lines...)
		}
	}
	return all, ready
}

// blindNow reports whether something about the host's present state went
// unseen (not only the previous boot's end), so an all-clear is partial.
func blindNow(blind []string) bool {
	for _, b := range blind {
		if !strings.HasPrefix(b, "how the previous boot ended") && !strings.HasPrefix(b, "pstore:") {
			return true
		}
	}
	return false
}

// TextOptions shape the human view.
type TextOptions struct {
	Min   finding.Severity
	Color bool
	// MaxCommands bounds the recovery commands shown per finding.
	MaxCommands int
	// Location is the time zone of printed times; nil is the local one.
	Location *time.Location
}

var sevColor = map[finding.Severity]string{
	finding.Info: "\x1b[2m", finding.Low: "\x1b[36m", finding.Medium: "\x1b[33m",
	finding.High: "\x1b[31m", finding.Catastrophic: "\x1b[1;41;97m",
}

func (o TextOptions) paint(s string, sev finding.Severity) string {
	if !o.Color {
		return s
	}
	return sevColor[sev] + s + "\x1b[0m"
}

func (o TextOptions) bold(s string) string {
	if !o.Color {
		return s
	}
	return "\x1b[1m" + s + "\x1b[0m"
}

// WriteText writes the diagnosis for a person: grouped by severity, worst
// first; a healthy host gets an all-clear with its headroom.
func WriteText(w io.Writer, d *Diagnosis, o TextOptions, book *runbook.Book) error {
	p := &printer{w: w}
	loc := o.Location
	if loc == nil {
		loc = time.Local
	}
	bold := o.bold
	src := ""
	if d.Source != "live" {
		src = " (snapshot " + d.Source + ")"
	}
	p.f("hinomi doctor: %s%s at %s, %d processes, %.2f s\n", d.Host, src, d.Taken.In(loc).Format("2006-01-02 15:04:05 MST"), d.Processes, d.Took.Seconds())

	shown := d.AtLeast(o.Min)
	if len(shown) == 0 {
		below := len(d.Findings) - len(shown)
		switch {
		case below > 0:
			// Not "all clear": there are findings, only below the bar.
			p.f("\n%s\n", bold(fmt.Sprintf("Nothing at or above %s; %d finding(s) below it (--min-severity info shows them).", o.Min, below)))
		case blindNow(d.Blind):
			p.f("\n%s\n", bold("All clear in what doctor could see: nothing at or above "+o.Min.String()+" (see \"Could not see\" below)."))
		default:
			p.f("\n%s\n", bold("All clear: nothing at or above "+o.Min.String()+"."))
		}
		p.f("\nHeadroom:\n")
		for _, h := range d.Headroom {
			p.f("  %-52s %s\n", h.Name, figure(h))
		}
	} else {
		writeFindings(p, shown, d.Taken, o, book)
		if below := len(d.Findings) - len(shown); below > 0 {
			p.f("\n(%d more finding(s) below %s.)\n", below, o.Min)
		}
	}
	if len(d.Blind) > 0 || len(d.Errors) > 0 {
		p.f("\nCould not see:\n")
		for _, b := range d.Blind {
			p.f("  - %s\n", b)
		}
		// In the order of the checks' names: a map's order would change
		// the text from run to run.
		for _, name := range slices.Sorted(maps.Keys(d.Errors)) {
			p.f("  - check %s failed: %s\n", name, d.Errors[name])
		}
	}
	return p.err
}

// WriteFindings writes findings for a person the way doctor does, grouped
// by severity (fs sorted worst first, see finding.Sort); ages are counted
// to taken. `hinomi explain` prints its diagnoses with it.
func WriteFindings(w io.Writer, fs []finding.Finding, taken time.Time, o TextOptions, book *runbook.Book) error {
	p := &printer{w: w}
	writeFindings(p, fs, taken, o, book)
	return p.err
}

func writeFindings(p *printer, shown []finding.Finding, taken time.Time, o TextOptions, book *runbook.Book) {
	loc := o.Location
	if loc == nil {
		loc = time.Local
	}
	paint, bold := o.paint, o.bold
	var cur finding.Severity = -1
	for _, f := range shown {
		if f.Severity != cur {
			cur = f.Severity
			n := 0
			for _, g := range shown {
				if g.Severity == cur {
					n++
				}
			}
			p.f("\n%s\n", paint(fmt.Sprintf("%s (%d)", strings.ToUpper(cur.String()), n), cur))
		}
		p.f("  %s  %s\n", paint(fmt.Sprintf("%-6s", f.Mode), f.Severity), f.Summary)
		ind := "          "
		if f.Since != nil {
			p.f("%ssince %s (%s ago)\n", ind, f.Since.In(loc).Format("2006-01-02 15:04:05"), ago(taken.Sub(*f.Since)))
		}
		for _, fig := range f.Evidence.Figures {
			p.f("%s%-40s %s\n", ind, fig.Name, figure(fig))
		}
		for i, c := range f.Evidence.Consumers {
			if i == 0 {
				p.f("%stop:\n", ind)
			}
			p.f("%s  %s\n", ind, consumer(c))
		}
		for _, l := range f.Evidence.Lines {
			ts := ""
			if l.Time != nil {
				ts = l.Time.In(loc).Format("2006-01-02 15:04:05") + "  "
			}
			p.f("%s| %s%s\n", ind, ts, clip(l.Text, 160))
		}
		for _, n := range f.Evidence.Notes {
			p.f("%s%s\n", ind, n)
		}
		all, cmds := recoverCommands(book, f)
		limit := o.MaxCommands
		if limit <= 0 {
			limit = 8
		}
		shown := min(len(cmds), limit)
		if shown > 0 {
			p.f("%srecover:\n", ind)
			for _, c := range cmds[:shown] {
				p.f("%s  %s\n", ind, bold(c))
			}
		}
		if more := len(all) - shown; more > 0 {
			p.f("%s(%d more command(s), needing values or a decision of yours, are in the runbook.)\n", ind, more)
		}
		p.f("%srunbook: hinomi runbook %s\n", ind, f.Runbook)
	}
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func figure(f finding.Figure) string {
	v := num(f.Value, f.Unit)
	if f.Limit > 0 {
		return fmt.Sprintf("%s of %s (%.1f%%)", v, num(f.Limit, f.Unit), f.Percent())
	}
	return v
}

func num(v float64, unit string) string {
	switch unit {
	case "bytes":
		return finding.HumanBytes(v)
	case "%":
		return strconv.FormatFloat(v, 'f', 1, 64) + "%"
	case "s":
		return strconv.FormatFloat(v, 'f', 1, 64) + " s"
	}
	if v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return group(int64(v))
}

// group writes 1234567 as 1,234,567.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func consumer(c finding.Consumer) string {
	var b strings.Builder
	b.WriteString(c.Kind + " " + c.Name)
	if c.PID > 0 {
		b.WriteString(" pid " + strconv.Itoa(c.PID))
	}
	if c.UID != nil {
		b.WriteString(" uid " + strconv.Itoa(*c.UID))
	}
	if c.Owner != "" && c.Owner != "host" && c.Kind == "process" {
		b.WriteString(" in " + c.Owner)
	}
	b.WriteString(": " + num(c.Value, c.Unit))
	if c.Limit > 0 {
		b.WriteString(" of " + num(c.Limit, c.Unit))
	}
	return b.String()
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
