package checks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// checkMemory is the OOM part of FM-B4 (and the since-boot view of FM-E4):
// OOM kills counted by the kernel since boot, with the victims the kernel
// log still names.
func checkMemory(_ context.Context, env *Env) (Result, error) {
	var res Result
	b, err := env.Src.ReadFile("/proc/vmstat")
	if err != nil {
		return res, err
	}
	vm := ParseVmstat(b)
	kills, ok := vm["oom_kill"]
	if !ok {
		return res, ErrNotApplicable // kernels before 4.13
	}
	res.Headroom = append(res.Headroom, finding.Figure{Name: "OOM kills since boot", Value: float64(kills), Source: "/proc/vmstat"})
	if kills == 0 {
		return res, nil
	}
	lines := env.Kernel.Matching("Killed process", "Out of memory")
	vars := map[string]string{"resource": "oom", "used": itoa(kills)}
	var victims []finding.Consumer
	for _, l := range lines {
		if m := reKilled.FindStringSubmatch(l.Text); m != nil {
			pid, _ := strconv.Atoi(m[1])
			victims = append(victims, finding.Consumer{Kind: "process", Name: m[2], PID: pid, Value: 1})
			vars["pid"], vars["comm"] = m[1], m[2]
		}
	}
	sev := finding.Low
	since := (*finding.Line)(nil)
	if len(lines) > 0 {
		since = &lines[0]
		last := lines[len(lines)-1]
		if last.Time != nil && env.Now.Sub(*last.Time) < oomRecent {
			sev = finding.Medium
		}
	}
	f := finding.Finding{
		Mode: "FM-B4", Severity: sev, Subject: "oom",
		Summary: fmt.Sprintf("The kernel has killed %d process(es) for lack of memory since boot (%s).", kills, env.Procs.Boot.Format("2006-01-02 15:04 MST")),
		Evidence: finding.Evidence{
			Figures:   []finding.Figure{{Name: "OOM kills since boot", Value: float64(kills), Source: "/proc/vmstat oom_kill"}},
			Consumers: victims, Lines: lines, Vars: vars,
		},
	}
	if since != nil {
		f.Since = since.Time
	}
	if len(lines) == 0 {
		f.Evidence.Notes = append(f.Evidence.Notes, "The kernel log no longer holds the kill messages (or could not be read): see journalctl -k | grep -i 'killed process'.")
	}
	res.Findings = append(res.Findings, f)
	return res, nil
}

// oomRecent is how recent a kill must be to count as ongoing trouble.
const oomRecent = time.Hour

// The comm may itself hold parentheses ("((resolved))"): match up to the
// ")" that the kernel follows with the memory figures.
var reKilled = regexp.MustCompile(`Killed process (\d+)(?:, UID \d+,)? \((.+?)\)(?:\s+total-vm|,\s|\s*$)`)

// ParseVmstat reads /proc/vmstat's "name value" lines.
func ParseVmstat(b []byte) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}
