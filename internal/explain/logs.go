package explain

import (
	"fmt"
	"sync"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/logline"
	"github.com/hinomi/hinomi/internal/signatures"
)

// logs reads any text with log lines (syslog, journalctl, dmesg, kmsg,
// JSON logs …) through the signature engine, and reports what it finds as
// doctor reports the kernel log: one finding per incident.
var logs = Format{
	Name:    "log",
	Command: "journalctl -b, dmesg -T, or any log file",
	Detect:  detectLogs,
	Explain: explainLogs,
}

// builtinMatcher compiles the built-in signature catalogue once.
var builtinMatcher = sync.OnceValues(func() (*signatures.Matcher, error) {
	cat, err := signatures.Builtin()
	if err != nil {
		return nil, err
	}
	return signatures.NewMatcher(cat), nil
})

// logLines counts the lines that read as log lines: with a time, an
// uptime or a program name.
func logLines(in *Input) int {
	n := 0
	var before []byte
	for _, l := range in.Lines {
		b := []byte(l)
		e := logline.Parse(b, before, logline.Context{Now: in.Now})
		if e.Format != logline.Plain || e.Source != "" {
			n++
		}
		before = b
	}
	return n
}

func detectLogs(in *Input) int {
	n := logLines(in)
	switch {
	case n == 0 && distressIn(in):
		// Lines without a time or a program (a job's output, a tool's
		// error pasted alone) that a signature knows are a log too.
		return 5
	case n == 0:
		return 0
	case n*2 >= len(in.Lines):
		return 20
	}
	return 10
}

// distressIn reports whether a signature matches a line of in.
func distressIn(in *Input) bool {
	m, err := builtinMatcher()
	if err != nil {
		return false
	}
	found := false
	for _, l := range in.Lines {
		m.Line([]byte(l), "paste", func(signatures.Event) { found = true })
		if found {
			return true
		}
	}
	return false
}

func explainLogs(in *Input) (Result, error) {
	m, err := builtinMatcher()
	if err != nil {
		return Result{}, err
	}
	// The matcher completes dates without a year from its context; a copy
	// keeps the shared one untouched.
	mm := *m
	mm.Context = logline.Context{Now: in.Now}
	fs := checks.LogFindings(&mm, in.Host, in.Name, []byte(in.Text), "")
	res := Result{Findings: fs}
	res.Notes = append(res.Notes, fmt.Sprintf("Read %d lines, %d of them log lines; %d known signatures matched.", len(in.Lines), logLines(in), len(fs)))
	return res, nil
}
