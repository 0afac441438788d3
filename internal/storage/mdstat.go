package storage

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
)

// MDArray is one array of /proc/mdstat.
type MDArray struct {
	Name     string     `json:"name"` // md0
	Active   bool       `json:"active"`
	ReadOnly bool       `json:"read_only,omitempty"`
	Level    string     `json:"level,omitempty"` // raid1, raid5 …
	Members  []MDMember `json:"members"`
	// Want and Have are the [n/m] counts; 0 when not printed (raid0,
	// linear, inactive arrays).
	Want int    `json:"want"`
	Have int    `json:"have"`
	Map  string `json:"map,omitempty"` // "U_"
	// Action is recovery, resync, check, repair or reshape when one runs
	// (or waits: Pending).
	Action    string  `json:"action,omitempty"`
	Pending   string  `json:"pending,omitempty"` // DELAYED, PENDING
	Percent   float64 `json:"percent"`           // -1 when none
	FinishMin float64 `json:"finish_min"`        // -1 when not printed
	SpeedKiB  int64   `json:"speed_kib"`         // per second; -1 when not printed
}

// MDMember is one device of an array.
type MDMember struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	// Flag is F (faulty), S (spare), W (write-mostly), R (replacement) or "".
	Flag string `json:"flag,omitempty"`
}

var (
	reMDHead   = regexp.MustCompile(`^(md[\w/]+)\s*:\s*(active|inactive)\s*(.*)$`)
	reMDMember = regexp.MustCompile(`^([^\s\[]+)\[(\d+)\]((?:\([A-Z]\))*)$`)
	reMDCount  = regexp.MustCompile(`\[(\d+)/(\d+)\]\s*\[([U_]+)\]`)
	reMDAction = regexp.MustCompile(`\b(recovery|resync|check|repair|reshape)\s*=\s*([\d.]+)%`)
	reMDWait   = regexp.MustCompile(`\b(recovery|resync|check|repair|reshape)\s*=\s*(DELAYED|PENDING)`)
	reMDFinish = regexp.MustCompile(`finish=([\d.]+)min`)
	reMDSpeed  = regexp.MustCompile(`speed=(\d+)K/sec`)
)

// ParseMdstat reads /proc/mdstat.
func ParseMdstat(b []byte) (arrays []MDArray, skipped int) {
	var cur *MDArray
	var block strings.Builder
	flush := func() {
		if cur != nil {
			finishMD(cur, block.String())
			arrays = append(arrays, *cur)
		}
		cur = nil
		block.Reset()
	}
	for _, line := range cleanLines(b) {
		t := strings.TrimSpace(line)
		if _, ok := promptCommand(line); ok || t == "" {
			continue
		}
		if m := reMDHead.FindStringSubmatch(t); m != nil {
			flush()
			cur = &MDArray{Name: m[1], Active: m[2] == "active", Percent: -1, FinishMin: -1, SpeedKiB: -1}
			for _, f := range strings.Fields(m[3]) {
				switch {
				case f == "(auto-read-only)" || f == "(read-only)":
					cur.ReadOnly = true
				case reMDMember.MatchString(f):
					mm := reMDMember.FindStringSubmatch(f)
					idx, _ := strconv.Atoi(mm[2])
					cur.Members = append(cur.Members, MDMember{Name: mm[1], Index: idx, Flag: strings.Trim(mm[3], "()")})
				case cur.Level == "" && (strings.HasPrefix(f, "raid") || f == "linear" || f == "multipath" || f == "faulty"):
					cur.Level = f
				}
			}
			continue
		}
		switch {
		case strings.HasPrefix(t, "Personalities") || strings.HasPrefix(t, "unused devices") || strings.HasPrefix(t, "read_ahead") || strings.HasPrefix(t, "Event:"):
			flush()
		case cur != nil:
			block.WriteString(t + " ")
		default:
			skipped++
		}
	}
	flush()
	return arrays, skipped
}

