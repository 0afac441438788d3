package checks

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/logline"
	"github.com/hinomi/hinomi/internal/pve"
)

// pveCommandTimeout bounds each Proxmox/corosync command: pvesh, pvesr and
// ha-manager block on pmxcfs, and pmxcfs blocks when quorum is lost.
const pveCommandTimeout = 5 * time.Second

// pveState is what the Proxmox VE and corosync checks share, read once
// per run: whether this is a PVE node or a corosync node, the cluster's
// configuration and the local quorum view.
type pveState struct {
	// PVE is true on a Proxmox VE node (/etc/pve/nodes exists);
	// Corosync is true when corosync is configured and running.
	PVE, Corosync bool
	// EtcHung is true when /etc/pve (pmxcfs) did not answer a stat: no
	// check reads it then.
	EtcHung bool
	Conf    *pve.CorosyncConf
	// Quorum is the local quorum view; QuorumErr says why it is missing.
	Quorum    *pve.Quorum
	QuorumRaw string
	QuorumErr error
	Scope     pve.Scope

	guestOnce sync.Once
	guestList []pveGuest
	nodes     []string

	logOnce   sync.Once
	events    []pve.Event
	logSource string
}

// pveStateOf reads (or replays) the PVE/corosync state once per run. A host
// with neither gives ErrNotApplicable at the cost of two failed reads.
// It reads the process table (is corosync running?), so a check that may
// run before the table is ready (previous-boot, for a fenced node) waits
// for it here.
func pveStateOf(ctx context.Context, env *Env) (*pveState, error) {
	if env.ProcsReady != nil {
		select {
		case <-env.ProcsReady:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	env.pveOnce.Do(func() { env.pveSt, env.pveErr = readPVEState(ctx, env) })
	return env.pveSt, env.pveErr
}

func readPVEState(ctx context.Context, env *Env) (*pveState, error) {
	st := &pveState{Scope: pve.Scope{Node: env.Host, Now: env.Now}}
	if ms, err := mounts(env); err == nil && env.Mounts != nil {
		for _, m := range ms {
			if m.MountPoint != "/etc/pve" {
				continue
			}
			st.PVE = true
			var a MountAnswer
			err := env.Src.Probe("pve-etc", &a, func() error {
				a = env.Mounts.Probe(ctx, env.Src.Path("/etc/pve"))
				return nil
			})
			st.EtcHung = err == nil && !a.Answered
		}
	}
	if !st.EtcHung {
		if _, err := env.Src.ReadDirNames("/etc/pve/nodes"); err == nil {
			st.PVE = true
		}
	}
	confPath := "/etc/corosync/corosync.conf"
	if st.PVE && !st.EtcHung {
		confPath = "/etc/pve/corosync.conf"
	}
	if b, err := env.Src.ReadFile(confPath); err == nil {
		c, perr := pve.ParseCorosyncConf(string(b))
		if perr == nil || c != nil {
			st.Conf = c
			st.Scope.Conf, st.Scope.Cluster = c, c.Cluster
		}
	}
	// corosync configured but not running is the Debian package's
	// default: not a cluster node, unless PVE says it is one.
	running := env.Procs.HasComm("corosync")
	st.Corosync = st.Conf != nil && len(st.Conf.Nodes) > 0 && (running || st.PVE)
	if !st.PVE && !st.Corosync {
		return nil, ErrNotApplicable
	}
	if st.Corosync {
		st.readQuorum(ctx, env)
	}
	return st, nil
}

// pveNode returns the shared state on a PVE node whose /etc/pve answers,
// and ErrNotApplicable elsewhere.
func pveNode(ctx context.Context, env *Env) (*pveState, error) {
	st, err := pveStateOf(ctx, env)
	if err != nil {
		return nil, err
	}
	if !st.PVE || st.EtcHung {
		return nil, ErrNotApplicable
	}
	return st, nil
}

// clusterNode returns the shared state on a node of a corosync cluster,
// and ErrNotApplicable elsewhere (a single PVE node has no cluster).
func clusterNode(ctx context.Context, env *Env) (*pveState, error) {
	st, err := pveStateOf(ctx, env)
	if err != nil {
		return nil, err
	}
	if !st.Corosync {
		return nil, ErrNotApplicable
	}
	return st, nil
}

// readQuorum asks corosync for the quorum state. corosync-quorumtool talks
// to corosync directly; pvecm status wraps it and needs pmxcfs, so it is
// the fallback.
func (st *pveState) readQuorum(ctx context.Context, env *Env) {
	ctx, cancel := context.WithTimeout(ctx, pveCommandTimeout)
	defer cancel()
	out, err := env.Src.Command(ctx, "corosync-quorumtool", "corosync-quorumtool", "-s")
	if host.Missing(err) && st.PVE {
		out, err = env.Src.Command(ctx, "pvecm-status", "pvecm", "status")
	}
	if err != nil {
		st.QuorumErr = err
		return
	}
	st.QuorumRaw = string(out.Stdout)
	q, err := pve.ParseQuorum(st.QuorumRaw)
	if err != nil {
		st.QuorumErr = errors.New("corosync gave no quorum information (is corosync running?)")
		return
	}
	st.Quorum = q
	if st.Scope.Cluster == "" {
		st.Scope.Cluster = q.Cluster
	}
	for _, m := range q.Members {
		if m.Local && m.Name != "" && !strings.ContainsAny(m.Name, ".:") {
			st.Scope.Node = m.Name // the name corosync knows this node by
		}
	}
}

// pveCommand runs a Proxmox command under pveCommandTimeout.
func pveCommand(ctx context.Context, env *Env, key string, argv ...string) (host.CommandResult, error) {
	ctx, cancel := context.WithTimeout(ctx, pveCommandTimeout)
	defer cancel()
	return env.Src.Command(ctx, key, argv...)
}

// clusterLogWindow is how far back the cluster log is read and trended.
const clusterLogWindow = 24 * time.Hour

// clusterLog reads the last day of corosync, pmxcfs and pve-ha logs once:
// the journal of their units, or corosync's own log file on a host whose
// corosync logs to a file.
func (st *pveState) clusterLog(ctx context.Context, env *Env) ([]pve.Event, string) {
	st.logOnce.Do(func() {
		m, err := pve.LogMatcher(env.Signatures, logContext(env))
		if err != nil {
			return
		}
		out, err := pveCommand(ctx, env, "journal-cluster", "journalctl", "-q", "--no-pager", "-o", "short-iso",
			"-u", "corosync", "-u", "pve-cluster", "-u", "pve-ha-lrm", "-u", "pve-ha-crm", "-u", "watchdog-mux",
			"--since", "-24h", "-n", "20000")
		if err == nil && out.ExitCode == 0 && len(strings.TrimSpace(string(out.Stdout))) > 0 {
			st.events, st.logSource = pve.ParseClusterLog(string(out.Stdout), m), "journal"
			return
		}
		if b, ferr := env.Src.ReadFile("/var/log/corosync/corosync.log"); ferr == nil {
			if len(b) > 4<<20 {
				b = b[len(b)-4<<20:]
			}
			st.events, st.logSource = pve.ParseClusterLog(string(b), m), "/var/log/corosync/corosync.log"
		}
	})
	return st.events, st.logSource
}

// logContext dates zone-less log lines: the host's zone live, UTC when
// replaying (journal short-iso lines carry their zone either way).
func logContext(env *Env) logline.Context {
	loc := time.UTC
	if env.Src.Live() {
		loc = time.Local
	}
	return logline.Context{Now: env.Now, Location: loc}
}

// pveGuest is one guest config found under /etc/pve/nodes.
type pveGuest struct {
	pve.Guest
	Path string
}

// guests reads every guest config under /etc/pve/nodes/*/{qemu-server,lxc}
// once. Each node's directory holds the configs of the guests placed on
// it, which is how PVE says where a guest lives.
func (st *pveState) guests(env *Env) ([]pveGuest, []string) {
	st.guestOnce.Do(func() {
		nodes, err := env.Src.ReadDirNames("/etc/pve/nodes")
		if err != nil {
			return
		}
		sort.Strings(nodes)
		st.nodes = nodes
		for _, n := range nodes {
			for _, kind := range []string{"qemu-server", "lxc"} {
				dir := "/etc/pve/nodes/" + n + "/" + kind
				names, err := env.Src.ReadDirNames(dir)
				if err != nil {
					continue
				}
				sort.Strings(names)
				for _, name := range names {
					id, ok := strings.CutSuffix(name, ".conf")
					if !ok {
						continue
					}
					b, err := env.Src.ReadFile(dir + "/" + name)
					if err != nil {
						continue
					}
					k := "qemu"
					if kind == "lxc" {
						k = "lxc"
					}
					st.guestList = append(st.guestList, pveGuest{Guest: pve.Guest{ID: id, Kind: k, Node: n, Conf: pve.ParseGuestConfig(string(b))}, Path: dir + "/" + name})
				}
			}
		}
	})
	return st.guestList, st.nodes
}

// sections reads a section config under /etc/pve; a missing file is empty.
func sections(env *Env, path string) ([]pve.Section, error) {
	b, err := env.Src.ReadFile(path)
	if err != nil {
		if host.Missing(err) {
			return nil, nil
		}
		return nil, err
	}
	return pve.ParseSections(string(b))
}
