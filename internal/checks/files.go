package checks

import (
	"context"
	"fmt"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/proctable"
)

// checkFiles is FM-B1: the system-wide open-file table against fs.file-max,
// and each process's descriptors against its own RLIMIT_NOFILE.
func checkFiles(_ context.Context, env *Env) (Result, error) {
	var res Result
	b, err := env.Src.ReadFile("/proc/sys/fs/file-nr")
	if err != nil {
		return res, fmt.Errorf("system-wide open files: %w", err)
	}
	alloc, _, max, err := ParseFileNr(b)
	if err != nil {
		return res, err
	}
	sys := finding.Figure{Name: "open files (system)", Value: float64(alloc), Limit: float64(max), Source: "/proc/sys/fs/file-nr"}
	res.Headroom = append(res.Headroom, sys)

	t := newTally()
	for _, p := range env.Procs.Procs {
		t.add(p, float64(p.FDs), "")
	}
	if sev := finding.ForRatio(float64(alloc), float64(max)); sev > 0 {
		top := t.top(5)
		vars := map[string]string{
			"file_nr":      itoa(alloc),
			"file_max":     itoa(max),
			"file_max_new": itoa(suggest(alloc, max, 1<<20)),
			"case":         "system",
		}
		if len(t.procs) > 0 {
			varsOfProcess(vars, env.Procs.ByPID(t.procs[0].PID))
			vars["fds"] = itoa(int(t.procs[0].Value))
		}
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-B1", Severity: sev, Subject: "system",
			Summary: fmt.Sprintf("The kernel's open-file table is %.0f%% full (%d of fs.file-max %d); at 100%% every process and container on this host gets \"Too many open files in system\".",
				sys.Percent(), alloc, max),
			Evidence: finding.Evidence{Figures: []finding.Figure{sys}, Consumers: top, Vars: vars},
		})
	}

	// Per process: its own limit. Processes are grouped by name and owner,
	// so that restarts keep the same key and twenty workers of one service
	// are one finding naming the worst of them.
	type group struct {
		worst *proctable.Proc
		n     int
	}
	groups := map[string]*group{}
	var order []string
	for _, p := range env.Procs.Procs {
		if p.NofileSoft <= 0 || p.FDs <= 0 || finding.ForRatio(float64(p.FDs), float64(p.NofileSoft)) == 0 {
			continue
		}
		subject := p.Comm + " (" + p.Owner.Label() + ")"
		g := groups[subject]
		if g == nil {
			g = &group{}
			groups[subject] = g
			order = append(order, subject)
		}
		g.n++
		if g.worst == nil || ratio(p) > ratio(g.worst) {
			g.worst = p
		}
	}
	for _, subject := range order {
		g := groups[subject]
		p := g.worst
		sev := finding.ForRatio(float64(p.FDs), float64(p.NofileSoft))
		vars := map[string]string{"case": "process", "fds": itoa(p.FDs), "nofile": itoa(p.NofileSoft),
			"nofile_new": itoa(min(suggest(int64(p.FDs), int64(p.NofileSoft), 65536), 1<<20))}
		varsOfProcess(vars, p)
		fig := finding.Figure{Name: "open files (process)", Value: float64(p.FDs), Limit: float64(p.NofileSoft),
			Source: fmt.Sprintf("/proc/%d/fd, /proc/%d/limits", p.PID, p.PID)}
		uid := p.EUID
		notes := []string{"Since is when the process started; the descriptors may have piled up later.", "Command: " + clip(p.Command(), 200)}
		if g.n > 1 {
			notes = append(notes, fmt.Sprintf("%d processes named %s are at 75%% or more of their limit; this is the fullest.", g.n, p.Comm))
		}
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-B1", Severity: sev, Subject: "process " + subject,
			Summary: fmt.Sprintf("%s (pid %d, %s) holds %d open files of its own limit %d; at the limit it fails with \"Too many open files\".",
				p.Comm, p.PID, p.Owner.Label(), p.FDs, p.NofileSoft),
			Since: timePtr(p.Started),
			Evidence: finding.Evidence{
				Figures:   []finding.Figure{fig},
				Consumers: []finding.Consumer{{Kind: "process", Name: p.Comm, PID: p.PID, UID: &uid, Owner: p.Owner.Label(), Value: float64(p.FDs), Limit: float64(p.NofileSoft)}},
				Notes:     notes,
				Vars:      vars,
			},
		})
	}
	if env.Procs.Hidden > 0 {
		res.Blind = append(res.Blind, fmt.Sprintf("open files and inotify use of %d processes of other users (run as root to see them)", env.Procs.Hidden))
	}
	return res, nil
}

func ratio(p *proctable.Proc) float64 { return float64(p.FDs) / float64(p.NofileSoft) }

// ParseFileNr reads /proc/sys/fs/file-nr: allocated, allocated-but-unused
// (always 0 since Linux 2.6) and the maximum.
func ParseFileNr(b []byte) (alloc, unused, max int64, err error) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, 0, 0, fmt.Errorf("/proc/sys/fs/file-nr: want 3 numbers, got %q", clip(string(b), 80))
	}
	var v [3]int64
	for i, s := range f {
		if _, err := fmt.Sscan(s, &v[i]); err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/sys/fs/file-nr: %q is not a number", s)
		}
	}
	return v[0], v[1], v[2], nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