func finishMD(a *MDArray, s string) {
	if m := reMDCount.FindStringSubmatch(s); m != nil {
		a.Want, _ = strconv.Atoi(m[1])
		a.Have, _ = strconv.Atoi(m[2])
		a.Map = m[3]
	}
	if m := reMDAction.FindStringSubmatch(s); m != nil {
		a.Action = m[1]
		a.Percent, _ = strconv.ParseFloat(m[2], 64)
	} else if m := reMDWait.FindStringSubmatch(s); m != nil {
		a.Action, a.Pending = m[1], m[2]
	}
	if m := reMDFinish.FindStringSubmatch(s); m != nil {
		a.FinishMin, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reMDSpeed.FindStringSubmatch(s); m != nil {
		a.SpeedKiB, _ = strconv.ParseInt(m[1], 10, 64)
	}
}

// mdRedundancy is how many members an array of a level may lose.
func mdRedundancy(a MDArray) int {
	switch a.Level {
	case "raid1":
		return a.Want - 1
	case "raid4", "raid5", "raid10":
		// raid10 survives one loss for sure, more only by luck of layout.
		return 1
	case "raid6":
		return 2
	}
	return 0
}

// DiagnoseMD judges each array of /proc/mdstat.
func DiagnoseMD(arrays []MDArray, source string) []finding.Finding {
	var out []finding.Finding
	for _, a := range arrays {
		if f, ok := diagnoseArray(a, source); ok {
			out = append(out, f)
		}
	}
	return dedupe(out)
}

func diagnoseArray(a MDArray, source string) (finding.Finding, bool) {
	dev := "/dev/" + a.Name
	vars := map[string]string{"array": dev, "kind": "md"}
	var failed *MDMember
	for i := range a.Members {
		if a.Members[i].Flag == "F" {
			failed = &a.Members[i]
			break
		}
	}
	lost := a.Want - a.Have
	if lost < 0 {
		lost = 0
	}
	if n := strings.Count(a.Map, "_"); n > lost {
		lost = n
	}
	var sev finding.Severity
	var summary string
	var notes []string
	members := func() string {
		var ns []string
		for _, m := range a.Members {
			s := m.Name
			if m.Flag != "" {
				s += "(" + m.Flag + ")"
			}
			ns = append(ns, s)
		}
		return strings.Join(ns, " ")
	}
	switch {
	case !a.Active:
		sev = finding.High
		summary = fmt.Sprintf("md array %s is inactive (members: %s): its data is not available until it is assembled.", dev, members())
		vars["state"] = "inactive"
	case lost > 0:
		red := mdRedundancy(a)
		what := fmt.Sprintf("%d of %d members", a.Have, a.Want)
		if a.Want == 0 {
			what = a.Map
		}
		sev = finding.High
		summary = fmt.Sprintf("md array %s (%s) is degraded [%s]: %s present", dev, a.Level, a.Map, what)
		if failed != nil {
			summary += fmt.Sprintf(", %s has failed", failed.Name)
		}
		if lost >= red {
			sev = finding.Catastrophic
			summary += "; no redundancy is left, the next disk failure loses the array."
			notes = append(notes, "Back up now, before the rebuild: it reads every block of the surviving disks.")
		} else {
			summary += fmt.Sprintf("; it can lose %d more.", red-lost)
		}
		vars["state"] = "missing"
	case failed != nil:
		sev = finding.Medium
		summary = fmt.Sprintf("md array %s: member %s has failed; a spare took its place, but the failed disk is still in the array and there is one spare fewer.", dev, failed.Name)
	default:
		return finding.Finding{}, false
	}
	if failed != nil {
		vars["member"], vars["state"] = failed.Name, "faulty"
		if d := diskOf(failed.Name); d != "" {
			vars["device"] = d
		}
	}
	f := finding.Finding{Mode: "FM-C8", Severity: sev, Subject: "md " + a.Name, Summary: summary}
	if a.Want > 0 {
		f.Evidence.Figures = append(f.Evidence.Figures, finding.Figure{Name: "members of " + dev + " present", Value: float64(a.Have), Limit: float64(a.Want), Source: source})
	}
	switch {
	case a.Action != "" && a.Pending != "":
		notes = append(notes, fmt.Sprintf("A %s is waiting (%s=%s).", a.Action, a.Action, a.Pending))
	case a.Action != "":
		s := fmt.Sprintf("%s running: %.1f%% done", a.Action, a.Percent)
		if a.SpeedKiB >= 0 {
			s += ", " + finding.HumanBytes(float64(a.SpeedKiB)*1024) + "/s"
		}
		if a.FinishMin >= 0 {
			s += fmt.Sprintf(", about %s to go", finding.HumanDuration(secondsDur(a.FinishMin*60)))
		}
		notes = append(notes, s+".")
		f.Evidence.Figures = append(f.Evidence.Figures, finding.Figure{Name: a.Action + " of " + dev, Value: a.Percent, Limit: 100, Unit: "%", Source: source})
	case lost > 0:
		notes = append(notes, "No rebuild is running: add a disk to start one.")
	}
	f.Evidence.Notes = notes
	f.Evidence.Vars = vars
	f.Evidence.Lines = []finding.Line{{Source: source, Text: fmt.Sprintf("%s : %s %s %s", a.Name, activeWord(a.Active), a.Level, members())}}
	if a.Map != "" {
		f.Evidence.Lines = append(f.Evidence.Lines, finding.Line{Source: source, Text: fmt.Sprintf("[%d/%d] [%s]", a.Want, a.Have, a.Map)})
	}
	return f, true
}

func activeWord(b bool) string {
	if b {
		return "active"
	}
	return "inactive"
}
