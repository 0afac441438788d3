// Package proctable builds, in one pass over /proc, the process table that
// every hinomi check reads: who each process is (pid, user, command,
// container), what state it is in, and what shared kernel resources it holds
// (file descriptors, inotify instances and watches) against its own limits.
// Nothing else in hinomi walks /proc per process.
package proctable

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/host"
)

// pfKthread is the PF_KTHREAD bit of /proc/PID/stat's flags.
const pfKthread = 0x00200000

// limitsFrom is the fd count from which a process's RLIMIT_NOFILE is read.
// A process with fewer descriptors cannot be near any limit a distribution
// ships, and skipping the read keeps the pass fast on hosts with thousands
// of small processes.
const limitsFrom = 64

// Proc is one process as hinomi sees it.
type Proc struct {
	PID     int    `json:"pid"`
	PPID    int    `json:"ppid"`
	UID     int    `json:"uid"`  // real
	EUID    int    `json:"euid"` // effective: the kernel charges inotify here
	Comm    string `json:"comm"`
	Cmdline string `json:"cmdline,omitempty"`
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
	// Wchan is the kernel function a sleeping (S or D) process waits in.
	Wchan string `json:"wchan,omitempty"`

	// FDs is -1 when the descriptor table could not be read (permission).
	FDs              int `json:"fds"`
	InotifyInstances int `json:"inotify_instances"`
	InotifyWatches   int `json:"inotify_watches"`
	// NofileSoft is RLIMIT_NOFILE's soft limit, 0 when not read (fewer than
	// limitsFrom descriptors) and -1 for unlimited.
	NofileSoft int `json:"nofile_soft,omitempty"`
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
}

// Scan walks the source's /proc once with a pool of workers. Processes that
// exit during the walk are left out; they are not errors.
func Scan(src *host.Source) (*Table, error) {
	start := time.Now()
	pfs, err := src.ProcFS()
	if err != nil {
		return nil, err
	}
	t := &Table{}
	if st, err := src.ReadFile("/proc/stat"); err == nil {
		t.Boot = bootTime(st)
	}
	names, err := src.ReadDirNames("/proc")
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)

	out := make([]*Proc, len(pids))
	hidden := make([]bool, len(pids))
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	workers := 2 * runtime.GOMAXPROCS(0)
	for range workers {
		wg.Go(func() {
			s := scanner{src: src, pfs: pfs, boot: t.Boot, buf: make([]byte, 4096)}
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(pids) {
					return
				}
				out[i], hidden[i] = s.proc(pids[i])
			}
		})
	}
	wg.Wait()
	for i, p := range out {
		if p != nil {
			t.Procs = append(t.Procs, p)
			if hidden[i] {
				t.Hidden++
			}
		}
	}
	t.Took = time.Since(start)
	return t, nil
}

type scanner struct {
	src  *host.Source
	pfs  procfs.FS
	boot time.Time
	buf  []byte
}

func (s *scanner) path(pid int, rest string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + rest
}

// proc reads one process; nil means it is gone (or unreadable at its core).
func (s *scanner) proc(pid int) (*Proc, bool) {
	rec := s.src.Recorder()
	pp, err := s.pfs.Proc(pid)
	if err != nil {
		return nil, false
	}
	st, err := pp.Stat()
	if err != nil {
		return nil, false
	}
	if rec != nil {
		for _, f := range []string{"stat", "status", "cgroup", "comm", "limits", "wchan"} {
			_, _ = s.src.ReadFile(s.path(pid, f))
		}
	}
	p := &Proc{
		PID: pid, PPID: st.PPID, Comm: st.Comm, State: st.State,
		Threads: st.NumThreads, Kernel: st.Flags&pfKthread != 0, FDs: -1,
		UID: -1, EUID: -1,
	}
	if !s.boot.IsZero() {
		p.Started = s.boot.Add(time.Duration(st.Starttime) * time.Second / userHZ).UTC()
	}
	if status, err := pp.NewStatus(); err == nil {
		p.UID, p.EUID = int(status.UIDs[0]), int(status.UIDs[1])
	}
	if p.Kernel {
		p.FDs = 0
		p.Owner = Owner{Kind: "host"}
		return p, false
	}
	if cgs, err := pp.Cgroups(); err == nil {
		p.Owner, p.Cgroup = ownerOf(cgs)
		for _, cg := range cgs {
			if slices.Contains(cg.Controllers, "pids") {
				p.PidsCgroup, p.PidsV1 = cg.Path, true
				break
			}
			if cg.HierarchyID == 0 {
				p.PidsCgroup = cg.Path
			}
		}
	}
	if args, err := pp.CmdLine(); err == nil {
		args = RedactArgs(args)
		p.Cmdline = strings.Join(args, " ")
		if rec != nil {
			rec.Raw(s.path(pid, "cmdline"), []byte(strings.Join(args, "\x00")+"\x00"))
		}
	}
	// Sleeping processes too: a process waiting on a FUSE server sleeps
	// interruptibly (S), in request_wait_answer, not in D.
	if p.State == "D" || p.State == "S" {
		if b, err := s.src.ReadFile(s.path(pid, "wchan")); err == nil {
			if w := strings.TrimSpace(string(b)); w != "0" {
				p.Wchan = w
			}
		}
	}
	hidden := s.fds(p)
	if p.FDs >= limitsFrom || (rec != nil && p.FDs > 0) {
		if lim, err := pp.Limits(); err == nil {
			p.NofileSoft = int(lim.OpenFiles)
			if lim.OpenFiles == ^uint64(0) {
				p.NofileSoft = -1
			}
		}
	}
	return p, hidden
}

// userHZ is the kernel's USER_HZ, the unit of /proc/PID/stat's start time;
// it is 100 on every Linux architecture hinomi runs on.
const userHZ = 100

// fds counts the descriptor table and the inotify watches behind it. It
// resolves each descriptor with readlinkat on the open fd directory rather
// than by path, which halves the system calls on hosts with 100,000 fds.
func (s *scanner) fds(p *Proc) (hidden bool) {
	dir := s.src.Path(s.path(p.PID, "fd"))
	d, err := os.Open(dir)
	if err != nil {
		return errors.Is(err, fs.ErrPermission)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return errors.Is(err, fs.ErrPermission)
	}
	p.FDs = len(names)
	rec := s.src.Recorder()
	dfd := int(d.Fd())
	for _, n := range names {
		k, err := unix.Readlinkat(dfd, n, s.buf)
		if err != nil {
			continue // closed since readdir
		}
		target := s.buf[:k]
		if rec != nil {
			rec.Symlink(s.path(p.PID, "fd/"+n), string(target))
		}
		if !bytes.Equal(target, inotifyTarget) {
			continue
		}
		p.InotifyInstances++
		info, err := s.src.ReadFile(s.path(p.PID, "fdinfo/"+n))
		if err != nil {
			continue
		}
		p.InotifyWatches += CountInotifyWatches(info)
	}
	return false
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
