package checks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/finding"
)

// DefaultHogDirs are where container hosts usually lose their disk space
// (FM-C2): on a Docker host the usual manual hunt is du over
// /var/lib/docker/overlay2.
var DefaultHogDirs = []string{"/var/log", "/var/lib/docker", "/var/lib/containerd", "/var/lib/containers", "/var/lib/vz", "/var/lib/kubelet"}

// duBudget bounds the directory-size walk that runs only for a full disk.
const (
	duBudget   = 3 * time.Second
	duMaxFiles = 2_000_000
)

// usage is a statfs result, as kept in snapshots.
type usage struct {
	Size, Avail, Used uint64 // bytes
	Files, FreeFiles  uint64
}

// localFS reports whether a filesystem type holds data on this host's disks
// (or memory) and is worth a usage check.
func localFS(fstype, mountpoint string) bool {
	switch fstype {
	case "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat", "exfat", "jfs", "reiserfs", "bcachefs", "ntfs3":
		return true
	case "tmpfs":
		return !strings.HasPrefix(mountpoint, "/sys") && !strings.HasPrefix(mountpoint, "/proc") &&
			(!strings.HasPrefix(mountpoint, "/dev") || mountpoint == "/dev/shm")
	}
	return false
}

// checkDisk is FM-C2: space and inodes of every local filesystem, with the
// biggest directories under the usual hogs when one is filling up.
func checkDisk(ctx context.Context, env *Env) (Result, error) {
	var res Result
	ms, err := mounts(env)
	if err != nil {
		return res, fmt.Errorf("mount table: %w", err)
	}
	seen := map[string]bool{}
	var worst *finding.Figure
	for i, m := range ms {
		if !localFS(m.FSType, m.MountPoint) || seen[m.MajorMinorVer] || strings.HasPrefix(m.MountPoint, "/var/lib/docker/") && m.FSType != "tmpfs" {
			continue
		}
		if m.Root != "/" && m.FSType != "zfs" && m.FSType != "btrfs" {
			continue // a bind mount of part of a filesystem seen elsewhere
		}
		seen[m.MajorMinorVer] = true
		u, err := statfsProbe(env, fmt.Sprintf("statfs-%d", i), m.MountPoint)
		if err != nil {
			if !errors.Is(err, fs.ErrPermission) {
				res.Blind = append(res.Blind, "usage of "+m.MountPoint+": "+err.Error())
			}
			continue
		}
		if u.Size == 0 {
			continue
		}
		// Like df: the reserved blocks count as unavailable, not as free.
		space := finding.Figure{Name: "disk " + m.MountPoint, Value: float64(u.Used), Limit: float64(u.Used + u.Avail), Unit: "bytes", Source: "statfs " + m.MountPoint}
		if worst == nil || space.Percent() > worst.Percent() {
			s := space
			worst = &s
		}
		inodes := finding.Figure{Name: "inodes " + m.MountPoint, Value: float64(u.Files - u.FreeFiles), Limit: float64(u.Files), Source: "statfs " + m.MountPoint}
		pred := env.DiskTrend.observe(m.MountPoint, env.Now, float64(u.Used), float64(u.Avail))
		if f, ok := diskFinding(ctx, env, m, space, "space", pred); ok {
			res.Findings = append(res.Findings, f)
		} else if env.DiskTrend != nil {
			// Not filling: remember the sizes of the containers and
			// volumes on it, so that the cycle it starts to fill
			// names the fastest grower at once.
			if dd, err := dockerDisk(ctx, env); err == nil {
				env.DiskTrend.grow(m.MountPoint, env.Now, dd.diskConsumers(env, m.MountPoint, trendConsumers))
			}
		}
		if u.Files > 0 {
			if f, ok := diskFinding(ctx, env, m, inodes, "inodes", nil); ok {
				res.Findings = append(res.Findings, f)
			}
		}
	}
	if worst != nil {
		worst.Name = "fullest filesystem (" + strings.TrimPrefix(worst.Name, "disk ") + ")"
		res.Headroom = append(res.Headroom, *worst)
	}
	return res, nil
}

