// Package doctor is `hinomi doctor`: one diagnosis of a host (live or a
// saved snapshot) rendered for a person or a script. It wires the host
// seam, the process table, the kernel log and the checks together; the
// agent reuses Diagnose and only changes what happens to the findings.
package doctor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/kube"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/signatures"
)

// Exit statuses of `hinomi doctor`.
const (
	ExitOK       = 0 // nothing at or above --min-severity
	ExitFindings = 1 // at least one finding at or above --min-severity
	ExitFailed   = 2 // the diagnosis could not run (bad flags, unreadable snapshot)
	// Stopped by a signal, the commands exit with 128 + its number, as
	// shells report it: 130 for SIGINT, 143 for SIGTERM.
)

// Options configure one diagnosis.
type Options struct {
	// From is a snapshot directory; empty means this host.
	From string
	// SampleFor is how long rate checks wait for a second sample.
	SampleFor time.Duration
	// MountDeadline bounds each network/FUSE mount's stat.
	MountDeadline time.Duration
	// Mounts, when set, is reused across diagnoses (the agent); otherwise a
	// fresh prober with MountDeadline is made.
	Mounts *checks.MountProber
	// Signatures finds distress in logs; nil uses the built-in catalogue.
	Signatures *signatures.Matcher
	// SignatureFiles are extra signature files for the built-in catalogue
	// when Signatures is nil: they load while the process table is read.
	SignatureFiles []string
	// HogDirs overrides the directories sized on a full filesystem.
	HogDirs []string
	// DockerEvents, in the agent, is the Docker event stream's log of
	// container deaths.
	DockerEvents *checks.DockerEvents
	// NoJournal skips this boot's journal (the agent follows it live).
	NoJournal bool
	// Smart, in the agent, keeps each disk's SMART reading between
	// diagnoses (checks.SmartTTL).
	Smart *checks.SmartCache
	// DiskTrend, in the agent, is each filesystem's use over its last
	// cycles, for time-to-full predictions.
	DiskTrend *checks.DiskTrend
	// KubeAddrs, in the agent, remembers Kubernetes node addresses
	// across diagnoses.
	KubeAddrs *kube.AddrMemory
	// Record, when set, copies every input into a snapshot.
	Record *host.Recorder
	// NoBPF reads the process table from /proc only; NoBPFLoad uses the
	// BPF pass only once it is loaded (proctable.Options).
	NoBPF, NoBPFLoad bool
	Log              *slog.Logger
	Now              func() time.Time
}

// Diagnosis is the outcome of one run: data first, views elsewhere.
type Diagnosis struct {
	Host      string
	Taken     time.Time
	Source    string // "live" or the snapshot directory
	Took      time.Duration
	Processes int
	// ProcessPass is how descriptor tables and threads were read, "bpf"
	// or "proc", and ProcessPassNote why not "bpf" (proctable.Table).
	ProcessPass, ProcessPassNote string
	checks.Report
}

// Diagnose runs every check once.
func Diagnose(ctx context.Context, o Options) (*Diagnosis, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	start := time.Now()
	d := &Diagnosis{Source: "live", Taken: o.Now().UTC()}
	var src *host.Source
	if o.From != "" {
		s, err := host.FromDir(ctx, o.From)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		m := s.Meta()
		src, d.Source, d.Host, d.Taken = s, o.From, m.Host, m.Taken
		// What follows reads the private copy, which cannot hang: a
		// signal that cut the copy short still gets the report of what
		// was copied.
		ctx = context.WithoutCancel(ctx)
	} else {
		src = host.Live()
		d.Host, _ = os.Hostname()
		if o.Record != nil {
			src.Record(o.Record)
		}
	}
	// Rate checks take their first sample now; their wait for the second
	// one then overlaps the process scan.
	softnet := checks.StartSoftnetSample(src)
	// The process table is read first: the signatures load (about 10 ms
	// of parsing) while it is.
	type scanned struct {
		procs *proctable.Table
		err   error
	}
	scanStart := time.Now()
	scan := make(chan scanned, 1)
	go func() {
		procs, err := proctable.ScanWith(ctx, src, proctable.Options{NoBPF: o.NoBPF, NoBPFLoad: o.NoBPFLoad})
		scan <- scanned{procs, err}
	}()
	// The container engines are asked for their containers' names beside
	// the scan (a round trip to each API, more with many containers).
	engines := make(chan proctable.Engines, 1)
	go func() { engines <- proctable.ListContainers(ctx, src) }()
	sigs := o.Signatures
	if sigs == nil {
		cat, err := signatures.Load(o.SignatureFiles...)
		if err != nil {
			<-scan
			return nil, err
		}
		sigs = signatures.NewMatcher(cat)
	}
	mounts := o.Mounts
	if mounts == nil {
		mounts = checks.NewMountProber(o.MountDeadline)
	}
	env := &checks.Env{
		Src: src, Host: d.Host, Now: d.Taken,
		Signatures: sigs, SampleFor: o.SampleFor, Softnet: softnet, Mounts: mounts, Log: o.Log, HogDirs: o.HogDirs,
		DockerEvents: o.DockerEvents,
		Smart:        o.Smart,
		NoJournal:    o.NoJournal,
		DiskTrend:    o.DiskTrend,
		KubeAddrs:    o.KubeAddrs,
		ProcsReady:   make(chan struct{}),
		KernelReady:  make(chan struct{}),
	}
	// The kernel log is read beside the scan too: the signatures' pass
	// over it (kernel-log) need not wait for the process table.
	go func() {
		var boot time.Time
		if st, err := src.ReadFile("/proc/stat"); err == nil {
			boot = proctable.BootTime(st)
		}
		env.Kernel = checks.ReadKernelLog(src, boot, 5000)
		close(env.KernelReady)
	}()
	// The checks that need no process table start now, so that their
	// waits (the Docker API, journalctl, smartctl) overlap the scan; the
	// others start when it is done (checks.Run, Env.ProcsReady).
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	ran := make(chan checks.Report, 1)
	go func() { ran <- checks.Run(runCtx, env, checks.All()) }()
	sc := <-scan
	procs, err := sc.procs, sc.err
	if err != nil {
		stopRun()
		<-ran
		return nil, fmt.Errorf("reading processes: %w", err)
	}
	d.Processes = len(procs.Procs)
	d.ProcessPass, d.ProcessPassNote = procs.Pass, procs.PassNote
	notes := proctable.ResolveNamesFrom(ctx, src, procs, <-engines)
	env.Procs = procs
	<-env.KernelReady
	close(env.ProcsReady)
	o.Log.Debug("process table read", "processes", len(procs.Procs), "took", time.Since(scanStart).Round(time.Microsecond), "pass", procs.Pass, "why", procs.PassNote)
	d.Report = <-ran
	d.Blind = append(d.Blind, notes...)
	d.Blind = append(d.Blind, src.Problems()...)
	if !src.Live() {
		// Errors from a snapshot's private copy name the snapshot.
		for name, e := range d.Errors {
			d.Errors[name] = strings.ReplaceAll(e, src.Root(), filepath.Clean(o.From))
		}
	}
	d.Took = time.Since(start)
	return d, nil
}

// Worst is the highest severity among the findings (0 when none).
func (d *Diagnosis) Worst() finding.Severity {
	var w finding.Severity
	for _, f := range d.Findings {
		w = max(w, f.Severity)
	}
	return w
}

// AtLeast returns the findings at or above min.
func (d *Diagnosis) AtLeast(min finding.Severity) []finding.Finding {
	var out []finding.Finding
	for _, f := range d.Findings {
		if f.Severity >= min {
			out = append(out, f)
		}
	}
	return out
}
