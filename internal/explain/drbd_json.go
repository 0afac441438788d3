package explain

import (
	"strings"

	"github.com/hinomi/hinomi/internal/storage"
)

// DRBDJSON reads `drbdsetup status --json` of DRBD 9.
var DRBDJSON = Format{
	Name:    "drbdsetup-status-json",
	Command: "drbdsetup status --json",
	Detect: func(in *Input) int {
		t := strings.TrimSpace(in.Text)
		if strings.Contains(in.Command, "drbdsetup status") && strings.Contains(in.Command, "--json") {
			return 100
		}
		if strings.Contains(t, `"disk-state"`) && (strings.Contains(t, `"connections"`) || strings.Contains(t, `"devices"`)) {
			return 95
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		rs, truncated, err := storage.ParseDRBDJSON([]byte(in.Text))
		if err != nil {
			return Result{}, err
		}
		res := Result{Findings: storage.DiagnoseDRBD(rs, nil, "drbdsetup status --json")}
		if truncated {
			res.Notes = append(res.Notes, "The JSON is cut off: only what precedes the cut was read.")
		}
		res.Notes = append(res.Notes, drbdNotes(rs, 0)...)
		return res, nil
	},
}
