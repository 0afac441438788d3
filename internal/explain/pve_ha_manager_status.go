package explain

import (
	"strings"

	"github.com/hinomi/hinomi/internal/pve"
)

// haManagerStatus is `ha-manager status`.
func haManagerStatus() Format {
	return Format{
		Name:    "ha-manager-status",
		Command: "ha-manager status",
		Detect: func(in *Input) int {
			if strings.HasPrefix(in.Command, "ha-manager status") {
				return 100
			}
			quorum, other := false, false
			for _, l := range in.Lines {
				t := strings.TrimSpace(l)
				switch {
				case strings.HasPrefix(t, "quorum "):
					quorum = true
				case strings.HasPrefix(t, "lrm ") && strings.Contains(t, "("),
					strings.HasPrefix(t, "master ") && !strings.Contains(t, ":"),
					strings.HasPrefix(t, "service vm:"), strings.HasPrefix(t, "service ct:"):
					other = true
				}
			}
			switch {
			case quorum && other:
				return 95
			case other:
				return 60
			}
			return 0
		},
		Explain: func(in *Input) (Result, error) {
			s, err := pve.ParseHAStatus(in.Text)
			if err != nil {
				return Result{}, err
			}
			res := Result{Format: "ha-manager-status", Findings: pve.DiagnoseHA(s, pve.Scope{Node: in.Host, Now: in.Now})}
			if !s.QuorumOK() {
				res.Notes = append(res.Notes, "ha-manager says quorum "+s.Quorum+": without quorum HA can do nothing; `pvecm status` shows the votes.")
			}
			return res, nil
		},
	}
}
