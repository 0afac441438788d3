// Package finding defines what every hinomi check produces: a finding is data
// (failure mode, severity, subject, evidence, since when, runbook) that the
// terminal view, JSON, the agent's shipping and the tower's alerts all render.
package finding

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Severity ranks a finding. The scale is the one of failure-modes.md.
type Severity int

// The severities, least to worst. OK is used only for the all-clear headroom
// lines of a healthy check; it never appears in a finding.
const (
	Info Severity = iota + 1
	Low
	Medium
	High
	Catastrophic
)

var severityNames = map[Severity]string{
	Info: "info", Low: "low", Medium: "medium", High: "high", Catastrophic: "catastrophic",
}

func (s Severity) String() string {
	if n, ok := severityNames[s]; ok {
		return n
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// ParseSeverity reads one of info, low, medium, high, catastrophic.
func ParseSeverity(s string) (Severity, error) {
	for k, v := range severityNames {
		if strings.EqualFold(v, strings.TrimSpace(s)) {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want info, low, medium, high or catastrophic)", s)
}

// MarshalText encodes the severity by name so JSON carries "high", not 4.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ForRatio maps how full a shared limit is to a severity: the usual shape
// of every "x of its limit" check. Below 75 % it is not a finding (0).
func ForRatio(used, limit float64) Severity {
	if limit <= 0 {
		return 0
	}
	r := used / limit
	switch {
	case r >= 0.95:
		return High
	case r >= 0.85:
		return Medium
	case r >= 0.75:
		return Low
	}
	return 0
}

// Finding is one thing that is wrong, or about to be, on one host.
type Finding struct {
	// Key is stable across runs for the same problem on the same subject:
	// "FM-B2/uid:0". The agent and tower use it to follow a finding over time.
	Key      string   `json:"key"`
	Mode     string   `json:"mode"` // failure mode ID from failure-modes.md, e.g. FM-B2
	Severity Severity `json:"severity"`
	Host     string   `json:"host"`
	Subject  string   `json:"subject"` // what it is about: "uid 0", "/mnt/nfs", "docker.service"
	Summary  string   `json:"summary"` // one sentence for a tired operator
	// Since is when the condition began, where that is knowable; nil otherwise.
	Since    *time.Time `json:"since,omitempty"`
	Evidence Evidence   `json:"evidence"`
	// Runbook is the failure mode whose runbook applies (normally Mode).
	Runbook string `json:"runbook"`
}

// Evidence is what a finding rests on.
type Evidence struct {
	// Figures are measured values with their limits.
	Figures []Figure `json:"figures,omitempty"`
	// Consumers are the top holders of the resource, worst first.
	Consumers []Consumer `json:"consumers,omitempty"`
	// Lines are log lines or command output lines with their time.
	Lines []Line `json:"lines,omitempty"`
	// Notes are further plain sentences ("root in every container shares …").
	Notes []string `json:"notes,omitempty"`
	// Vars fill the runbook template: pid, container, mountpoint, sysctl values.
	Vars map[string]string `json:"vars,omitempty"`
}

// Figure is one measured quantity, optionally against its limit.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Limit float64 `json:"limit,omitempty"`
	Unit  string  `json:"unit,omitempty"` // "", "bytes", "s", "%"
	// Source says where the figure was read, e.g. /proc/sys/fs/file-nr.
	Source string `json:"source,omitempty"`
}

// Percent is Value/Limit in percent, or -1 when there is no limit.
func (f Figure) Percent() float64 {
	if f.Limit <= 0 {
		return -1
	}
	return 100 * f.Value / f.Limit
}

// Consumer is one process, container or user holding part of a resource.
type Consumer struct {
	Kind  string  `json:"kind"` // process, container, uid, service, guest, directory
	Name  string  `json:"name"` // comm, container name, user name, path
	ID    string  `json:"id,omitempty"`
	PID   int     `json:"pid,omitempty"`
	UID   *int    `json:"uid,omitempty"`
	Owner string  `json:"owner,omitempty"` // container / service the process belongs to
	Value float64 `json:"value"`
	Limit float64 `json:"limit,omitempty"`
	Unit  string  `json:"unit,omitempty"`
}

// Line is a log or command-output line with the time it was written.
type Line struct {
	Time   *time.Time `json:"time,omitempty"`
	Source string     `json:"source,omitempty"`
	Text   string     `json:"text"`
}

// MakeKey builds the stable key of a finding.
func MakeKey(mode, subject string) string { return mode + "/" + subject }

// Sort orders findings worst first, then by mode and key, so output is stable.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Mode != b.Mode {
			return a.Mode < b.Mode
		}
		return a.Key < b.Key
	})
}

// MarshalJSON keeps nil slices out of the way of scripts: Figures etc. are
// omitted when empty, and Vars never prints as null.
func (e Evidence) MarshalJSON() ([]byte, error) {
	type plain Evidence
	if e.Vars == nil {
		e.Vars = map[string]string{}
	}
	return json.Marshal(plain(e))
}

// HumanBytes prints a byte count the way df -h does: 12.4 GiB.
func HumanBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// HumanDuration writes d in at most two units, rounded down: "42s", "12m 5s",
// "5h 12m", "2d 3h". Never nanoseconds.
func HumanDuration(d time.Duration) string {
	s := int64(max(d, 0) / time.Second)
	const minute, hour, day = 60, 3600, 86400
	two := func(a int64, ua string, b int64, ub string) string {
		if b == 0 {
			return fmt.Sprintf("%d%s", a, ua)
		}
		return fmt.Sprintf("%d%s %d%s", a, ua, b, ub)
	}
	switch {
	case s < minute:
		return fmt.Sprintf("%ds", s)
	case s < hour:
		return two(s/minute, "m", s%minute, "s")
	case s < day:
		return two(s/hour, "h", s%hour/minute, "m")
	}
	return two(s/day, "d", s%day/hour, "h")
}
