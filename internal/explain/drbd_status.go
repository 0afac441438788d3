package explain

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/hinomi/hinomi/internal/storage"
)

// reDRBDResLine is the first line of a resource in drbdadm status.
var reDRBDResLine = regexp.MustCompile(`(?m)^\S+ role:(?:Primary|Secondary|Unknown)\b`)

// DRBDStatus reads `drbdadm status` (and `drbdsetup status`, verbose or
// not) of DRBD 9, from one node or several pasted together.
var DRBDStatus = Format{
	Name:    "drbdadm-status",
	Command: "drbdadm status [RESOURCE]",
	Detect: func(in *Input) int {
		if strings.HasPrefix(in.Command, "drbdadm status") || strings.HasPrefix(in.Command, "drbdsetup status") && !strings.Contains(in.Command, "--json") {
			return 100
		}
		if reDRBDResLine.MatchString(in.Text) && strings.Contains(in.Text, "disk:") {
			return 90
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		rs, skipped := storage.ParseDRBDStatus([]byte(in.Text))
		if len(rs) == 0 {
			return Result{}, errors.New("no DRBD resource line (\"NAME role:...\") in the text")
		}
		views := storage.LatestViews(rs)
		for i := range views {
			if views[i].Node == "" && len(views) == 1 {
				views[i].Node = in.Host
			}
		}
		res := Result{Findings: storage.DiagnoseDRBD(views, nil, "drbdadm status")}
		if n := len(rs) - len(views); n > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("%d earlier readings of the same node's view were superseded by later ones in the paste.", n))
		}
		res.Notes = append(res.Notes, drbdNotes(views, skipped)...)
		return res, nil
	},
}

// drbdNotes says what a DRBD paste cannot tell.
func drbdNotes(views []storage.DRBDResource, skipped int) []string {
	var notes []string
	for _, v := range views {
		if v.Node != "" {
			notes = append(notes, fmt.Sprintf("The view of %s is from %s.", storage.DRBDSubject(v), v.Node))
		}
	}
	if skipped > 0 {
		notes = append(notes, fmt.Sprintf("%d lines were not DRBD status and were skipped.", skipped))
	}
	notes = append(notes, "One reading cannot tell whether a resync moves or a WFBitMapS lasts: hinomi doctor reads twice.")
	return notes
}
