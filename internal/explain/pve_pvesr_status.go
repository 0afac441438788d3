package explain

import (
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/pve"
)

// pvesrStatus is `pvesr status`.
func pvesrStatus() Format {
	return Format{
		Name:    "pvesr-status",
		Command: "pvesr status",
		Detect: func(in *Input) int {
			if strings.HasPrefix(in.Command, "pvesr status") {
				return 100
			}
			for _, l := range in.Lines {
				if strings.Contains(l, "JobID") && strings.Contains(l, "FailCount") {
					return 100
				}
			}
			return 0
		},
		Explain: func(in *Input) (Result, error) {
			// pvesr prints the node's local time without a zone; a paste
			// does not say which, so UTC is assumed.
			jobs, err := pve.ParseReplStatus(in.Text, time.UTC)
			res := Result{Format: "pvesr-status"}
			if err != nil {
				if len(jobs) == 0 {
					return Result{}, err
				}
				res.Notes = append(res.Notes, err.Error())
			}
			res.Notes = append(res.Notes, "LastSync is read as UTC: pvesr prints the node's local time without a zone.")
			res.Findings = pve.DiagnoseReplication(jobs, pve.Scope{Node: in.Host, Now: in.Now})
			return res, nil
		},
	}
}
