package explain

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/pve"
)

var (
	reLockFile   = regexp.MustCompile(`can't lock file '(\S*?/lock/(?:lxc/pve-config-|qemu-server/lock-)(\d+)\.(?:lock|conf))' - got timeout`)
	reIsLocked   = regexp.MustCompile(`\b(CT|VM)(?: (\d+))? is locked \(([\w-]+)\)`)
	reConfigLock = regexp.MustCompile(`^lock: ([\w-]+)\s*$`)
	reGuestCmd   = regexp.MustCompile(`\b(pct|qm) [a-z-]+ (\d+)\b`)
)

// pveGuestLock reads what `pct` and `qm` print about a locked guest:
// `CT is locked (snapshot-delete)`, `VM 105 is locked (backup)`, a
// config's `lock: backup` line, and `can't lock file
// '/run/lock/lxc/pve-config-110.lock' - got timeout` (a process holds
// the config's file lock, which `pct unlock` cannot clear).
func pveGuestLock() Format {
	return Format{
		Name:    "pve-guest-lock",
		Command: "pct|qm COMMAND VMID (the error it printed), or qm|pct config VMID",
		Detect: func(in *Input) int {
			for _, l := range in.Lines {
				if reLockFile.MatchString(l) || reIsLocked.MatchString(l) {
					return 90
				}
			}
			if reGuestCmd.MatchString(in.Command) && strings.Contains(in.Command, " config ") {
				for _, l := range in.Lines {
					if reConfigLock.MatchString(l) {
						return 90
					}
				}
			}
			return 0
		},
		Explain: func(in *Input) (Result, error) {
			sc := pve.Scope{Node: in.Host, Now: in.Now}
			res := Result{Format: "pve-guest-lock"}
			seen := map[string]bool{}
			guestOf := func(i int, kind string) string {
				tool := map[string]string{"lxc": "pct", "qemu": "qm"}[kind]
				// A bash -x trace: "+ pct fstrim 101 …" just above, in
				// the same block of lines.
				for j := i; j >= 0; j-- {
					l := strings.TrimSpace(in.Lines[j])
					if j < i && (l == "" || strings.HasPrefix(l, "#")) {
						break
					}
					if m := reGuestCmd.FindStringSubmatch(l); m != nil && m[1] == tool {
						return m[2]
					}
				}
				if m := reGuestCmd.FindStringSubmatch(in.Command); m != nil && m[1] == tool {
					return m[2]
				}
				return ""
			}
			for i, l := range in.Lines {
				if m := reLockFile.FindStringSubmatch(l); m != nil {
					path := m[1]
					kind, what, tool := "lxc", "CT", "pct"
					if strings.Contains(path, "qemu-server") {
						kind, what, tool = "qemu", "VM", "qm"
					}
					if seen["file "+m[2]] {
						continue
					}
					seen["file "+m[2]] = true
					f := finding.Finding{
						Key: finding.MakeKey("FM-D1", "guest "+m[2]), Mode: "FM-D1", Severity: finding.Low, Subject: "guest " + m[2],
						Summary: fmt.Sprintf("A process holds the config file lock of %s %s (%s): every %s command on it, %s unlock included, waits and fails with \"got timeout\" until that process ends or is killed.", what, m[2], path, tool, tool),
						Evidence: finding.Evidence{
							Lines: []finding.Line{{Text: l}},
							Vars:  map[string]string{"guest": m[2], "guest_kind": kind, "lock": path, "lock_held": "file"},
						},
						Runbook: "FM-D1",
					}
					res.Findings = append(res.Findings, f)
					continue
				}
				kind, guest, lock := "", "", ""
				if m := reIsLocked.FindStringSubmatch(l); m != nil {
					kind, guest, lock = map[string]string{"CT": "lxc", "VM": "qemu"}[m[1]], m[2], m[3]
					if guest == "" {
						guest = guestOf(i, kind)
					}
				} else if m := reConfigLock.FindStringSubmatch(l); m != nil {
					lock = m[1]
					if g := reGuestCmd.FindStringSubmatch(in.Command); g != nil && strings.Contains(in.Command, " config ") {
						guest, kind = g[2], map[string]string{"pct": "lxc", "qm": "qemu"}[g[1]]
					}
				} else {
					continue
				}
				if guest == "" {
					res.Notes = append(res.Notes, fmt.Sprintf("%q names no guest: paste the command line with it", strings.TrimSpace(l)))
					continue
				}
				if seen[guest+" "+lock] {
					continue
				}
				seen[guest+" "+lock] = true
				fs := pve.DiagnoseLocks([]pve.GuestLock{{Guest: guest, Kind: kind, Node: in.Host, Lock: lock}}, sc)
				for j := range fs {
					fs[j].Evidence.Lines = append(fs[j].Evidence.Lines, finding.Line{Text: l})
				}
				res.Findings = append(res.Findings, fs...)
			}
			return res, nil
		},
	}
}
