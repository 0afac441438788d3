package checks

import (
	"context"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/pve"
)

// checkPVEStorage is FM-C6's Proxmox form: storages `pvesm status` shows
// inactive or unknown. A storage mounted under /mnt/pve whose mount hangs
// is the mounts check's (it probes every network mount and names the
// storage), so it is not reported twice.
func checkPVEStorage(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := pveNode(ctx, env)
	if err != nil {
		return res, err
	}
	out, err := pveCommand(ctx, env, "pvesm-status", "pvesm", "status")
	if err != nil {
		// pvesm itself stats every storage: a hung NFS storage makes it
		// time out, and the mounts check names that mount.
		res.Blind = append(res.Blind, "Proxmox storages (pvesm status: "+err.Error()+")")
		return res, nil
	}
	sts, err := pve.ParseStorageStatus(string(out.Stdout))
	if err != nil {
		res.Blind = append(res.Blind, "pvesm status: "+err.Error())
		return res, nil
	}
	mounted := map[string]bool{}
	if ms, err := mounts(env); err == nil {
		for _, m := range ms {
			if networkFS(m.FSType) {
				mounted[m.MountPoint] = true
			}
		}
	}
	for _, f := range pve.DiagnoseStorage(sts, st.Scope) {
		if mp := f.Evidence.Vars["mount"]; mp != "" && mounted[mp] {
			continue // the mounts check probes it
		}
		res.Findings = append(res.Findings, f)
	}
	active := 0
	for _, s := range sts {
		if !s.Down() {
			active++
		}
	}
	res.Headroom = append(res.Headroom, finding.Figure{Name: "Proxmox storages usable", Value: float64(active), Limit: float64(len(sts)), Source: "pvesm status"})
	return res, nil
}
