// Package checks holds hinomi's host checks: each one looks at one failure
// mode from failure-modes.md, reads the host only through the host.Source
// seam and the shared process table, and returns findings (what is wrong),
// headroom figures (how far from wrong the host is) and what it could not
// see. A new check is one new file plus one line in All.
package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/kube"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/signatures"
)

// ErrNotApplicable says a check has nothing to look at on this host (no
// systemd, no conntrack module): it is not a failure and is not reported.
var ErrNotApplicable = errors.New("not applicable on this host")

// Env is what every check receives.
type Env struct {
	Src   *host.Source
	Host  string
	Procs *proctable.Table
	Now   time.Time
	// SampleFor is how long rate checks wait for a second sample; 0 makes
	// them report since-boot totals only.
	SampleFor time.Duration
	// Softnet is the first reading for the drop rate, when taken early.
	Softnet *SoftnetStart
	// HogDirs are sized when their filesystem fills up; nil means
	// DefaultHogDirs.
	HogDirs []string
	// Mounts guards stat calls on network and FUSE mounts.
	Mounts *MountProber
	// Kernel is the current boot's kernel log, read once per run.
	Kernel *KernelLog
	// Signatures finds distress in logs (previous boot, kernel log).
	Signatures *signatures.Matcher
	// DockerEvents, in the agent, holds the deaths seen on the Docker
	// event stream; nil makes the Docker checks ask the engine.
	DockerEvents *DockerEvents
	// ProcsReady, when set, is closed once Procs and Kernel are filled
	// in: Run starts the checks that read neither at once (procsFree), so
	// that their waits (the Docker API, journalctl, smartctl) overlap the
	// process scan, and the others when it is closed.
	ProcsReady chan struct{}
	// KernelReady, when set, is closed once Kernel is filled in: the
	// checks that read Kernel but not Procs (kernelOnly) wait for it
	// alone. Whoever closes ProcsReady fills Kernel first.
	KernelReady chan struct{}
	// NoJournal skips reading this boot's journal (the agent follows it
	// live instead).
	NoJournal bool
	// Smart, in the agent, keeps smartctl's answers between cycles; nil
	// makes the SMART check ask every time.
	Smart *SmartCache
	// DiskTrend, in the agent, remembers filesystems' use across cycles
	// to predict when they are full; nil in a one-shot doctor.
	DiskTrend *DiskTrend
	// KubeAddrs, in the agent, remembers Kubernetes node addresses
	// across cycles (FM-C7); nil in doctor.
	KubeAddrs *kube.AddrMemory
	Log       *slog.Logger

	// The mount table, read once per run (see mounts).
	mountsOnce sync.Once
	mountList  []*procfs.MountInfo
	mountsErr  error

	// The Docker engine's state, read once per run (see docker).
	dockerOnce sync.Once
	dockerSt   *dockerState
	dockerErr  error

	// The Proxmox VE / corosync state, read once per run (see pve.go).
	pveOnce sync.Once
	pveSt   *pveState
	pveErr  error
	// What the Docker containers keep on disk, measured once per run
	// (see dockerDisk).
	dockerDiskOnce sync.Once
	dockerDiskSt   *dockerDiskState
	dockerDiskErr  error
}

// Result is what one check found.
type Result struct {
	Findings []finding.Finding
	// Headroom are the healthy figures shown by an all-clear.
	Headroom []finding.Figure
	// Blind lists what the check could not see, in plain words.
	Blind []string
}

// Check is one host check.
type Check struct {
	Name string
	Run  func(ctx context.Context, env *Env) (Result, error)
}

