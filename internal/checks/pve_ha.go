package checks

import (
	"context"

	"github.com/hinomi/hinomi/internal/pve"
)

// checkPVEHA reads `ha-manager status` (FM-D7): nodes whose LRM the
// manager no longer hears, resources being fenced or recovered, resources
// HA gave up on (error).
func checkPVEHA(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := pveNode(ctx, env)
	if err != nil {
		return res, err
	}
	if !st.Corosync {
		return res, ErrNotApplicable
	}
	if b, err := env.Src.ReadFile("/etc/pve/ha/resources.cfg"); err != nil || len(b) == 0 {
		return res, ErrNotApplicable // no HA resources: nothing to fence or recover
	}
	out, err := pveCommand(ctx, env, "ha-manager-status", "ha-manager", "status")
	if err != nil {
		res.Blind = append(res.Blind, "HA state (ha-manager status: "+err.Error()+")")
		return res, nil
	}
	s, err := pve.ParseHAStatus(string(out.Stdout))
	if err != nil {
		res.Blind = append(res.Blind, "HA state (ha-manager status: "+err.Error()+")")
		return res, nil
	}
	res.Findings = pve.DiagnoseHA(s, st.Scope)
	return res, nil
}
