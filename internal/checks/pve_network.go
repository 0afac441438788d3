package checks

import (
	"context"

	"github.com/hinomi/hinomi/internal/pve"
)

// checkPVENetwork is FM-D6: the last day of corosync, knet, pmxcfs and
// pve-ha lines, trended: token losses and link-downs per peer and per
// hour, membership changes, quorum flaps, cpg_send_message storms.
func checkPVENetwork(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := clusterNode(ctx, env)
	if err != nil {
		return res, err
	}
	evs, source := st.clusterLog(ctx, env)
	if source == "" {
		res.Blind = append(res.Blind, "the corosync/pmxcfs log (no journal for their units and no /var/log/corosync/corosync.log)")
		return res, nil
	}
	t := pve.TrendOf(evs, env.Now, clusterLogWindow)
	res.Findings = pve.DiagnoseClusterLog(t, st.Scope)
	return res, nil
}
