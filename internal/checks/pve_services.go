package checks

import (
	"context"
	"fmt"

	"github.com/hinomi/hinomi/internal/pve"
)

// pveUnits are Proxmox's own services (FM-D2).
var pveUnits = []string{"pveproxy.service", "spiceproxy.service", "pvestatd.service", "pvedaemon.service", "pve-ha-crm.service", "pve-ha-lrm.service", "pve-cluster.service", "corosync.service"}

// checkPVEServices is FM-D2: Proxmox's services that are down, and a
// pmxcfs (/etc/pve) that does not answer, with the seed's restart order.
func checkPVEServices(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := pveStateOf(ctx, env)
	if err != nil {
		return res, err
	}
	if !st.PVE {
		return res, ErrNotApplicable
	}
	argv := []string{"systemctl", "show", "-p", "Id", "-p", "LoadState", "-p", "ActiveState", "-p", "SubState"}
	out, err := pveCommand(ctx, env, "systemctl-show-pve", append(argv, pveUnits...)...)
	var units []pve.UnitState
	if err != nil {
		res.Blind = append(res.Blind, "Proxmox services (systemctl: "+err.Error()+")")
	} else {
		units = pve.ParseUnitStates(string(out.Stdout))
	}
	if st.EtcHung {
		units = append(units, pve.UnitState{Name: "pve-cluster.service", Load: "loaded", Active: "hung", Sub: "/etc/pve does not answer"})
	}
	fs := pve.DiagnoseServices(units, st.Scope)
	if st.EtcHung {
		for i := range fs {
			fs[i].Summary += fmt.Sprintf(" pmxcfs does not answer: a stat of /etc/pve got no reply within %s.", env.Mounts.Deadline)
		}
	}
	res.Findings = fs
	return res, nil
}
