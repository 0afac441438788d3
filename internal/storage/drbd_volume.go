package storage

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
)

// DRBDMount is a filesystem mounted from a DRBD device, with its usage.
type DRBDMount struct {
	Device     string // /dev/drbd8 or /dev/drbd/by-res/r0/0
	Mountpoint string
	Resource   string // "" when no status names the minor
	Used, Size uint64 // bytes; Size is what df counts (used + available)
}

// reDRBDDev matches the device of a DRBD mount.
var reDRBDDev = regexp.MustCompile(`^/dev/drbd(?:(\d+)|/by-res/([^/]+)/\d+)$`)

// DRBDDevice reports whether a mount's source is a DRBD device, with its
// minor (-1 when named by resource) and resource name (when in the path).
func DRBDDevice(source string) (minor int, resource string, ok bool) {
	m := reDRBDDev.FindStringSubmatch(source)
	if m == nil {
		return 0, "", false
	}
	if m[1] != "" {
		minor, _ = strconv.Atoi(m[1])
		return minor, "", true
	}
	return -1, m[2], true
}

// ResourceOfMinor names the resource whose volume has a minor.
func ResourceOfMinor(rs []DRBDResource, minor int) string {
	for _, r := range rs {
		for _, v := range r.Volumes {
			if v.Minor == minor && r.Name != "" {
				return r.Name
			}
		}
	}
	return ""
}

// The thresholds of FM-D9: the seed's Zabbix trigger fires at 90 %.
const (
	DRBDFullMedium = 90.0
	DRBDFullHigh   = 97.0
)

// DiagnoseDRBDMount is FM-D9: a DRBD-backed volume filling up. A DRBD
// volume has a fixed size, independent of the host's disk, so it fills
// while the host looks fine.
func DiagnoseDRBDMount(m DRBDMount) (finding.Finding, bool) {
	if m.Size == 0 {
		return finding.Finding{}, false
	}
	pct := 100 * float64(m.Used) / float64(m.Size)
	sev := finding.Severity(0)
	switch {
	case pct >= DRBDFullHigh:
		sev = finding.High
	case pct >= DRBDFullMedium:
		sev = finding.Medium
	}
	if sev == 0 {
		return finding.Finding{}, false
	}
	vars := map[string]string{"used_pct": fmt.Sprintf("%.0f", pct), "device": m.Device, "mount": m.Mountpoint}
	subject := "drbd volume " + m.Mountpoint
	what := m.Mountpoint
	// Docker mounts a volume at /var/lib/docker/volumes/NAME/_data.
	if rest, ok := strings.CutPrefix(m.Mountpoint, "/var/lib/docker/volumes/"); ok {
		if name, ok := strings.CutSuffix(rest, "/_data"); ok && !strings.Contains(name, "/") {
			vars["volume"] = name
			subject = "drbd volume " + name
			what = "Docker volume " + name
		}
	}
	if m.Resource != "" {
		vars["resource"] = m.Resource
	}
	res := ""
	if m.Resource != "" {
		res = ", DRBD resource " + m.Resource
	}
	return finding.Finding{
		Mode: "FM-D9", Severity: sev, Subject: subject,
		Summary: fmt.Sprintf("%s (%s%s) is %.0f%% full, %s left: a DRBD volume does not grow with the host's disk, and at 100%% the application's writes fail.", what, m.Device, res, pct, finding.HumanBytes(float64(m.Size-m.Used))),
		Evidence: finding.Evidence{
			Figures: []finding.Figure{{Name: "volume " + m.Mountpoint, Value: float64(m.Used), Limit: float64(m.Size), Unit: "bytes", Source: "statfs " + m.Mountpoint}},
			Vars:    vars,
		},
	}, true
}
