package storage

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// ScrubMaxAge is how old the last scrub may be before it is worth a word:
// Debian and Proxmox scrub every pool monthly, so twice that is a scrub
// that stopped running.
const ScrubMaxAge = 62 * 24 * time.Hour

// lost reports whether a vdev no longer serves data.
func lost(v *Vdev) bool {
	switch v.State {
	case "UNAVAIL", "FAULTED", "REMOVED", "OFFLINE", "SPLIT":
		return true
	case "DEGRADED":
		// A replacing or spare vdev that is not ONLINE has no whole copy
		// yet; a DEGRADED leaf ("too many errors") still serves data.
		return len(v.Children) > 0 && (strings.HasPrefix(v.Name, "replacing") || strings.HasPrefix(v.Name, "spare"))
	}
	return false
}

// parity is how many members of a top-level vdev may go before data is
// lost.
func parity(v *Vdev) int {
	n := v.Name
	switch {
	case strings.HasPrefix(n, "mirror"):
		return len(v.Children) - 1
	case strings.HasPrefix(n, "raidz") || strings.HasPrefix(n, "draid"):
		k := strings.TrimPrefix(strings.TrimPrefix(n, "raidz"), "draid")
		if k == "" || k[0] < '1' || k[0] > '3' {
			return 1
		}
		return int(k[0] - '0')
	}
	return 0 // a single disk
}

// culprit is the member to name: the deepest lost leaf, or failing one.
func culprit(v *Vdev) *Vdev {
	for _, c := range v.Children {
		if x := culprit(c); x != nil {
			return x
		}
	}
	if len(v.Children) == 0 && (lost(v) || v.State == "DEGRADED") {
		return v
	}
	return nil
}

// errored is the deepest vdev with read, write or checksum errors: the
// disk when its counters show them, else the vdev above it (a raidz can
// count checksum errors that no single disk does).
func errored(v *Vdev) *Vdev {
	for _, c := range v.Children {
		if x := errored(c); x != nil {
			return x
		}
	}
	if v.Read > 0 || v.Write > 0 || v.Cksum > 0 {
		return v
	}
	return nil
}

// DiagnoseZFS judges each pool of `zpool status`, with the capacities of
// `zpool list` when known, at time now (zero when unknown: the age of the
// last scrub is then not judged).
func DiagnoseZFS(pools []Pool, usage []PoolUsage, now time.Time, source string) []finding.Finding {
	var out []finding.Finding
	for _, p := range pools {
		if f, ok := diagnosePool(p, usage, now, source); ok {
			out = append(out, f)
		}
	}
	return dedupe(out)
}

