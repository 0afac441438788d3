package checks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// maxUnits bounds the per-unit commands on a host with many failures.
const maxUnits = 10

// checkServices is FM-C3: systemd units in the failed state, each with its
// last log lines and since when it has been failed.
func checkServices(ctx context.Context, env *Env) (Result, error) {
	var res Result
	if p1 := env.Procs.ByPID(1); p1 == nil || p1.Comm != "systemd" {
		return res, ErrNotApplicable
	}
	out, err := env.Src.Command(ctx, "systemctl-failed", "systemctl", "list-units", "--state=failed", "--plain", "--no-legend", "--no-pager", "--all")
	if err != nil {
		return res, fmt.Errorf("failed units: %w", err)
	}
	units := ParseFailedUnits(out.Stdout)
	res.Headroom = append(res.Headroom, finding.Figure{Name: "failed systemd units", Value: float64(len(units)), Source: "systemctl list-units --state=failed"})
	for i, u := range units {
		f := finding.Finding{
			Mode: "FM-C3", Severity: finding.Medium, Subject: u.Name,
			Summary:  fmt.Sprintf("systemd unit %s has failed (%s).", u.Name, u.Description),
			Evidence: finding.Evidence{Vars: map[string]string{"unit": u.Name}},
		}
		if i < maxUnits {
			if show, err := env.Src.Command(ctx, "systemctl-show-"+u.Name, "systemctl", "show", u.Name, "-p", "Result", "-p", "InactiveEnterTimestamp", "-p", "NRestarts"); err == nil {
				props := ParseProperties(show.Stdout)
				if t, err := time.Parse("Mon 2006-01-02 15:04:05 MST", props["InactiveEnterTimestamp"]); err == nil {
					t = t.UTC()
					f.Since = &t
				}
				if r := props["Result"]; r != "" {
					f.Summary = fmt.Sprintf("systemd unit %s has failed (result: %s): %s.", u.Name, r, u.Description)
				}
			}
			if j, err := env.Src.Command(ctx, "journal-unit-"+u.Name, "journalctl", "-u", u.Name, "-n", "5", "-q", "--no-pager", "-o", "short-iso"); err == nil {
				f.Evidence.Lines = ParseShortISO(j.Stdout, u.Name)
			}
		}
		res.Findings = append(res.Findings, f)
	}
	return res, nil
}

// Unit is one line of systemctl list-units.
type Unit struct {
	Name, Load, Active, Sub, Description string
}

// ParseFailedUnits reads `systemctl list-units --plain --no-legend`.
func ParseFailedUnits(b []byte) []Unit {
	var out []Unit
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimLeft(strings.TrimSpace(line), "●* ")
		f := strings.Fields(line)
		if len(f) < 4 || !strings.Contains(f[0], ".") {
			continue
		}
		u := Unit{Name: f[0], Load: f[1], Active: f[2], Sub: f[3]}
		if len(f) > 4 {
			u.Description = strings.Join(f[4:], " ")
		}
		out = append(out, u)
	}
	return out
}

// ParseProperties reads systemctl show's KEY=VALUE lines.
func ParseProperties(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}
