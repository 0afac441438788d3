package checks

import (
	"context"

	"github.com/hinomi/hinomi/internal/pve"
)

// checkPVEHAReplication is FM-D3: HA resources whose failover node holds no
// replica of their local disks, from /etc/pve/ha/{resources,groups,rules}.cfg,
// /etc/pve/replication.cfg, storage.cfg and the guests' configs.
func checkPVEHAReplication(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := pveNode(ctx, env)
	if err != nil {
		return res, err
	}
	c := &pve.HAConfig{Guests: map[string]pve.Guest{}}
	for _, f := range []struct {
		path string
		dst  *[]pve.Section
	}{
		{"/etc/pve/ha/resources.cfg", &c.Resources},
		{"/etc/pve/ha/groups.cfg", &c.Groups},
		{"/etc/pve/ha/rules.cfg", &c.Rules},
		{"/etc/pve/replication.cfg", &c.Replication},
		{"/etc/pve/storage.cfg", &c.Storage},
	} {
		secs, err := sections(env, f.path)
		if err != nil {
			res.Blind = append(res.Blind, f.path+": "+err.Error())
		}
		*f.dst = secs
	}
	if len(c.Resources) == 0 {
		return res, ErrNotApplicable
	}
	gs, nodes := st.guests(env)
	for _, g := range gs {
		c.Guests[g.ID] = g.Guest
	}
	c.Nodes = nodes
	res.Findings = pve.DiagnoseHAReplication(c, st.Scope)
	return res, nil
}