func diagnosePool(p Pool, usage []PoolUsage, now time.Time, source string) (finding.Finding, bool) {
	f := finding.Finding{Mode: "FM-C8", Subject: "zpool " + p.Name}
	vars := map[string]string{"pool": p.Name, "kind": "zfs"}
	var notes []string
	sev := finding.Severity(0)
	summary := ""
	raise := func(s finding.Severity, words string) {
		if s > sev {
			sev, summary = s, words
		}
	}
	var who *Vdev
	worstMargin := 99
	if p.Root != nil {
		for _, top := range p.Root.Children {
			gone := 0
			for _, c := range top.Children {
				if lost(c) {
					gone++
				}
			}
			if len(top.Children) == 0 && lost(top) {
				gone = 1
			}
			if gone == 0 && (top.State == "ONLINE" || top.State == "") {
				continue // healthy, or a row that is not a vdev ("<skipping …>")
			}
			margin := parity(top) - gone
			c := culprit(top)
			if c == nil {
				c = top
			}
			if margin < worstMargin {
				worstMargin, who = margin, c
			}
			label := top.Name
			switch {
			case gone == 0:
				raise(finding.High, fmt.Sprintf("ZFS pool %s is %s: %s in %s is %s%s.", p.Name, p.State, c.Name, label, c.State, noteOf(c)))
			case margin < 0:
				raise(finding.Catastrophic, fmt.Sprintf("ZFS pool %s has lost %s: %d of its members are gone (%s %s), more than it can survive.", p.Name, label, gone, c.Name, c.State))
			case margin == 0:
				raise(finding.Catastrophic, fmt.Sprintf("ZFS pool %s is %s: %s is %s%s, and %s has no redundancy left; one more failure there loses the pool.", p.Name, p.State, c.Name, c.State, noteOf(c), label))
			default:
				raise(finding.High, fmt.Sprintf("ZFS pool %s is %s: %s is %s%s; %s can lose %d more.", p.Name, p.State, c.Name, c.State, noteOf(c), label, margin))
			}
		}
	}
	switch p.State {
	case "FAULTED", "UNAVAIL", "SUSPENDED":
		raise(finding.Catastrophic, fmt.Sprintf("ZFS pool %s is %s: its data cannot be read.", p.Name, p.State))
	case "DEGRADED":
		raise(finding.High, fmt.Sprintf("ZFS pool %s is DEGRADED.", p.Name))
	}
	for _, s := range p.Sections {
		for _, c := range s.Children {
			if lost(c) || c.State == "DEGRADED" {
				raise(finding.Medium, fmt.Sprintf("ZFS pool %s: %s device %s is %s%s.", p.Name, s.Name, c.Name, c.State, noteOf(c)))
				if who == nil {
					who = c
				}
			}
		}
	}
	if p.DataErrors != 0 {
		n := "some"
		if p.DataErrors > 0 {
			n = strconv.Itoa(p.DataErrors)
		}
		raise(finding.High, fmt.Sprintf("ZFS pool %s has %s permanent data errors: those blocks are already lost; zpool status -v lists the files.", p.Name, n))
		notes = append(notes, "errors: "+strings.ReplaceAll(p.Errors, "\n", " "))
	}
	if p.Root != nil {
		if e := errored(p.Root); e != nil {
			raise(finding.Medium, fmt.Sprintf("ZFS pool %s: %s has %d read, %d write and %d checksum errors; ZFS repaired them from redundancy, but the disk or its cable is suspect.", p.Name, e.Name, max(e.Read, 0), max(e.Write, 0), max(e.Cksum, 0)))
			if who == nil {
				who = e
			}
		}
	}
	switch {
	case p.ScanRunning:
		s := fmt.Sprintf("%s in progress", p.ScanKind)
		if p.ScanPercent >= 0 {
			s += fmt.Sprintf(", %.1f%% done", p.ScanPercent)
			f.Evidence.Figures = append(f.Evidence.Figures, finding.Figure{Name: p.ScanKind + " of " + p.Name, Value: p.ScanPercent, Limit: 100, Unit: "%", Source: source})
		}
		if p.ScanToGo != "" {
			s += ", " + p.ScanToGo + " to go"
		}
		if !p.ScanTime.IsZero() {
			s += ", started " + p.ScanTime.Format("2006-01-02 15:04")
		}
		notes = append(notes, s+".")
	case now.IsZero():
		// A pasted output: the time it was taken is unknown, so is the
		// age of its last scrub.
	case p.ScanKind == "scrub" && !p.ScanTime.IsZero() && now.Sub(p.ScanTime) > ScrubMaxAge:
		raise(finding.Low, fmt.Sprintf("ZFS pool %s was last scrubbed %s ago: silent corruption on a disk is found only by a scrub, before a second failure makes it unrepairable.", p.Name, finding.HumanDuration(now.Sub(p.ScanTime))))
	case p.Scan == "none requested":
		raise(finding.Low, fmt.Sprintf("ZFS pool %s has never been scrubbed: silent corruption on a disk is found only by a scrub.", p.Name))
	}
	if sev == 0 {
		return f, false
	}
	for _, u := range usage {
		if u.Name == p.Name {
			f.Evidence.Figures = append(f.Evidence.Figures, finding.Figure{Name: "pool " + p.Name + " allocated", Value: float64(u.Alloc), Limit: float64(u.Size), Unit: "bytes", Source: "zpool list"})
		}
	}
	if who != nil {
		vars["member"], vars["state"] = who.Name, who.State
		if d := diskOf(who.Name); d != "" {
			vars["device"] = d
		} else if was, ok := strings.CutPrefix(who.Note, "was "); ok {
			if d := diskOf(was); d != "" {
				vars["device"] = d
			}
		}
	}
	if worstMargin == 0 || worstMargin < 0 {
		notes = append(notes, "No redundancy is left in part of the pool: back up now, before replacing anything.")
	}
	if p.Status != "" {
		notes = append(notes, "status: "+p.Status)
	}
	f.Severity, f.Summary = sev, summary
	f.Evidence.Vars = vars
	f.Evidence.Notes = append(f.Evidence.Notes, notes...)
	f.Evidence.Lines = poolLines(p, source)
	return f, true
}

func noteOf(v *Vdev) string {
	if v.Note == "" {
		return ""
	}
	return " (" + v.Note + ")"
}

// poolLines are the rows of the configuration that are not healthy, with
// the pool's own row, for the evidence.
func poolLines(p Pool, source string) []finding.Line {
	ls := []finding.Line{{Source: source, Text: "pool: " + p.Name + " state: " + p.State}}
	if p.Scan != "" {
		ls = append(ls, finding.Line{Source: source, Text: "scan: " + strings.ReplaceAll(p.Scan, "\n", " ")})
	}
	var walk func(v *Vdev, depth int)
	walk = func(v *Vdev, depth int) {
		if len(ls) > 14 {
			return
		}
		if v.State != "" && v.State != "ONLINE" && v.State != "AVAIL" || v.Read > 0 || v.Write > 0 || v.Cksum > 0 {
			s := strings.Repeat("  ", depth) + v.Name + " " + v.State
			if v.Read >= 0 {
				s += fmt.Sprintf(" %d %d %d", v.Read, v.Write, v.Cksum)
			}
			if v.Note != "" {
				s += " " + v.Note
			}
			ls = append(ls, finding.Line{Source: source, Text: s})
		}
		for _, c := range v.Children {
			walk(c, depth+1)
		}
	}
	if p.Root != nil {
		walk(p.Root, 0)
	}
	for _, s := range p.Sections {
		walk(s, 0)
	}
	return ls
}
