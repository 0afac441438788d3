package checks

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
)

// cleanEnd are messages that only a clean shutdown writes near its end.
var cleanEnd = []string{
	"Journal stopped", "systemd-shutdown", "reboot: Restarting system", "reboot: Power down",
	"System is rebooting", "System is powering down", "Reached target System Reboot",
	"Reached target System Power Off", "Reached target Power-Off", "Reached target System Halt",
}

// checkPreviousBoot looks back (FM-C1 aftermath, FM-D7, FM-E*): did the last
// boot end cleanly, and what did the kernel say in its last minutes? It
// reads the persistent journal and pstore; it also reports distress lines
// of the current boot's kernel log.
func checkPreviousBoot(ctx context.Context, env *Env) (Result, error) {
	var res Result
	classify := env.Classify
	if classify == nil {
		classify = SeedSignatures
	}
	looked := false

	// pstore keeps the kernel's last words across a crash.
	// Without a backend (efi_pstore, ramoops …) pstore keeps nothing, and an
	// empty directory proves nothing.
	backend, _ := env.Src.ReadFile("/sys/module/pstore/parameters/backend")
	if b := strings.TrimSpace(string(backend)); b != "" && b != "(null)" {
		looked = true
	}
	if names, err := env.Src.ReadDirNames("/sys/fs/pstore"); err == nil {
		sort.Strings(names)
		var lines []finding.Line
		for _, n := range names {
			if !strings.HasPrefix(n, "dmesg-") {
				continue
			}
			b, err := env.Src.ReadFile(path.Join("/sys/fs/pstore", n))
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				if _, _, ok := classify(l); ok {
					lines = append(lines, finding.Line{Source: "pstore " + n, Text: strings.TrimSpace(l)})
				}
			}
		}
		if len(lines) > 0 {
			mode, sev := worst(classify, lines)
			res.Findings = append(res.Findings, finding.Finding{
				Mode: mode, Severity: sev, Subject: "previous boot (pstore)",
				Summary:  "The kernel crashed in an earlier boot; pstore kept its last messages.",
				Evidence: finding.Evidence{Lines: tail(lines, 10), Vars: map[string]string{"line": lines[0].Text}, Notes: []string{"Clear the records once read: rm /sys/fs/pstore/dmesg-*"}},
			})
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
		kern, _ := env.Src.Command(ctx, "journal-prev-kernel", "journalctl", "-b", "-1", "-k", "-p", "warning", "-q", "--no-pager", "-o", "short-iso", "-n", "3000")
		var distress []finding.Line
		for _, l := range ParseShortISO(kern.Stdout, "kernel, previous boot") {
			if _, _, ok := classify(l.Text); ok {
				distress = append(distress, l)
			}
		}
		var end *time.Time
		if len(tailLines) > 0 {
			end = tailLines[len(tailLines)-1].Time
		}
		if !clean || len(distress) > 0 {
			mode, sev := "FM-C1", finding.Medium
			if len(distress) > 0 {
				mode, sev = worst(classify, distress)
			}
			summary := "The previous boot ended without a clean shutdown (power loss, fencing, watchdog or a kernel crash)"
			if clean {
				summary = "The previous boot shut down, but its kernel logged distress first"
			}
			if len(distress) > 0 {
				summary += "; its last kernel distress line: " + clip(distress[len(distress)-1].Text, 120)
			}
			ev := finding.Evidence{Lines: tail(distress, 10), Vars: map[string]string{}}
			if len(distress) == 0 {
				ev.Lines = tail(tailLines, 5)
				ev.Notes = append(ev.Notes, "These are the previous boot's last journal lines; none is a shutdown message.")
			} else {
				ev.Vars["line"] = distress[len(distress)-1].Text
			}
			res.Findings = append(res.Findings, finding.Finding{
				Mode: mode, Severity: sev, Subject: "previous boot", Summary: summary + ".", Since: end, Evidence: ev,
			})
		}
	}
	if !looked {
		res.Blind = append(res.Blind, "how the previous boot ended (no persistent journal and no pstore records)")
	}

	// Distress in the current boot's kernel log.
	if env.Kernel != nil && env.Kernel.Err != nil && !host.Missing(env.Kernel.Err) {
		res.Blind = append(res.Blind, "the kernel log (/dev/kmsg: "+env.Kernel.Err.Error()+")")
	}
	byMode := map[string][]finding.Line{}
	for _, l := range env.Kernel.Lines {
		if mode, _, ok := classify(l.Text); ok {
			byMode[mode] = append(byMode[mode], l)
		}
	}
	for mode, lines := range byMode {
		_, sev := worst(classify, lines)
		res.Findings = append(res.Findings, finding.Finding{
			Mode: mode, Severity: sev, Subject: "kernel log",
			Summary:  fmt.Sprintf("The kernel logged %d distress line(s) of this kind since boot; the latest: %s", len(lines), clip(lines[len(lines)-1].Text, 140)),
			Since:    lines[0].Time,
			Evidence: finding.Evidence{Lines: tail(lines, 8), Vars: map[string]string{"line": lines[len(lines)-1].Text}},
		})
	}
	return res, nil
}

func worst(classify Classifier, lines []finding.Line) (string, finding.Severity) {
	mode, sev := "", finding.Severity(0)
	for _, l := range lines {
		if m, s, ok := classify(l.Text); ok && s >= sev {
			mode, sev = m, s
		}
	}
	return mode, sev
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
