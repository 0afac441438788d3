package checks

import (
	"bytes"
	"context"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/signatures"
)

// cleanEnd are messages that only a clean shutdown writes near its end.
var cleanEnd = []string{
	"Journal stopped", "systemd-shutdown", "reboot: Restarting system", "reboot: Power down",
	"System is rebooting", "System is powering down", "Reached target System Reboot",
	"Reached target System Power Off", "Reached target Power-Off", "Reached target System Halt",
}

// checkPreviousBoot looks back (FM-C1 aftermath, FM-D7, FM-E*): did the last
// boot end cleanly, and what did the kernel say in its last minutes? It
// reads the persistent journal and pstore through the signature engine.
// It needs no process table, so it runs while the table is read.
func checkPreviousBoot(ctx context.Context, env *Env) (Result, error) {
	var res Result
	if env.Signatures == nil {
		return res, ErrNotApplicable
	}
	looked := false

	// pstore keeps the kernel's last words across a crash. Without a
	// backend (efi_pstore, ramoops …) it keeps nothing, and an empty
	// directory proves nothing.
	backend, _ := env.Src.ReadFile("/sys/module/pstore/parameters/backend")
	if b := strings.TrimSpace(string(backend)); b != "" && b != "(null)" {
		looked = true
	}
	if names, err := env.Src.ReadDirNames("/sys/fs/pstore"); err == nil {
		sort.Strings(names)
		for _, n := range names {
			if !strings.HasPrefix(n, "dmesg-") {
				continue
			}
			b, err := env.Src.ReadFile(path.Join("/sys/fs/pstore", n))
			if err != nil {
				continue
			}
			looked = true
			fs := logFindings(env, "pstore "+n, b, "previous boot (pstore): ")
			for i := range fs {
				fs[i].Evidence.Notes = append(fs[i].Evidence.Notes, "pstore kept this from a crash of an earlier boot; clear it once read: rm /sys/fs/pstore/"+n)
			}
			res.Findings = append(res.Findings, fs...)
		}
	} else if !host.Missing(err) {
		res.Blind = append(res.Blind, "pstore: "+err.Error())
	}

	// The persistent journal of the previous boot.
	last, err := env.Src.Command(ctx, "journal-prev-tail", "journalctl", "-b", "-1", "-n", "60", "-q", "--no-pager", "-o", "short-iso")
	if err == nil && last.ExitCode == 0 && len(strings.TrimSpace(string(last.Stdout))) > 0 {
		looked = true
		tailLines := ParseShortISO(last.Stdout, "journal, previous boot")
		clean := false
		for _, l := range tailLines {
			for _, m := range cleanEnd {
				if strings.Contains(l.Text, m) {
					clean = true
				}
			}
		}
		kern, _ := env.Src.Command(ctx, "journal-prev-kernel", "journalctl", "-b", "-1", "-k", "-q", "--no-pager", "-o", "short-iso", "-n", "20000")
		distress := logFindings(env, "journal -b -1 -k", kern.Stdout, "previous boot: ")
		res.Findings = append(res.Findings, distress...)
		if !clean {
			var end *time.Time
			if len(tailLines) > 0 {
				end = tailLines[len(tailLines)-1].Time
			}
			summary := "The previous boot ended without a clean shutdown (power loss, fencing, watchdog or a kernel crash)"
			if len(distress) > 0 {
				summary += "; its kernel logged distress before it ended (see the findings marked previous boot)"
			}
			if f, ok := fencedBoot(ctx, env, tailLines); ok {
				res.Findings = append(res.Findings, f)
			} else {
				res.Findings = append(res.Findings, finding.Finding{
					Mode: "FM-C1", Severity: finding.Medium, Subject: "previous boot unclean", Summary: summary + ".", Since: end,
					Evidence: finding.Evidence{
						Lines: tail(tailLines, 5),
						Notes: []string{"These are the previous boot's last journal lines; none is a shutdown message."},
					},
				})
			}
		}
	}
	if !looked {
		res.Blind = append(res.Blind, "how the previous boot ended (no persistent journal and no pstore records)")
	}
	return res, nil
}