// statfsProbe measures a mounted filesystem's usage, recorded under key.
func statfsProbe(env *Env, key, mountpoint string) (usage, error) {
	var u usage
	err := env.Src.Probe(key, &u, func() error {
		var st unix.Statfs_t
		if err := unix.Statfs(env.Src.Path(mountpoint), &st); err != nil {
			return err
		}
		bs := uint64(st.Bsize)
		u = usage{Size: st.Blocks * bs, Avail: st.Bavail * bs, Used: (st.Blocks - st.Bfree) * bs, Files: st.Files, FreeFiles: st.Ffree}
		return nil
	})
	return u, err
}

// diskSeverity follows Zabbix's default disk-space trigger (used > 80 %).
func diskSeverity(pct float64) finding.Severity {
	switch {
	case pct >= 98:
		return finding.Catastrophic
	case pct >= 95:
		return finding.High
	case pct >= 90:
		return finding.Medium
	case pct >= 80:
		return finding.Low
	}
	return 0
}

func diskFinding(ctx context.Context, env *Env, m *procfs.MountInfo, fig finding.Figure, what string, pred *diskPrediction) (finding.Finding, bool) {
	sev := max(diskSeverity(fig.Percent()), pred.severity())
	if sev == 0 {
		return finding.Finding{}, false
	}
	vars := map[string]string{"mount": m.MountPoint, "device": m.Source, "used_pct": fmt.Sprintf("%.0f", fig.Percent()),
		// The runbook shows the journal and Docker steps only for the
		// filesystem that holds them.
		"holds_journal": yesNo(holds(env, m, "/var/log/journal")),
		"holds_docker":  yesNo(holdsDocker(ctx, env, m)),
	}
	f := finding.Finding{
		Mode: "FM-C2", Severity: sev, Subject: what + " " + m.MountPoint,
		Evidence: finding.Evidence{Figures: []finding.Figure{fig}, Vars: vars},
	}
	if what == "space" {
		f.Summary = fmt.Sprintf("Filesystem %s (%s) is %.0f%% full, %s left.", m.MountPoint, m.Source, fig.Percent(), finding.HumanBytes(fig.Limit-fig.Value))
	} else {
		f.Summary = fmt.Sprintf("Filesystem %s (%s) has used %.0f%% of its inodes: new files fail with \"No space left on device\" although space remains.", m.MountPoint, m.Source, fig.Percent())
	}
	hogs := env.HogDirs
	if hogs == nil {
		hogs = DefaultHogDirs
	}
	sized := false // a hog directory lives on this filesystem
	for i, dir := range hogs {
		if mountOf(env, dir) != m.MountPoint {
			continue
		}
		sized = true
		var sizes []dirSize
		err := env.Src.Probe(fmt.Sprintf("du-%d", i), &sizes, func() error {
			var err error
			sizes, err = biggestChildren(env.Src.Path(dir), what == "inodes")
			return err
		})
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, os.ErrNotExist) {
				f.Evidence.Notes = append(f.Evidence.Notes, "could not size "+dir+": "+err.Error())
			}
			continue
		}
		for _, s := range sizes[:min(3, len(sizes))] {
			unit := "bytes"
			if what == "inodes" {
				unit = "files"
			}
			f.Evidence.Consumers = append(f.Evidence.Consumers, finding.Consumer{Kind: "directory", Name: filepath.Join(dir, s.Name), Value: s.Value, Unit: unit})
		}
	}
	if !sized && len(f.Evidence.Consumers) == 0 {
		// None of the usual hogs lives here: the biggest entries at the
		// top of the filesystem itself.
		var sizes []dirSize
		err := env.Src.Probe("du-top-"+m.MountPoint, &sizes, func() error {
			var err error
			sizes, err = biggestChildren(env.Src.Path(m.MountPoint), what == "inodes")
			return err
		})
		if err == nil {
			unit := "bytes"
			if what == "inodes" {
				unit = "files"
			}
			for _, s := range sizes[:min(3, len(sizes))] {
				if s.Value > 0 {
					f.Evidence.Consumers = append(f.Evidence.Consumers, finding.Consumer{Kind: "directory", Name: filepath.Join(m.MountPoint, s.Name), Value: s.Value, Unit: unit})
				}
			}
		}
	}
	sortConsumers(f.Evidence.Consumers)
	if len(f.Evidence.Consumers) > 0 {
		vars["dir"] = f.Evidence.Consumers[0].Name
	}
	if what == "space" {
		nameDockerConsumers(ctx, env, m.MountPoint, &f)
		if !predictFull(env, m.MountPoint, &f, pred) && diskSeverity(fig.Percent()) == 0 {
			// Filling fast but not full: the first cycle that sees it
			// sizes what is on it, the next names what grew.
			return f, false
		}
	}
	return f, true
}

