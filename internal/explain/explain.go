// Package explain diagnoses what a person pasted: the output of a command
// (`docker service ps --no-trunc`, `kubectl get pods -o json`, `pvecm
// status`, `zpool status`, …) or a log. It recognises which command printed
// the text, parses it with the same parser the live check uses, and returns
// the same findings doctor would. A new format is one file with its Format
// and one line in All (formats.go).
package explain

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// ErrNotRecognised says no format claims the text.
var ErrNotRecognised = errors.New("not recognised")

// Input is one pasted text, cleaned (see Clean) and split into lines.
type Input struct {
	// Name is where the text came from: a file name or "-".
	Name string
	// Text is the cleaned text; Lines is Text split on "\n".
	Text  string
	Lines []string
	// Command is the command line a shell prompt in the paste named
	// ("docker service ps --no-trunc web"), when there was one.
	Command string
	// Host is the host a prompt named ("root@pve1:~#"), when there was one.
	Host string
	// Now is the time the findings are judged at (ages, "since").
	Now time.Time
}

// Format is one kind of text hinomi knows how to read.
type Format struct {
	// Name is the short name `--as` takes: "docker-service-ps".
	Name string
	// Command is what a person runs to print it, shown in the list of
	// known formats: "docker service ps --no-trunc SERVICE".
	Command string
	// Detect says how sure it is that in is this format: 0 is "not this
	// format"; 100 is certain (a header line only this command prints).
	Detect func(in *Input) int
	// Explain parses in and diagnoses it. It returns an error only when
	// the text is this format but cannot be read at all; a partly
	// readable text gives what it can and says what it skipped in Notes.
	Explain func(in *Input) (Result, error)
}

// Result is the diagnosis of one input.
type Result struct {
	// Format is the Name of the format that read the input.
	Format   string            `json:"format"`
	Findings []finding.Finding `json:"findings"`
	// Notes are plain sentences about the reading itself: lines skipped,
	// fields missing, what the text cannot tell.
	Notes []string `json:"notes,omitempty"`
}

// Recognise picks the format of in among fs: the highest Detect score wins;
// a tie goes to the earlier format in fs.
func Recognise(in *Input, fs []Format) (Format, bool) {
	best, bestScore := Format{}, 0
	for _, f := range fs {
		if f.Detect == nil {
			continue
		}
		if s := f.Detect(in); s > bestScore {
			best, bestScore = f, s
		}
	}
	return best, bestScore > 0
}

// Lookup finds a format by name, for `--as`.
func Lookup(name string, fs []Format) (Format, bool) {
	for _, f := range fs {
		if f.Name == name {
			return f, true
		}
	}
	return Format{}, false
}

// Explain reads in as format f and completes its findings as doctor does:
// each names the input's host, has its runbook and its stable key, and
// they are sorted worst first. A format that panics on odd input costs
// only that input: the panic becomes its error.
func Explain(in *Input, f Format) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = Result{Format: f.Name}, fmt.Errorf("%s could not read %s: %v", f.Name, in.Name, r)
		}
	}()
	res, err = f.Explain(in)
	res.Format = f.Name
	if err != nil {
		return res, err
	}
	for i := range res.Findings {
		g := &res.Findings[i]
		if in.Host != "" || g.Host == "" {
			g.Host = in.Host
		}
		if g.Runbook == "" {
			g.Runbook = g.Mode
		}
		if g.Key == "" {
			g.Key = finding.MakeKey(g.Mode, g.Subject)
		}
	}
	finding.Sort(res.Findings)
	return res, nil
}

// Names lists the formats' names, sorted.
func Names(fs []Format) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Name)
	}
	sort.Strings(out)
	return out
}
