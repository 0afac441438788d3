package checks

import (
	"context"
	"fmt"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
)

// psiLimits are the avg60 percentages from which pressure is a finding. A
// "full" stall means every runnable task waited at once: far worse than
// "some", hence the lower thresholds.
var psiLimits = []struct {
	resource string
	full     bool
	low, med float64
}{
	{"memory", true, 5, 20},
	{"io", true, 10, 30},
	{"memory", false, 20, 50},
	{"io", false, 30, 60},
	{"cpu", false, 50, 80},
}

// checkPressure is the PSI part of FM-B4: the share of the last minute in
// which tasks stalled waiting for CPU, memory or I/O.
func checkPressure(_ context.Context, env *Env) (Result, error) {
	var res Result
	pfs, err := env.Src.ProcFS()
	if err != nil {
		return res, err
	}
	for _, r := range []string{"cpu", "memory", "io"} {
		_, _ = env.Src.ReadFile("/proc/pressure/" + r) // recorded for snapshots
	}
	for _, l := range psiLimits {
		st, err := pfs.PSIStatsForResource(l.resource)
		if host.Missing(err) {
			return res, ErrNotApplicable // kernel without CONFIG_PSI or psi=0
		}
		if err != nil {
			return res, err
		}
		line, kind := st.Some, "some"
		if l.full {
			line, kind = st.Full, "full"
		}
		if line == nil {
			continue
		}
		fig := finding.Figure{Name: fmt.Sprintf("%s pressure (%s, avg60)", l.resource, kind), Value: line.Avg60, Unit: "%", Source: "/proc/pressure/" + l.resource}
		if l.full || l.resource == "cpu" {
			res.Headroom = append(res.Headroom, fig)
		}
		sev := finding.Severity(0)
		switch {
		case line.Avg60 >= l.med:
			sev = finding.Medium
		case line.Avg60 >= l.low:
			sev = finding.Low
		}
		if sev == 0 {
			continue
		}
		what := "some tasks"
		if l.full {
			what = "all runnable tasks"
		}
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-B4", Severity: sev, Subject: "psi " + l.resource + " " + kind,
			Summary: fmt.Sprintf("In the last minute %s stalled waiting for %s %.0f%% of the time (10 s: %.0f%%, 5 min: %.0f%%).",
				what, l.resource, line.Avg60, line.Avg10, line.Avg300),
			Evidence: finding.Evidence{Figures: []finding.Figure{fig}, Vars: map[string]string{"resource": "psi", "psi": l.resource, "used": fmt.Sprintf("%.1f", line.Avg60)}},
		})
	}
	return res, nil
}