// predictFull adds, in the agent, when the filesystem is full at its
// recent rate and what on it grows fastest. It returns false on the first
// cycle of a prediction when no grower is known yet.
func predictFull(env *Env, mount string, f *finding.Finding, pred *diskPrediction) bool {
	if env.DiskTrend == nil {
		return true
	}
	vars := f.Evidence.Vars
	g, rate, span, ok := env.DiskTrend.grow(mount, env.Now, f.Evidence.Consumers)
	var grower *finding.Consumer
	if ok {
		grower = &g
		vars["grower"] = g.Kind + " " + g.Name
		vars["grower_rate"] = humanRate(rate)
	}
	if pred != nil && pred.toFull > 0 {
		if f.Since == nil {
			f.Since = timePtr(env.Now.Add(-pred.span)) // filling at least since the oldest sample
		}
		vars["time_to_full"] = finding.HumanDuration(pred.toFull)
		vars["full_at"] = pred.at.UTC().Format(time.RFC3339)
		vars["fill_rate"] = humanRate(pred.rate)
		f.Evidence.Figures = append(f.Evidence.Figures,
			finding.Figure{Name: "fill rate of " + mount + " over " + finding.HumanDuration(pred.span), Value: pred.rate * 3600, Unit: "bytes/h", Source: fmt.Sprintf("statfs at %d cycles", pred.n)},
			finding.Figure{Name: "time until " + mount + " is full", Value: pred.toFull.Seconds(), Unit: "s"})
	}
	if grower != nil {
		f.Evidence.Figures = append(f.Evidence.Figures, finding.Figure{Name: "growth of " + g.Kind + " " + g.Name + " over " + finding.HumanDuration(span), Value: rate * 3600, Unit: "bytes/h"})
	}
	f.Summary += predictionSentence(pred, grower, rate, span)
	return grower != nil || pred == nil || pred.cycles > 1
}

// nameDockerConsumers names the Docker containers, Swarm services and
// volumes behind the space of a filling filesystem: directories such as
// overlay2/<id> or volumes/<name> get their owner's name, and the biggest
// writable layers, logs and volumes on it are added by name, the top one
// in the summary and the runbook's vars.
func nameDockerConsumers(ctx context.Context, env *Env, mount string, f *finding.Finding) {
	dd, err := dockerDisk(ctx, env)
	if err != nil || dd.Root == "" {
		return
	}
	for i, c := range f.Evidence.Consumers {
		if c.Kind == "directory" {
			f.Evidence.Consumers[i].Name = dd.nameDir(c.Name)
		}
	}
	named := dd.diskConsumers(env, mount, 5)
	if len(named) == 0 {
		return
	}
	top := named[0]
	f.Evidence.Consumers = append(f.Evidence.Consumers, named...)
	sortConsumers(f.Evidence.Consumers)
	vars := f.Evidence.Vars
	if top.Kind == "volume" {
		vars["cause"] = "volume"
	}
	if c := dd.owner(top.ID); c != nil {
		vars["container"], vars["container_id"] = c.Name, c.ID
		vars["owner"], vars["owner_label"] = "docker", c.Name
		vars["dir"], vars["log_path"], vars["layer_dir"] = c.LayerDir, c.LogPath, c.LayerDir
		vars["cause"] = "layer"
		if strings.Contains(top.Name, "(log ") {
			vars["dir"], vars["cause"] = c.LogPath, "log"
		}
		if c.Service != "" {
			vars["service"] = c.Service
		}
	}
	r := dd.reclaim()
	dd.pruneVars(vars)
	f.Summary += fmt.Sprintf(" The biggest Docker consumer is %s: %s.", top.Kind+" "+top.Name, finding.HumanBytes(top.Value))
	f.Evidence.Figures = append(f.Evidence.Figures, r.figures(dd.Root)...)
	f.Evidence.Notes = append(f.Evidence.Notes, r.sentence())
}

