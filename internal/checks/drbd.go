package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/storage"
)

// drbdResample bounds the wait for a second DRBD reading, taken only when
// a resync runs or a connection waits at WFBitMapS/T: long enough for a
// moving resync to move, short for doctor.
const (
	drbdResampleMin = time.Second
	drbdResampleMax = 3 * time.Second
)

// checkDRBD is FM-D8 and FM-D9: each DRBD resource's disk, connection and
// replication state as this node sees it (drbdsetup status --json on DRBD
// 9, with drbdadm status as the fallback; /proc/drbd on DRBD 8), and the
// filesystems mounted from DRBD devices that are filling up. A host
// without the DRBD module has no /proc/drbd and costs one failed read.
func checkDRBD(ctx context.Context, env *Env) (Result, error) {
	var res Result
	b, err := env.Src.ReadFile("/proc/drbd")
	if err != nil {
		if host.Missing(err) {
			return res, ErrNotApplicable
		}
		return res, fmt.Errorf("/proc/drbd: %w", err)
	}
	rs, version := storage.ParseProcDRBD(b)
	source := "/proc/drbd"
	key := ""
	if !strings.HasPrefix(version, "8.") {
		rs, source, key, err = readDRBD9(ctx, env, "")
		if err != nil {
			return res, err
		}
	}
	if len(rs) == 0 {
		return res, ErrNotApplicable // the module is loaded, nothing is configured
	}
	var prev []storage.DRBDResource
	if key != "" && drbdMoving(rs) {
		// A resync or a half-open connection: read again to tell moving
		// from stuck. The first reading becomes the earlier one.
		if later, ok := drbdSecond(ctx, env, key); ok {
			prev, rs = rs, later
		}
	}
	res.Findings = storage.DiagnoseDRBD(rs, prev, source)
	for i := range res.Findings {
		res.Findings[i].Evidence.Vars["node"] = env.Host
		if env.Kernel != nil {
			storage.SinceFromKernel(&res.Findings[i], env.Kernel.Lines)
		}
	}
	healthy := len(rs)
	for _, f := range res.Findings {
		if f.Mode == "FM-D8" {
			healthy--
		}
	}
	res.Headroom = append(res.Headroom, finding.Figure{Name: "DRBD resources healthy", Value: float64(healthy), Limit: float64(len(rs)), Source: source})
	full, blind := drbdMounts(env, rs)
	res.Findings = append(res.Findings, full...)
	res.Blind = append(res.Blind, blind...)
	return res, nil
}

// readDRBD9 reads DRBD 9's state: drbdsetup status --json, or the text of
// drbdadm status when drbdsetup is too old for --json. suffix tells a
// second reading's command key from the first's.
func readDRBD9(ctx context.Context, env *Env, suffix string) (rs []storage.DRBDResource, source, key string, err error) {
	out, err := env.Src.Command(ctx, "drbdsetup-status-json"+suffix, "drbdsetup", "status", "--json")
	if err == nil && out.ExitCode == 0 {
		rs, _, perr := storage.ParseDRBDJSON(out.Stdout)
		if perr == nil {
			return rs, "drbdsetup status --json", "drbdsetup-status-json", nil
		}
	}
	if err != nil && !host.Missing(err) {
		return nil, "", "", fmt.Errorf("drbdsetup status: %w", err)
	}
	txt, err2 := env.Src.Command(ctx, "drbdadm-status"+suffix, "drbdadm", "status")
	if err2 != nil {
		if host.Missing(err2) && err != nil {
			return nil, "", "", fmt.Errorf("DRBD is loaded but neither drbdsetup nor drbdadm answers: %w", errors.Join(err, err2))
		}
		return nil, "", "", fmt.Errorf("drbdadm status: %w", err2)
	}
	rs, _ = storage.ParseDRBDStatus(txt.Stdout)
	return rs, "drbdadm status", "drbdadm-status", nil
}

// drbdMoving reports whether a reading shows something a second reading
// judges: a resync, or a connection waiting for the bitmap exchange.
func drbdMoving(rs []storage.DRBDResource) bool {
	for _, r := range rs {
		for _, p := range r.Peers {
			for _, pv := range p.Volumes {
				switch pv.Replication {
				case "SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT", "WFBitMapS", "WFBitMapT":
					return true
				}
			}
		}
	}
	return false
}

// drbdSecond takes the second reading: after a wait on a live host, from
// the snapshot (where it was recorded under KEY-2) otherwise.
func drbdSecond(ctx context.Context, env *Env, key string) ([]storage.DRBDResource, bool) {
	if env.Src.Live() {
		if env.SampleFor <= 0 {
			return nil, false
		}
		wait := min(max(env.SampleFor, drbdResampleMin), drbdResampleMax)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false
		case <-t.C:
		}
	}
	rs, _, got, err := readDRBD9(ctx, env, "-2")
	if err != nil || got != key {
		return nil, false
	}
	return rs, true
}

// drbdMounts is FM-D9: each filesystem mounted from a DRBD device, with
// its usage.
func drbdMounts(env *Env, rs []storage.DRBDResource) (fs []finding.Finding, blind []string) {
	ms, err := mounts(env)
	if err != nil {
		return nil, []string{"mounts of DRBD devices: " + err.Error()}
	}
	for i, m := range ms {
		minor, resName, ok := storage.DRBDDevice(m.Source)
		if !ok {
			continue
		}
		if resName == "" {
			resName = storage.ResourceOfMinor(rs, minor)
		}
		u, err := statfsProbe(env, fmt.Sprintf("statfs-drbd-%d", i), m.MountPoint)
		if err != nil {
			blind = append(blind, "usage of DRBD volume "+m.MountPoint+": "+err.Error())
			continue
		}
		if f, ok := storage.DiagnoseDRBDMount(storage.DRBDMount{Device: m.Source, Mountpoint: m.MountPoint, Resource: resName, Used: u.Used, Size: u.Used + u.Avail}); ok {
			fs = append(fs, f)
		}
	}
	return fs, blind
}
