// Package proctable builds, in one pass over /proc, the process table that
// every hinomi check reads: who each process is (pid, user, command,
// container), what state it is in, and what shared kernel resources it holds
// (file descriptors, inotify instances and watches) against its own limits.
// Nothing else in hinomi walks /proc per process.
package proctable

import (
	"bytes"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// pfKthread is the PF_KTHREAD bit of /proc/PID/stat's flags.
const pfKthread = 0x00200000

// limitsFrom is the fd count from which a process's RLIMIT_NOFILE is read.
// A process with fewer descriptors cannot be near any limit a distribution
// ships, and skipping the read keeps the pass fast on hosts with thousands
// of small processes.
const limitsFrom = 64

// userHZ is the kernel's USER_HZ, the unit of /proc/PID/stat's start time;
// it is 100 on every Linux architecture hinomi runs on.
const userHZ = 100

// Proc is one process as hinomi sees it.
type Proc struct {
	PID  int    `json:"pid"`
	PPID int    `json:"ppid"`
	UID  int    `json:"uid"`  // real
	EUID int    `json:"euid"` // effective: the kernel charges inotify here
	Comm string `json:"comm"`
	// Cmdline is the command line, its secrets redacted, as the pass read
	// it; on a live host the pass leaves it to Command.
	Cmdline string `json:"cmdline,omitempty"`
	// cmd reads the command line when Command first asks (live hosts).
	cmd *lazyCmdline
	// State is the one-letter state from /proc/PID/stat (R, S, D, Z, …).
	State   string    `json:"state"`
	Threads int       `json:"threads"`
	Started time.Time `json:"started"`
	Kernel  bool      `json:"kernel,omitempty"` // a kernel thread
	Cgroup  string    `json:"cgroup,omitempty"`
	Owner   Owner     `json:"owner"`
	// PidsCgroup is the path of the cgroup that holds the process's pids
	// limit: in the v1 "pids" hierarchy when PidsV1, else in the unified one.
	PidsCgroup string `json:"pids_cgroup,omitempty"`
	PidsV1     bool   `json:"pids_v1,omitempty"`
	// NetNS is the inode number of the process's network namespace, 0
	// when the pass did not read it (a snapshot, a kernel thread).
	NetNS uint64 `json:"-"`
	// Wchan is the kernel function a sleeping (S or D) process waits in.
	Wchan string `json:"wchan,omitempty"`
	// StuckThreads are the threads other than the main one that are in
	// uninterruptible sleep (D): a multi-threaded server whose main thread
	// sleeps normally can have a worker stuck on storage.
	StuckThreads []Thread `json:"stuck_threads,omitempty"`

	// FDs is -1 when the descriptor table could not be read (permission).
	FDs              int `json:"fds"`
	InotifyInstances int `json:"inotify_instances"`
	InotifyWatches   int `json:"inotify_watches"`
	// NofileSoft is RLIMIT_NOFILE's soft limit, 0 when not read (fewer than
	// limitsFrom descriptors) and -1 for unlimited.
	NofileSoft int `json:"nofile_soft,omitempty"`
	// CPUTicks is utime+stime from /proc/PID/stat (all threads, USER_HZ
	// ticks) when the pass read it; StartTicks its start time in ticks
	// after boot, which tells a reused pid apart.
	CPUTicks   uint64 `json:"-"`
	StartTicks uint64 `json:"-"`
}

// Thread is one thread of a process, by its own id.
type Thread struct {
	TID int `json:"tid"`
	// Wchan is the kernel function the thread waits in.
	Wchan string `json:"wchan,omitempty"`
}

// InD reports whether the process or any of its threads is in
// uninterruptible sleep.
func (p *Proc) InD() bool { return p.State == "D" || len(p.StuckThreads) > 0 }

// Wchans are the kernel functions the process's main thread and its stuck
// threads wait in, each once.
func (p *Proc) Wchans() []string {
	var out []string
	if p.Wchan != "" {
		out = append(out, p.Wchan)
	}
	for _, t := range p.StuckThreads {
		if t.Wchan != "" && !slices.Contains(out, t.Wchan) {
			out = append(out, t.Wchan)
		}
	}
	return out
}

// Table is the result of one pass.
type Table struct {
	Procs []*Proc
	// Boot is when the kernel started, from /proc/stat's btime.
	Boot time.Time
	// Hidden counts processes whose descriptor tables could not be read
	// (not root, or hidepid): their fds and inotify use are unknown.
	Hidden int
	// Took is the wall time of the pass.
	Took time.Duration
	// Pass says how the descriptor tables, inotify watches and threads
	// were read: "bpf" (the BPF pass, procbpf) or "proc"; PassNote why not
	// "bpf".
	Pass     string `json:"-"`
	PassNote string `json:"-"`
	// Start is when the pass began, and Busy the ticks all CPUs had spent
	// out of idle and iowait by then (/proc/stat): with each process's
	// CPUTicks, the first reading of a CPU-use sample that overlaps the
	// pass instead of waiting after it.
	Start time.Time `json:"-"`
	Busy  uint64    `json:"-"`
	// Names are the owner names ResolveNames found, for every container the
	// engines know (exited ones too), not only those with a process here.
	Names Names `json:"-"`
}

// BusyTicks sums the "cpu " line of /proc/stat that is not idle or
// iowait: user, nice, system, irq, softirq and steal, in USER_HZ ticks.
func BusyTicks(stat []byte) uint64 {
	for line := range bytes.Lines(stat) {
		v, ok := bytes.CutPrefix(line, []byte("cpu "))
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		var sum uint64
		for _, i := range []int{0, 1, 2, 5, 6, 7} { // user nice system [idle iowait] irq softirq steal
			if i < len(f) {
				n, _ := strconv.ParseUint(string(f[i]), 10, 64)
				sum += n
			}
		}
		return sum
	}
	return 0
}

var inotifyTarget = []byte("anon_inode:inotify")

// CountInotifyWatches counts the watches listed in the content of an inotify
// descriptor's /proc/PID/fdinfo/FD: one "inotify wd:" line per watch.
func CountInotifyWatches(fdinfo []byte) int {
	n := 0
	for line := range bytes.Lines(fdinfo) {
		if bytes.HasPrefix(line, []byte("inotify wd:")) {
			n++
		}
	}
	return n
}

// bootTime reads btime from /proc/stat.
// BootTime is when the kernel started, from /proc/stat's btime (zero
// when the text has none).
func BootTime(stat []byte) time.Time { return bootTime(stat) }

func bootTime(stat []byte) time.Time {
	for line := range bytes.Lines(stat) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			if sec, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64); err == nil && sec > 0 {
				return time.Unix(sec, 0).UTC()
			}
		}
	}
	return time.Time{}
}

