package checks

import (
	"context"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/pve"
)

// checkPVEStorage is FM-C6's Proxmox form: storages `pvesm status` shows
// inactive or unknown. A storage mounted under /mnt/pve whose mount hangs
// or is dead is the mounts check's (it probes every network mount and names
// the storage), so it is not reported twice.
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
		if mp := f.Evidence.Vars["mount"]; mp != "" && mounted[mp] && !mountAnswers(ctx, env, "pve-storage-"+f.Evidence.Vars["storage"], mp) {
			continue // hung or dead: the mounts check reports it, named by storage
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

// mountAnswers reports whether a mount answers its stat within the mount
// deadline without an error that means it is dead. While the mounts check's
// own stat of it is still waiting, the prober says so at once.
func mountAnswers(ctx context.Context, env *Env, key, mountpoint string) bool {
	if env.Mounts == nil {
		return false
	}
	var a MountAnswer
	err := env.Src.Probe(key, &a, func() error {
		a = env.Mounts.Probe(ctx, env.Src.Path(mountpoint))
		return nil
	})
	_, dead := deadErrno[a.Errno]
	return err == nil && a.Answered && !dead
}
