package explain

import (
	"strings"

	"github.com/hinomi/hinomi/internal/pve"
)

// pvesmStatus is `pvesm status`.
func pvesmStatus() Format {
	return Format{
		Name:    "pvesm-status",
		Command: "pvesm status",
		Detect: func(in *Input) int {
			if strings.HasPrefix(in.Command, "pvesm status") {
				return 100
			}
			for _, l := range in.Lines {
				f := strings.Fields(l)
				if len(f) >= 6 && f[0] == "Name" && f[1] == "Type" && f[2] == "Status" && strings.Contains(l, "Available") {
					return 100
				}
			}
			return 0
		},
		Explain: func(in *Input) (Result, error) {
			st, err := pve.ParseStorageStatus(in.Text)
			if err != nil {
				return Result{}, err
			}
			return Result{Format: "pvesm-status", Findings: pve.DiagnoseStorage(st, pve.Scope{Node: in.Host, Now: in.Now})}, nil
		},
	}
}
