package explain

import (
	"fmt"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/swarm"
)

// swarmServicePS reads `docker service ps [--no-trunc] SERVICE`: the tasks
// of a service, with each rejected or failed attempt's error. Without
// --no-trunc the error is cut at about 30 characters; the diagnosis says
// so and gives the command that prints it whole.
var swarmServicePS = func() Format {
	parse := func(in *Input) (*swarm.State, swarm.Parsed, error) { return swarm.ParseServicePS(in.Text, in.Now) }
	f := swarmFormat("docker-service-ps", "docker service ps --no-trunc SERVICE", "DESIRED STATE", "CURRENT STATE", parse)
	f.Explain = func(in *Input) (Result, error) {
		st, p, err := parse(in)
		if err != nil {
			return Result{}, err
		}
		if p.Command == "" && strings.Contains(in.Command, "docker service ps") {
			p.Command = in.Command // the prompt line, taken out of the text by Clean
		}
		res := swarmResult("docker-service-ps", st, p, in)
		if p.Truncated {
			res.Notes = append(res.Notes, "This output was printed without --no-trunc, so task errors are cut short; run `docker service ps --no-trunc "+psService(st, p)+"` for the full text.")
		}
		return res, nil
	}
	return f
}()

// psService names the service(s) of a pasted service ps: from its command
// line, else the one service of its tasks.
func psService(st *swarm.State, p swarm.Parsed) string {
	_, args, _ := strings.Cut(p.Command, "docker service ps")
	if f := strings.Fields(args); len(f) > 0 {
		return strings.Join(f, " ")
	}
	names := map[string]bool{}
	for _, t := range st.Tasks {
		names[t.Service] = true
	}
	if len(names) == 1 {
		return st.Tasks[0].Service
	}
	return "SERVICE"
}

// swarmFormat is a Swarm command's format: recognised by its header
// (two of its column names on a line starting with ID: 100) or, when the
// header was not pasted, by rows the parser reads (60); diagnosed by
// swarm.Diagnose, as the live check is.
func swarmFormat(name, command, col1, col2 string, parse func(in *Input) (*swarm.State, swarm.Parsed, error)) Format {
	return Format{
		Name: name, Command: command,
		Detect: func(in *Input) int {
			for _, l := range in.Lines {
				if strings.Contains(l, col1) && strings.Contains(l, col2) && strings.HasPrefix(strings.TrimSpace(l), "ID") {
					return 100
				}
			}
			if _, p, err := parse(in); err == nil && p.Rows > 0 {
				return 60
			}
			return 0
		},
		Explain: func(in *Input) (Result, error) {
			st, p, err := parse(in)
			if err != nil {
				return Result{}, err
			}
			return swarmResult(name, st, p, in), nil
		},
	}
}

// swarmResult diagnoses a swarm.State read from a paste, as the live
// check does.
func swarmResult(format string, st *swarm.State, p swarm.Parsed, in *Input) Result {
	rep := swarm.Diagnose(st, in.Now)
	res := Result{Format: format, Findings: rep.Findings, Notes: p.Notes()}
	for i := range res.Findings {
		f := &res.Findings[i]
		f.Host = in.Host
		if f.Runbook == "" {
			f.Runbook = f.Mode
		}
		if f.Key == "" {
			f.Key = finding.MakeKey(f.Mode, f.Subject)
		}
	}
	res.Notes = append(res.Notes, rep.Blind...)
	if len(res.Findings) == 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d %s read; nothing wrong in them.", p.Rows, map[bool]string{true: "row", false: "rows"}[p.Rows == 1]))
	}
	return res
}
