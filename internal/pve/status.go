package pve

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// HAStatus is `ha-manager status`.
type HAStatus struct {
	// Quorum is the word after "quorum": "OK" when the node has quorum.
	Quorum    string
	HasQuorum bool
	Master    string
	// MasterState is the CRM master's state ("active", "idle" …).
	MasterState string
	// Fencing is the "fencing …" line of PVE 9 ("armed (CRM watchdog active)").
	Fencing  string
	LRMs     []HALRM
	Services []HAService
}

// HALRM is one node's local resource manager.
type HALRM struct {
	Node string
	// State is the first item in parentheses: "active", "idle",
	// "maintenance mode", "old timestamp - dead?", "lost_agent_lock" …
	State string
	// Watchdog is "watchdog active" / "watchdog standby" when printed.
	Watchdog string
	Time     string
}

// Dead reports whether the CRM stopped hearing from this LRM.
func (l HALRM) Dead() bool { return strings.Contains(l.State, "dead") }

// HAService is one HA resource: "service vm:100 (pve1, started)".
type HAService struct {
	SID   string // vm:100, ct:101
	Node  string
	State string
}

// ParseHAStatus reads `ha-manager status` (PVE 4 to 9).
func ParseHAStatus(text string) (*HAStatus, error) {
	s := &HAStatus{}
	seen := 0
	for _, l := range lines(text) {
		t := strings.TrimSpace(l)
		if t == "" || isPrompt(l) {
			continue
		}
		kind, rest, _ := strings.Cut(t, " ")
		name, paren, _ := strings.Cut(strings.TrimSpace(rest), " ")
		items := parenItems(paren)
		switch kind {
		case "quorum":
			s.Quorum, s.HasQuorum = strings.TrimSpace(rest), true
		case "master":
			s.Master = name
			if len(items) > 0 {
				s.MasterState = items[0]
			}
		case "fencing":
			s.Fencing = strings.TrimSpace(rest)
		case "lrm":
			lrm := HALRM{Node: name}
			for i, it := range items {
				switch {
				case i == 0:
					lrm.State = it
				case strings.HasPrefix(it, "watchdog"):
					lrm.Watchdog = it
				default:
					lrm.Time = it
				}
			}
			s.LRMs = append(s.LRMs, lrm)
		case "service":
			svc := HAService{SID: name}
			if len(items) > 0 {
				svc.Node = items[0]
			}
			if len(items) > 1 {
				svc.State = items[1]
			}
			s.Services = append(s.Services, svc)
		default:
			continue
		}
		seen++
	}
	if seen == 0 {
		return nil, errors.New("no `ha-manager status` lines (quorum, master, lrm, service)")
	}
	return s, nil
}

// QuorumOK reports whether ha-manager said "quorum OK".
func (s *HAStatus) QuorumOK() bool { return !s.HasQuorum || s.Quorum == "OK" }

// parenItems splits "(active, watchdog active, Mon Jun  8 15:31:01 2026)".
func parenItems(s string) []string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "(") {
		return nil
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "("), ")")
	var out []string
	for _, it := range strings.Split(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// ReplJob is one row of `pvesr status`.
type ReplJob struct {
	ID      string // "100-0"
	Guest   string // "100"
	Enabled bool
	// Target is the node the job replicates to ("local/pve2" → "pve2").
	Target   string
	LastSync time.Time // zero when it never synced ("-")
	NextSync string    // a time or "pending"
	Duration string
	// FailCount is how many runs in a row failed.
	FailCount int
	// State is "OK", "SYNCING" or the last error, joined across the line
	// breaks the error text carries.
	State string
}

// Failed reports whether the job's last runs failed.
func (j ReplJob) Failed() bool {
	return j.FailCount > 0 || (j.State != "" && j.State != "OK" && j.State != "SYNCING")
}

var jobID = regexp.MustCompile(`^([1-9][0-9]{2,8})-\d{1,9}$`)

// pvesrTime is the layout of LastSync and NextSync: the node's local time.
const pvesrTime = "2006-01-02_15:04:05"

// ParseReplStatus reads `pvesr status`. Times are read in loc (the node's
// zone; pvesr prints local time without a zone). A line that does not
// start with a job ID continues the previous job's error text.
func ParseReplStatus(text string, loc *time.Location) ([]ReplJob, error) {
	var out []ReplJob
	header := false
	var bad []string
	for i, l := range lines(text) {
		t := strings.TrimSpace(l)
		if t == "" || isPrompt(l) {
			continue
		}
		f := strings.Fields(t)
		if f[0] == "JobID" {
			header = true
			continue
		}
		if !jobID.MatchString(f[0]) {
			if len(out) > 0 && out[len(out)-1].Failed() {
				out[len(out)-1].State += " " + t
			} else {
				bad = append(bad, strconv.Itoa(i+1))
			}
			continue
		}
		j, err := parseReplRow(f, loc)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%d (%v)", i+1, err))
			continue
		}
		out = append(out, j)
	}
	if len(out) == 0 && !header {
		return nil, errors.New("no `pvesr status` rows (JobID Enabled Target LastSync NextSync Duration FailCount State)")
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("lines not read: %s", strings.Join(bad, ", "))
	}
	return out, nil
}

