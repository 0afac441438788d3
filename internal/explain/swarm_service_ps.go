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
var swarmServicePS = Format{
	Name:    "docker-service-ps",
	Command: "docker service ps --no-trunc SERVICE",
	Detect: func(in *Input) int {
		return swarmDetect(in, "DESIRED STATE", "CURRENT STATE", func() bool {
			_, p, err := swarm.ParseServicePS(in.Text, in.Now)
			return err == nil && p.Rows > 0
		})
	},
	Explain: func(in *Input) (Result, error) {
		st, p, err := swarm.ParseServicePS(in.Text, in.Now)
		if err != nil {
			return Result{}, err
		}
		res := swarmResult("docker-service-ps", st, p, in)
		if p.Truncated {
			svc := "SERVICE"
			names := map[string]bool{}
			for _, t := range st.Tasks {
				names[t.Service] = true
			}
			if f := strings.Fields(p.Command); len(f) > 3 {
				svc = strings.Join(f[3:], " ")
			} else if len(names) == 1 {
				svc = st.Tasks[0].Service
			}
			res.Notes = append(res.Notes, "This output was printed without --no-trunc, so task errors are cut short; run `docker service ps --no-trunc "+svc+"` for the full text.")
		}
		return res, nil
	},
}

// swarmDetect scores a paste: 100 with the command's header (both columns
// on one line), 60 for rows alone that the parser reads.
func swarmDetect(in *Input, col1, col2 string, rows func() bool) int {
	for _, l := range in.Lines {
		if strings.Contains(l, col1) && strings.Contains(l, col2) && strings.HasPrefix(strings.TrimSpace(l), "ID") {
			return 100
		}
	}
	if rows() {
		return 60
	}
	return 0
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
