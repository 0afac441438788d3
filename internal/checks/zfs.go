package checks

import (
	"context"
	"fmt"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/storage"
)

// checkZFS is FM-C8 for ZFS: every pool's vdevs (DEGRADED, FAULTED,
// UNAVAIL, REMOVED, OFFLINE members named), error counters, permanent
// data errors, resilver and scrub progress and the age of the last scrub,
// with each pool's capacity. A host without the zfs module costs one
// failed read.
func checkZFS(ctx context.Context, env *Env) (Result, error) {
	var res Result
	if _, err := env.Src.ReadFile("/sys/module/zfs/version"); err != nil {
		if host.Missing(err) {
			return res, ErrNotApplicable
		}
		return res, fmt.Errorf("zfs module: %w", err)
	}
	out, err := env.Src.Command(ctx, "zpool-status", "zpool", "status", "-p")
	if err == nil && out.ExitCode != 0 && len(out.Stdout) == 0 {
		// ZFS before 0.7 has no -p.
		out, err = env.Src.Command(ctx, "zpool-status-plain", "zpool", "status")
	}
	if err != nil {
		return res, fmt.Errorf("zpool status: %w", err)
	}
	pools, _ := storage.ParseZpoolStatus(out.Stdout)
	if len(pools) == 0 {
		if strings.Contains(string(out.Stdout), "no pools available") || len(strings.TrimSpace(string(out.Stdout))) == 0 {
			return res, ErrNotApplicable
		}
		return res, fmt.Errorf("zpool status: no pool in its output (exit %d)", out.ExitCode)
	}
	var usage []storage.PoolUsage
	if l, err := env.Src.Command(ctx, "zpool-list", storage.ZpoolListArgs...); err == nil && l.ExitCode == 0 {
		usage = storage.ParseZpoolList(l.Stdout)
	} else if err != nil {
		res.Blind = append(res.Blind, "capacity of the ZFS pools: "+err.Error())
	}
	res.Findings = storage.DiagnoseZFS(pools, usage, env.Now, "zpool status")
	var fullest *finding.Figure
	for _, u := range usage {
		f := finding.Figure{Name: "fullest ZFS pool (" + u.Name + ")", Value: float64(u.Alloc), Limit: float64(u.Size), Unit: "bytes", Source: "zpool list"}
		if fullest == nil || f.Percent() > fullest.Percent() {
			fullest = &f
		}
	}
	if fullest != nil {
		res.Headroom = append(res.Headroom, *fullest)
	}
	return res, nil
}