// ByPID returns the process with pid, or nil.
func (t *Table) ByPID(pid int) *Proc {
	i := sort.Search(len(t.Procs), func(i int) bool { return t.Procs[i].PID >= pid })
	if i < len(t.Procs) && t.Procs[i].PID == pid {
		return t.Procs[i]
	}
	return nil
}

// HasComm reports whether a process runs under one of the names.
func (t *Table) HasComm(names ...string) bool {
	for _, p := range t.Procs {
		if slices.Contains(names, p.Comm) {
			return true
		}
	}
	return false
}

// Name resolves owners' human names with the given resolver results.
func (t *Table) Name(names Names) {
	for _, p := range t.Procs {
		if n, ok := names[p.Owner.ID]; ok && p.Owner.Name == "" {
			p.Owner.Name = n
		}
	}
}

// Names maps an owner ID (container ID, guest ID) to its human name.
type Names map[string]string

// secretWords mark command-line arguments whose values must not be shown
// or saved in a snapshot.
var secretWords = []string{"pass", "secret", "token", "key", "auth", "credential", "pwd"}

// RedactArgs hides the values of arguments that look like secrets:
// "--password=x", "--token x", "-pSECRET" (mysql) become "…=<redacted>".
func RedactArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 1; i < len(out); i++ {
		a := out[i]
		lower := strings.ToLower(a)
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if strings.HasPrefix(a, "-p") && !strings.HasPrefix(a, "--") && len(a) > 2 && !strings.Contains(a, "=") {
			out[i] = "-p<redacted>"
			continue
		}
		secret := false
		for _, w := range secretWords {
			if strings.Contains(lower, w) {
				secret = true
				break
			}
		}
		if !secret {
			continue
		}
		if k, _, ok := strings.Cut(a, "="); ok {
			out[i] = k + "=<redacted>"
		} else if i+1 < len(out) && !strings.HasPrefix(out[i+1], "-") {
			out[i+1] = "<redacted>"
			i++
		}
	}
	return out
}
