package storage

import (
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
)

// The kernel logs every DRBD state change ("drbd r0/0 drbd1: disk(
// UpToDate -> Outdated )", "drbd r0 peer: conn( Connected -> StandAlone
// )") and every md member failure ("md/raid1:md0: Disk failure on sdb1,
// disabling device."). The last such line for a finding's state says since
// when it has been true.

// drbdField is the state-change field of the kernel log a case is about.
func drbdField(vars map[string]string) (field, state string) {
	switch vars["case"] {
	case DRBDAllOutdated, DRBDInconsistent, DRBDDiskless:
		return "disk", vars["disk_state"]
	case DRBDHalfOpen, DRBDResync:
		return "repl", vars["replication"]
	case DRBDStandAlone, DRBDDisconnected:
		return "conn", vars["connection"]
	case DRBDPeerDisk:
		return "pdsk", vars["peer_disk"]
	}
	return "", ""
}

// SinceFromKernel sets a DRBD or md finding's Since from the last kernel
// line that records the change into its current state, and quotes that
// line. It leaves the finding alone when the log holds no such line.
func SinceFromKernel(f *finding.Finding, kernel []finding.Line) {
	v := f.Evidence.Vars
	var match func(string) bool
	switch f.Mode {
	case "FM-D8":
		field, state := drbdField(v)
		name := v["resource"]
		if field == "" || state == "" || name == "" {
			return
		}
		change := field + "( "
		to := "-> " + state + " )"
		match = func(t string) bool {
			i := strings.Index(t, "drbd "+name)
			if i < 0 {
				return false
			}
			rest := t[i+len("drbd "+name):]
			if rest != "" && rest[0] != '/' && rest[0] != ' ' && rest[0] != ':' {
				return false // another resource whose name starts alike
			}
			j := strings.Index(rest, change)
			return j >= 0 && strings.Contains(rest[j:], to)
		}
	case "FM-C8":
		array := strings.TrimPrefix(v["array"], "/dev/")
		if array == "" || v["member"] == "" {
			return
		}
		match = func(t string) bool {
			return strings.Contains(t, ":"+array+": Disk failure on "+v["member"])
		}
	default:
		return
	}
	for i := len(kernel) - 1; i >= 0; i-- {
		l := kernel[i]
		if l.Time == nil || !match(l.Text) {
			continue
		}
		t := *l.Time
		f.Since = &t
		f.Evidence.Lines = append(f.Evidence.Lines, l)
		return
	}
}
