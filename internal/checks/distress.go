package checks

import (
	"regexp"

	"github.com/hinomi/hinomi/internal/finding"
)

// Classifier names the failure mode and severity of a kernel log line, or
// returns ok false for a line that says nothing alarming. The log signature
// engine provides the full one; SeedSignatures is the small built-in list.
type Classifier func(text string) (mode string, sev finding.Severity, ok bool)

// seedSignatures are the distress lines of the seed incidents, matched on
// their stable core so that kernel-version prefixes do not matter.
var seedSignatures = []struct {
	re   *regexp.Regexp
	mode string
	sev  finding.Severity
}{
	{regexp.MustCompile(`Kernel panic - not syncing`), "FM-E1", finding.Catastrophic},
	{regexp.MustCompile(`Fixing recursive fault but reboot is needed`), "FM-E1", finding.Catastrophic},
	{regexp.MustCompile(`BUG: scheduling while atomic`), "FM-E1", finding.High},
	{regexp.MustCompile(`BUG: unable to handle`), "FM-E1", finding.High},
	{regexp.MustCompile(`\bOops[:\s]`), "FM-E1", finding.High},
	{regexp.MustCompile(`rcu_(preempt|sched) (detected )?(stalls|self-detected stall)`), "FM-E2", finding.High},
	{regexp.MustCompile(`soft lockup - CPU#\d+ stuck`), "FM-E2", finding.High},
	{regexp.MustCompile(`(?i)hard lockup`), "FM-E2", finding.High},
	{regexp.MustCompile(`INFO: task .+ blocked for more than \d+ seconds`), "FM-E3", finding.Medium},
	{regexp.MustCompile(`Out of memory: Kill`), "FM-E4", finding.Medium},
	{regexp.MustCompile(`nfs: server .* not responding`), "FM-C6", finding.High},
	{regexp.MustCompile(`unregister_netdevice: waiting for .* to become free`), "FM-E6", finding.High},
}

// SeedSignatures classifies a line with the built-in list.
func SeedSignatures(text string) (string, finding.Severity, bool) {
	for _, s := range seedSignatures {
		if s.re.MatchString(text) {
			return s.mode, s.sev, true
		}
	}
	return "", 0, false
}