// checkKernelLog runs the signatures over this boot's kernel log (read
// with the process table, Env.Kernel).
func checkKernelLog(ctx context.Context, env *Env) (Result, error) {
	var res Result
	if env.Signatures == nil {
		return res, ErrNotApplicable
	}
	if env.Kernel != nil {
		if env.Kernel.Err != nil && !host.Missing(env.Kernel.Err) {
			res.Blind = append(res.Blind, "the kernel log (/dev/kmsg: "+env.Kernel.Err.Error()+")")
		}
		var b strings.Builder
		for _, l := range env.Kernel.Lines {
			if l.Time != nil {
				b.WriteString(l.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
			} else {
				b.WriteString("-")
			}
			b.WriteString(" " + env.Host + " kernel: " + l.Text + "\n")
		}
		res.Findings = append(res.Findings, logFindings(env, "kernel log", []byte(b.String()), "")...)
	}
	return res, nil
}

// logFindings runs the signature engine over a log and returns one finding
// per incident, its subject prefixed.
func logFindings(env *Env, input string, text []byte, prefix string) []finding.Finding {
	out := LogFindings(env.Signatures, env.Host, input, text, prefix)
	for _, f := range out {
		cgroupOwner(env, f.Evidence.Vars)
	}
	return out
}

// LogFindings runs the signature engine over a log and returns one finding
// per incident, its subject prefixed, as doctor reports the kernel log and
// the previous boot's. host names the findings' host; when empty, each
// takes the host its first line names.
func LogFindings(m *signatures.Matcher, host, input string, text []byte, prefix string) []finding.Finding {
	agg := signatures.NewAggregator()
	if _, err := m.Scan(bytes.NewReader(text), input, agg.Add); err != nil {
		return nil
	}
	var out []finding.Finding
	for _, in := range agg.Incidents() {
		h := host
		if h == "" {
			h = in.Host()
		}
		f := in.Finding(h)
		f.Subject = prefix + f.Subject
		f.Key = finding.MakeKey(f.Mode, f.Subject)
		out = append(out, f)
	}
	return out
}

// cgroupOwner names the owner of the cgroup a kernel line about a cgroup
// at its pids.max names, so that the runbook restarts that container,
// guest or unit.
func cgroupOwner(env *Env, vars map[string]string) {
	cg := vars["path"]
	if vars["resource"] != "cgroup-pids" || !strings.HasPrefix(cg, "/") {
		return
	}
	OwnerVars(vars, proctable.OwnerOfPath(cg))
	vars["cgroup"] = strings.TrimPrefix(cg, "/")
	dir := "/sys/fs/cgroup" + cg
	if _, err := env.Src.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		dir = "/sys/fs/cgroup/pids" + cg // cgroup v1
	}
	vars["cgroup_dir"] = dir
}

func tail(ls []finding.Line, n int) []finding.Line {
	if len(ls) > n {
		return ls[len(ls)-n:]
	}
	return ls
}

// ParseShortISO reads journalctl -o short-iso output: "TIME HOST IDENT: MSG".
// Lines it cannot date (wrapped continuations, "-- Boot …" markers) are kept
// without a time rather than dropped.
func ParseShortISO(b []byte, source string) []finding.Line {
	var out []finding.Line
	for _, raw := range strings.Split(string(b), "\n") {
		raw = strings.TrimRight(raw, "\r ")
		if raw == "" || strings.HasPrefix(raw, "-- ") {
			continue
		}
		ts, rest, _ := strings.Cut(raw, " ")
		var t *time.Time
		for _, layout := range []string{"2006-01-02T15:04:05-0700", "2006-01-02T15:04:05-07:00", "2006-01-02T15:04:05Z07:00"} {
			if v, err := time.Parse(layout, ts); err == nil {
				v = v.UTC()
				t = &v
				break
			}
		}
		if t == nil {
			out = append(out, finding.Line{Source: source, Text: raw})
			continue
		}
		// Drop the host name: the finding already names the host.
		if _, msg, ok := strings.Cut(rest, " "); ok {
			rest = msg
		}
		out = append(out, finding.Line{Time: t, Source: source, Text: rest})
	}
	return out
}