func parseReplRow(f []string, loc *time.Location) (ReplJob, error) {
	if len(f) < 7 {
		return ReplJob{}, fmt.Errorf("%d columns, want 8", len(f))
	}
	j := ReplJob{ID: f[0], Guest: jobID.FindStringSubmatch(f[0])[1], Enabled: strings.EqualFold(f[1], "Yes") || f[1] == "1"}
	j.Target = f[2]
	if _, node, ok := strings.Cut(f[2], "/"); ok {
		j.Target = node
	}
	if f[3] != "-" {
		t, err := time.ParseInLocation(pvesrTime, f[3], loc)
		if err != nil {
			return j, fmt.Errorf("LastSync %q", f[3])
		}
		j.LastSync = t
	}
	j.NextSync, j.Duration = f[4], f[5]
	rest := f[6:]
	if len(rest) > 0 && rest[0] == "s" { // "2.96 s" in some pastes
		j.Duration += " s"
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return j, errors.New("no FailCount")
	}
	n, err := strconv.Atoi(rest[0])
	if err != nil {
		return j, fmt.Errorf("FailCount %q", rest[0])
	}
	j.FailCount = n
	j.State = strings.Join(rest[1:], " ")
	return j, nil
}

// Storage is one row of `pvesm status`.
type Storage struct {
	Name, Type, Status string
	// Total, Used, Available in KiB; UsedPct as printed.
	Total, Used, Available int64
	UsedPct                float64
}

// Down reports whether PVE cannot use the storage right now. A disabled
// storage is off on purpose.
func (s Storage) Down() bool { return s.Status != "active" && s.Status != "disabled" }

// ParseStorageStatus reads `pvesm status` (PVE 5 to 9, with or without the
// "(KiB)" header). A truncated first row is skipped.
func ParseStorageStatus(text string) ([]Storage, error) {
	var out []Storage
	header := false
	for _, l := range lines(text) {
		t := strings.TrimSpace(l)
		if t == "" || isPrompt(l) {
			continue
		}
		f := strings.Fields(t)
		if f[0] == "Name" && len(f) > 2 && f[1] == "Type" {
			header = true
			continue
		}
		if len(f) < 3 || !storageStatus(f[2]) {
			continue
		}
		s := Storage{Name: f[0], Type: f[1], Status: f[2]}
		if len(f) >= 7 {
			s.Total, _ = strconv.ParseInt(f[3], 10, 64)
			s.Used, _ = strconv.ParseInt(f[4], 10, 64)
			s.Available, _ = strconv.ParseInt(f[5], 10, 64)
			s.UsedPct, _ = strconv.ParseFloat(strings.TrimSuffix(f[6], "%"), 64)
		}
		out = append(out, s)
	}
	if len(out) == 0 && !header {
		return nil, errors.New("no `pvesm status` rows (Name Type Status Total Used Available %)")
	}
	return out, nil
}

func storageStatus(s string) bool {
	switch s {
	case "active", "inactive", "disabled", "unknown":
		return true
	}
	return false
}
