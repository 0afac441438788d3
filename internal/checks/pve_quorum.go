package checks

import (
	"context"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/pve"
)

// checkPVEQuorum is FM-D5: the local corosync's quorum view (`corosync-
// quorumtool -s`, or `pvecm status`): no quorum, or quorum with nodes
// missing, named from corosync.conf's nodelist.
func checkPVEQuorum(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := clusterNode(ctx, env)
	if err != nil {
		return res, err
	}
	if st.Quorum == nil {
		res.Blind = append(res.Blind, "corosync quorum: "+st.QuorumErr.Error())
		return res, nil
	}
	q := st.Quorum
	var lostAt time.Time
	if !q.Quorate {
		evs, _ := st.clusterLog(ctx, env)
		if t, open := pve.LastQuorumLoss(evs); open {
			lostAt = t
		}
	}
	res.Findings = pve.DiagnoseQuorum(q, st.Scope, lostAt)
	res.Headroom = append(res.Headroom, finding.Figure{Name: "corosync votes present", Value: float64(q.TotalVotes), Limit: float64(q.ExpectedVotes), Source: "corosync-quorumtool -s"})
	return res, nil
}