// All is the registry of host checks, in the order their headroom prints.
func All() []Check {
	return []Check{
		{"open-files", checkFiles},
		{"inotify", checkInotify},
		{"processes", checkProcesses},
		{"conntrack", checkConntrack},
		{"memory", checkMemory},
		{"pressure", checkPressure},
		{"softnet", checkSoftnet},
		{"disk", checkDisk},
		{"mounts", checkMounts},
		{"runtime", checkRuntime},
		{"runtime-guests", checkRuntimeInGuests},
		{"docker-api", checkDockerAPI},
		{"docker-restarts", checkDockerRestarts},
		{"docker-memory", checkDockerMemory},
		{"swarm", checkSwarm},
		{"docker-disk", checkDockerDisk},
		{"kubernetes", checkKubernetes},
		{"services", checkServices},
		{"previous-boot", checkPreviousBoot},
		{"kernel-log", checkKernelLog},
		{"journal", checkJournal},
		{"drbd", checkDRBD},
		{"zfs", checkZFS},
		{"md-raid", checkMDRAID},
		{"smart", checkSMART},
		// Proxmox VE and corosync.
		{"pve-quorum", checkPVEQuorum},
		{"pve-cluster-network", checkPVENetwork},
		{"pve-ha", checkPVEHA},
		{"pve-ha-replication", checkPVEHAReplication},
		{"pve-replication", checkPVEReplication},
		{"pve-storage", checkPVEStorage},
		{"pve-services", checkPVEServices},
		{"pve-locks", checkPVELocks},
	}
}

// procsFree are the checks that read neither Env.Procs nor Env.Kernel
// (nor call what does without waiting for Env.ProcsReady, as pveStateOf
// does for previous-boot): they may run while the process table is built.
// The race detector in the tests holds this list to its word.
var procsFree = map[string]bool{
	"disk": true, "softnet": true, "docker-memory": true, "docker-disk": true,
	"swarm": true, "kubernetes": true, "journal": true, "zfs": true, "smart": true,
	"previous-boot": true,
}

// kernelOnly are the checks that read Env.Kernel but not Env.Procs: with
// Env.KernelReady they run as soon as the kernel log is read.
// docker-restarts reads it for the OOM kills the engine did not flag.
var kernelOnly = map[string]bool{"kernel-log": true, "docker-restarts": true}

// Report gathers the results of a run.
type Report struct {
	Findings []finding.Finding
	Headroom []finding.Figure
	Blind    []string
	// Errors are checks that failed outright, by name.
	Errors map[string]string
}

// Run runs the checks concurrently. A check that fails or panics costs only
// its own result.
func Run(ctx context.Context, env *Env, cs []Check) Report {
	results := make([]Result, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			ready := env.ProcsReady
			if kernelOnly[c.Name] && env.KernelReady != nil {
				ready = env.KernelReady
			}
			if ready != nil && !procsFree[c.Name] {
				select {
				case <-ready:
				case <-ctx.Done():
					errs[i] = ctx.Err()
					return
				}
			}
			defer func() {
				if r := recover(); r != nil {
					errs[i] = fmt.Errorf("panic: %v", r)
					env.Log.Error("check panicked", "check", c.Name, "panic", r, "stack", string(debug.Stack()))
				}
			}()
			began := time.Now()
			results[i], errs[i] = c.Run(ctx, env)
			env.Log.Debug("check done", "check", c.Name, "took", time.Since(began).Round(time.Microsecond), "findings", len(results[i].Findings))
		})
	}
	wg.Wait()
	rep := Report{Errors: map[string]string{}}
	for i, r := range results {
		for _, f := range r.Findings {
			f.Host = env.Host
			if f.Runbook == "" {
				f.Runbook = f.Mode
			}
			if f.Key == "" {
				f.Key = finding.MakeKey(f.Mode, f.Subject)
			}
			rep.Findings = append(rep.Findings, f)
		}
		rep.Headroom = append(rep.Headroom, r.Headroom...)
		rep.Blind = append(rep.Blind, r.Blind...)
		if errs[i] != nil && !errors.Is(errs[i], ErrNotApplicable) {
			rep.Errors[cs[i].Name] = errs[i].Error()
		}
	}
	finding.Sort(rep.Findings)
	return rep
}

