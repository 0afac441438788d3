package checks

import (
	"context"
	"fmt"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/storage"
)

// checkMDRAID is FM-C8 for Linux software RAID: /proc/mdstat's degraded
// arrays ([U_]), failed members (F), inactive arrays, and the progress,
// speed and finish estimate of a rebuild. A host without the md driver
// has no /proc/mdstat.
func checkMDRAID(_ context.Context, env *Env) (Result, error) {
	var res Result
	b, err := env.Src.ReadFile("/proc/mdstat")
	if err != nil {
		if host.Missing(err) {
			return res, ErrNotApplicable
		}
		return res, fmt.Errorf("/proc/mdstat: %w", err)
	}
	arrays, _ := storage.ParseMdstat(b)
	if len(arrays) == 0 {
		return res, ErrNotApplicable
	}
	res.Findings = storage.DiagnoseMD(arrays, "/proc/mdstat")
	for i := range res.Findings {
		if env.Kernel != nil {
			storage.SinceFromKernel(&res.Findings[i], env.Kernel.Lines)
		}
	}
	whole := 0
	for _, a := range arrays {
		if a.Active && a.Have >= a.Want {
			whole++
		}
	}
	res.Headroom = append(res.Headroom, finding.Figure{Name: "md arrays with every member", Value: float64(whole), Limit: float64(len(arrays)), Source: "/proc/mdstat"})
	return res, nil
}
