package explain

import (
	"errors"
	"regexp"
	"strings"

	"github.com/hinomi/hinomi/internal/storage"
)

var reProcDRBDLine = regexp.MustCompile(`(?m)^\s*\d+: cs:\S+`)

// ProcDRBD reads /proc/drbd: DRBD 8's per-device state (DRBD 9 prints
// only its version there).
var ProcDRBD = Format{
	Name:    "proc-drbd",
	Command: "cat /proc/drbd",
	Detect: func(in *Input) int {
		switch {
		case reProcDRBDLine.MatchString(in.Text):
			return 95
		case strings.Contains(in.Command, "/proc/drbd"):
			return 90
		case strings.Contains(in.Text, "version: ") && (strings.Contains(in.Text, "GIT-hash:") || strings.Contains(in.Text, "srcversion:")) && strings.Contains(in.Text, "api:"):
			return 60
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		rs, version := storage.ParseProcDRBD([]byte(in.Text))
		if len(rs) == 0 {
			if strings.HasPrefix(version, "9") {
				return Result{}, errors.New("DRBD 9 prints only its version in /proc/drbd: paste `drbdadm status` or `drbdsetup status --json` instead")
			}
			return Result{}, errors.New("no DRBD device line (\" 1: cs:...\") in the text")
		}
		res := Result{Findings: storage.DiagnoseDRBD(rs, nil, "/proc/drbd")}
		res.Notes = append(res.Notes, "/proc/drbd names devices by minor, not by resource: `drbdadm status` gives the names the runbook needs.")
		res.Notes = append(res.Notes, drbdNotes(rs, 0)...)
		return res, nil
	},
}
