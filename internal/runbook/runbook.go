// Package runbook holds hinomi's runbooks: one markdown file per failure
// mode, embedded in the binary and overridable from a directory, each with
// a small header (id, title, severity) and the sections "What it means",
// "Confirm" and "Recover". Bodies are text/templates filled with a
// finding's evidence: {{v "pid" "<pid>"}} prints the real pid when the
// finding has one and the placeholder otherwise; inside a code block the
// value is shell-quoted, so that a mount point with a space stays one word
// of the command. Steps says which commands fit a finding and are ready
// to run.
package runbook

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/hinomi/hinomi/internal/finding"
)

//go:embed runbooks/FM-*.md
var embedded embed.FS

// Runbook is one parsed runbook.
type Runbook struct {
	ID       string
	Title    string
	Severity finding.Severity
	// Source is "built-in" or the override file's path.
	Source string
	body   string
	tmpl   *template.Template
}

// Book is the set of runbooks in use: the built-in ones, with a user's
// directory laid over them.
type Book struct {
	byID map[string]*Runbook
}

// Load reads the built-in runbooks and then overrideDir (if not empty),
// whose files replace built-in ones with the same ID or add new ones.
func Load(overrideDir string) (*Book, error) {
	b := &Book{byID: map[string]*Runbook{}}
	ents, err := fs.ReadDir(embedded, "runbooks")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		data, err := fs.ReadFile(embedded, "runbooks/"+e.Name())
		if err != nil {
			return nil, err
		}
		rb, err := Parse(data, "built-in")
		if err != nil {
			return nil, fmt.Errorf("built-in runbook %s: %w", e.Name(), err)
		}
		b.byID[rb.ID] = rb
	}
	if overrideDir == "" {
		return b, nil
	}
	files, err := filepath.Glob(filepath.Join(overrideDir, "*.md"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(overrideDir); err != nil {
		return nil, fmt.Errorf("runbook directory: %w", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		rb, err := Parse(data, f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		b.byID[rb.ID] = rb
	}
	return b, nil
}

// Parse reads one runbook file.
func Parse(data []byte, source string) (*Runbook, error) {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	rest, ok := strings.CutPrefix(s, "---\n")
	if !ok {
		return nil, errors.New("runbook must start with a '---' header")
	}
	head, body, ok := strings.Cut(rest, "\n---\n")
	if !ok {
		return nil, errors.New("runbook header is not closed with '---'")
	}
	rb := &Runbook{Source: source, body: strings.TrimLeft(body, "\n")}
	for _, line := range strings.Split(head, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "id":
			rb.ID = v
		case "title":
			rb.Title = v
		case "severity":
			sev, err := finding.ParseSeverity(v)
			if err != nil {
				return nil, err
			}
			rb.Severity = sev
		}
	}
	if rb.ID == "" || rb.Title == "" {
		return nil, errors.New("runbook header needs id and title")
	}
	t, err := template.New(rb.ID).Option("missingkey=zero").Funcs(funcs(nil, false)).Parse(shellValues(rb.body))
	if err != nil {
		return nil, fmt.Errorf("runbook %s: %w", rb.ID, err)
	}
	rb.tmpl = t
	return rb, nil
}

// Get returns the runbook with id, or nil.
func (b *Book) Get(id string) *Runbook { return b.byID[strings.ToUpper(id)] }

// All returns every runbook ordered by ID (FM-A1, FM-A2, …, FM-B1, …).
func (b *Book) All() []*Runbook {
	out := make([]*Runbook, 0, len(b.byID))
	for _, rb := range b.byID {
		out = append(out, rb)
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out
}

// idLess orders FM-D2 before FM-D10.
func idLess(a, b string) bool {
	pa, na := splitID(a)
	pb, nb := splitID(b)
	if pa != pb {
		return pa < pb
	}
	if na != nb {
		return na < nb
	}
	return a < b
}

func splitID(id string) (string, int) {
	i := len(id)
	for i > 0 && id[i-1] >= '0' && id[i-1] <= '9' {
		i--
	}
	n := 0
	for _, c := range id[i:] {
		n = n*10 + int(c-'0')
	}
	return id[:i], n
}

// Render fills the runbook with vars (a finding's Evidence.Vars; nil leaves
// the placeholders). Steps that name a case other than the finding's (see
// Steps) are left out; steps for a case not known are kept.
func (rb *Runbook) Render(vars map[string]string) (string, error) {
	text, err := rb.render(vars, false)
	if err != nil {
		return "", err
	}
	var out []string
	skip, in := false, false
	for _, line := range strings.Split(text, "\n") {
		if info, ok := fence(line); ok {
			if !in {
				skip = parseInfo(info).mismatch(vars)
			}
			in = !in
			if skip {
				if !in {
					skip = false
				}
				continue
			}
		} else if skip {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n"), nil
}

func (rb *Runbook) render(vars map[string]string, mark bool) (string, error) {
	t, err := rb.tmpl.Clone()
	if err != nil {
		return "", err
	}
	t.Funcs(funcs(vars, mark))
	var buf bytes.Buffer
	if err := t.Execute(&buf, nil); err != nil {
		return "", fmt.Errorf("runbook %s: %w", rb.ID, err)
	}
	return buf.String(), nil
}

// Section returns the rendered text of one "## " section (e.g. "Recover").
func (rb *Runbook) Section(name string, vars map[string]string) (string, error) {
	all, err := rb.Render(vars)
	if err != nil {
		return "", err
	}
	return section(all, name), nil
}

func section(md, name string) string {
	var out []string
	in := false
	for _, line := range strings.Split(md, "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			in = strings.EqualFold(strings.TrimSpace(h), name)
			continue
		}
		if in {
			out = append(out, line)
		}
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

// Commands returns the shell commands of a section: the lines of its
// fenced code blocks.
func Commands(sectionText string) []string {
	var out []string
	for _, b := range CommandBlocks(sectionText) {
		out = append(out, b...)
	}
	return out
}

// CommandBlocks returns the section's fenced code blocks, each as its
// non-empty lines: one block is one step, whose lines belong together.
func CommandBlocks(sectionText string) [][]string {
	var out [][]string
	var cur []string
	in := false
	for _, line := range strings.Split(sectionText, "\n") {
		if _, ok := fence(line); ok {
			if in && len(cur) > 0 {
				out = append(out, cur)
			}
			in, cur = !in, nil
			continue
		}
		if in && strings.TrimSpace(line) != "" {
			cur = append(cur, line)
		}
	}
	return out
}

// fence reports whether line opens or closes a fenced code block, and
// returns what follows the backticks (the info string).
func fence(line string) (string, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "```")
	return strings.TrimSpace(rest), ok
}