// readInt reads a file holding one integer (a sysctl, a cgroup counter).
func readInt(src *host.Source, path string) (int64, error) {
	b, err := src.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// tally adds up a per-process quantity by process and by owner.
type tally struct {
	procs  []finding.Consumer
	owners map[string]*finding.Consumer
}

func newTally() *tally { return &tally{owners: map[string]*finding.Consumer{}} }

func (t *tally) add(p *proctable.Proc, v float64, unit string) {
	if v <= 0 {
		return
	}
	uid := p.EUID
	t.procs = append(t.procs, finding.Consumer{
		Kind: "process", Name: p.Comm, PID: p.PID, UID: &uid,
		Owner: p.Owner.Label(), Value: v, Unit: unit,
	})
	if p.Owner.IsContainer() || p.Owner.Kind == "service" {
		key := p.Owner.Kind + ":" + p.Owner.ID
		c := t.owners[key]
		if c == nil {
			kind := "container"
			if p.Owner.Kind == "service" {
				kind = "service"
			} else if p.Owner.Kind == "lxc" || p.Owner.Kind == "vm" {
				kind = "guest"
			}
			c = &finding.Consumer{Kind: kind, Name: p.Owner.Label(), ID: p.Owner.ID, Unit: unit}
			t.owners[key] = c
		}
		c.Value += v
	}
}

// top returns the n biggest processes followed by the n biggest owners.
func (t *tally) top(n int) []finding.Consumer {
	sortConsumers(t.procs)
	out := append([]finding.Consumer(nil), t.procs[:min(n, len(t.procs))]...)
	owners := make([]finding.Consumer, 0, len(t.owners))
	for _, c := range t.owners {
		owners = append(owners, *c)
	}
	sortConsumers(owners)
	return append(out, owners[:min(n, len(owners))]...)
}

func sortConsumers(cs []finding.Consumer) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Value != cs[j].Value {
			return cs[i].Value > cs[j].Value
		}
		return cs[i].Name < cs[j].Name
	})
}

// suggest is a new value for a limit that is too tight: at least twice the
// current use and the current limit, rounded up to a power of two, never
// below floor.
func suggest(used, limit, floor int64) int64 {
	want := max(2*used, 2*limit, floor)
	p := int64(1)
	for p < want {
		p <<= 1
	}
	return p
}

func itoa[T ~int | ~int64](v T) string { return strconv.FormatInt(int64(v), 10) }

// varsOfProcess fills the runbook variables that name a process and its
// owner.
func varsOfProcess(vars map[string]string, p *proctable.Proc) {
	vars["pid"] = itoa(p.PID)
	vars["comm"] = p.Comm
	OwnerVars(vars, p.Owner)
}

// OwnerVars fills the runbook variables that say what kind of owner a
// process has and name it, from which a runbook's {{owner "restart"}}
// picks docker, pct, qm, kubectl or crictl, or systemctl (see
// runbook/owners.go).
func OwnerVars(vars map[string]string, o proctable.Owner) {
	kind := o.Kind
	if kind == "" {
		kind = "host"
	}
	vars["owner"] = kind
	vars["owner_label"] = o.Label()
	switch kind {
	case "docker", "podman", "containerd":
		vars["container"] = containerRef(o)
		vars["container_id"] = o.ID
	case "kubernetes":
		vars["container_id"] = o.ID
		// Resolved names are "namespace/pod/container".
		if parts := strings.Split(o.Name, "/"); len(parts) == 3 {
			vars["namespace"], vars["pod"], vars["container"] = parts[0], parts[1], parts[2]
		}
	case "lxc", "vm":
		vars["guest"] = o.ID
	case "service":
		vars["unit"] = o.ID
	}
}

// containerRef is how a runbook command names a container: its name when
// known, else its short ID.
func containerRef(o proctable.Owner) string {
	if o.Name != "" {
		return o.Name
	}
	return proctable.ShortID(o.ID)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
