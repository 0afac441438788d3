package checks

import (
	"context"
	"os"
	"time"

	"github.com/hinomi/hinomi/internal/pve"
)

// checkPVELocks is FM-D1: `lock:` left in a guest's config, with how long
// it has been there (the config file's mtime, recorded as a probe).
func checkPVELocks(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := pveNode(ctx, env)
	if err != nil {
		return res, err
	}
	gs, _ := st.guests(env)
	var locks []pve.GuestLock
	for _, g := range gs {
		if g.Conf.Lock == "" {
			continue
		}
		var mtime time.Time
		_ = env.Src.Probe("pve-lock-"+g.ID, &mtime, func() error {
			fi, err := os.Stat(env.Src.Path(g.Path))
			if err != nil {
				return err
			}
			mtime = fi.ModTime().UTC()
			return nil
		})
		locks = append(locks, pve.GuestLock{Guest: g.ID, Kind: g.Kind, Node: g.Node, Lock: g.Conf.Lock, Since: mtime})
	}
	res.Findings = pve.DiagnoseLocks(locks, st.Scope)
	return res, nil
}
