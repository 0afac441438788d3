package checks

import (
	"context"
	"time"

	"github.com/hinomi/hinomi/internal/pve"
)

// checkPVEReplication is FM-D4: `pvesr status` jobs that keep failing, with
// the error joined across its line breaks and the age of the last good
// sync.
func checkPVEReplication(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := pveNode(ctx, env)
	if err != nil {
		return res, err
	}
	if b, err := env.Src.ReadFile("/etc/pve/replication.cfg"); err != nil || len(b) == 0 {
		return res, ErrNotApplicable
	}
	out, err := pveCommand(ctx, env, "pvesr-status", "pvesr", "status")
	if err != nil {
		res.Blind = append(res.Blind, "replication state (pvesr status: "+err.Error()+")")
		return res, nil
	}
	loc := time.UTC
	if env.Src.Live() {
		loc = time.Local
	}
	jobs, err := pve.ParseReplStatus(string(out.Stdout), loc)
	if err != nil {
		res.Blind = append(res.Blind, "pvesr status: "+err.Error())
	}
	res.Findings = pve.DiagnoseReplication(jobs, st.Scope)
	return res, nil
}