// mountOf returns the mount point holding path on the source.
func mountOf(env *Env, path string) string {
	ms, err := mounts(env)
	if err != nil {
		return ""
	}
	best := ""
	for _, m := range ms {
		mp := m.MountPoint
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best = mp
		}
	}
	return best
}

type dirSize struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// biggestChildren sizes each entry directly under dir (allocated bytes, or
// file counts when counting inodes) within a time and file budget, staying
// on dir's filesystem.
func biggestChildren(dir string, count bool) ([]dirSize, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	w := newWalker(duBudget, duMaxFiles)
	var out []dirSize
	for _, e := range ents {
		bytes, files, _ := w.size(filepath.Join(dir, e.Name()), dir)
		v := bytes
		if count {
			v = files
		}
		out = append(out, dirSize{Name: e.Name(), Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Value > out[j].Value })
	return out, nil
}

// walker sizes directory trees under one budget of time and files shared
// by all its walks: a tree with millions of files cannot hold a run up.
type walker struct {
	deadline time.Time
	files    int
	maxFiles int
	// Out says the budget ran out: later walks return at once, and the
	// walk that ran into it counted only part of its tree.
	Out bool
	// network are the mount points (on this machine) of network and
	// FUSE filesystems.
	network map[string]bool
}

func newWalker(budget time.Duration, maxFiles int) *walker {
	w := &walker{deadline: time.Now().Add(budget), maxFiles: maxFiles, network: map[string]bool{}}
	// Network and FUSE mounts below a walked tree are never entered: a
	// stat of a hung server's mount point waits in the kernel for ever.
	if ms, err := procfs.GetMounts(); err == nil {
		for _, m := range ms {
			if networkFS(m.FSType) {
				w.network[m.MountPoint] = true
			}
		}
	}
	return w
}

var errBudget = errors.New("budget")

// size returns the bytes allocated to path (a file or a tree) and how many
// files it holds, staying on the filesystem of dev (a directory on it,
// usually path's parent); complete is false when the budget ran out
// during the walk or before it.
func (w *walker) size(path, dev string) (bytes, files float64, complete bool) {
	if w.Out || w.network[path] {
		return 0, 0, false
	}
	var root unix.Stat_t
	if err := unix.Stat(dev, &root); err != nil {
		return 0, 0, false
	}
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if w.network[p] {
			return filepath.SkipDir
		}
		w.files++
		if w.files%1024 == 0 && time.Now().After(w.deadline) || w.files > w.maxFiles {
			return errBudget
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if d.IsDir() && st.Dev != uint64(root.Dev) {
			return filepath.SkipDir
		}
		files++
		bytes += float64(st.Blocks) * 512
		return nil
	})
	if errors.Is(err, errBudget) {
		w.Out = true
		return bytes, files, false
	}
	return bytes, files, true
}

// holdsDocker reports whether Docker keeps its data on the filesystem
// mounted at m: only then does the runbook show docker commands. A host
// without a Docker engine (a Proxmox node whose guests are LXC) never gets
// them; an engine whose data root is not known shows them.
func holdsDocker(ctx context.Context, env *Env, m *procfs.MountInfo) bool {
	st, err := docker(ctx, env)
	if err != nil || st.Absent {
		return false
	}
	if dd, err := dockerDisk(ctx, env); err == nil && dd.Root != "" {
		return holds(env, m, dd.Root)
	}
	return holds(env, m, "/var/lib/docker")
}

// holds reports whether path lives on the filesystem mounted at m.
func holds(env *Env, m *procfs.MountInfo, path string) bool {
	mp := mountOf(env, path)
	return mp == "" || mp == m.MountPoint // unknown: show the steps
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
