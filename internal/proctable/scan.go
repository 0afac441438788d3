package proctable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/procbpf"
)

// chunkFDs is the most descriptors one worker resolves in one piece of
// work. A process holding more is split into ranges of descriptor numbers
// that the workers share, so two processes with 50,000 descriptors each
// keep every core busy, not one each.
const chunkFDs = 2048

// bpfWait is how long the table waits for the BPF pass once the rest of
// the first part of the /proc pass is done; about 0.1 s is usual.
const bpfWait = 2 * time.Second

// Scan walks the source's /proc once with a pool of GOMAXPROCS workers.
// Processes that exit during the walk are left out; they are not errors.
// When ctx is done the walk stops at once and Scan returns ctx's error: a
// table cut short would make findings look resolved.
//
// On a live host where the BPF pass can run (procbpf), the descriptor
// tables, inotify watches and threads in D come from it, and /proc is read
// only for each process's own files; elsewhere, and for any process the
// BPF pass did not see whole, from /proc.
func Scan(ctx context.Context, src *host.Source) (*Table, error) {
	return ScanWith(ctx, src, Options{})
}

// Options change how Scan reads.
type Options struct {
	// NoBPF reads everything from /proc.
	NoBPF bool
	// NoBPFLoad uses the BPF pass only when it is loaded already
	// (LoadBPF), and never loads it.
	NoBPFLoad bool
}

// ScanWith is Scan with options.
func ScanWith(ctx context.Context, src *host.Source, o Options) (*Table, error) {
	start := time.Now()
	t := &Table{Start: start, Pass: "proc"}
	// The BPF pass (its loading is most of it, the first time) runs beside
	// the first part of the /proc pass, which needs nothing from it.
	var fromBPF *bpfRun
	switch {
	case !src.Live():
		t.PassNote = "a snapshot: its /proc is read"
	case src.Recorder() != nil:
		t.PassNote = "recording a snapshot, which keeps the /proc files read"
	case o.NoBPF:
		t.PassNote = "the BPF pass was turned off"
	default:
		fromBPF = startBPF(ctx, !o.NoBPFLoad)
	}
	bpfDone := func() *procbpf.Result {
		if fromBPF == nil {
			return nil
		}
		var r bpfOutcome
		select {
		case r = <-fromBPF.done:
		case <-ctx.Done():
			// Stopping: the pass is not waited for, nor let take the
			// CPU that stopping needs.
			fromBPF.yield()
			r.err = ctx.Err()
		case <-time.After(bpfWait):
			// A verifier that takes this long (it bounds itself at a
			// million instructions, not in time) does not hold up the
			// table: /proc gives it.
			fromBPF.yield()
			r.err = fmt.Errorf("the BPF pass took longer than %v", bpfWait)
		}
		fromBPF = nil
		if r.err != nil {
			t.PassNote = r.err.Error()
			return nil
		}
		t.Pass, t.PassNote = "bpf", ""
		return r.res
	}
	defer bpfDone()

	if st, err := src.ReadFile("/proc/stat"); err == nil {
		t.Boot = bootTime(st)
		t.Busy = BusyTicks(st)
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

	pfs, err := src.ProcFS()
	if err != nil {
		return nil, err
	}
	scanners := make([]*scanner, runtime.GOMAXPROCS(0))
	for i := range scanners {
		scanners[i] = newScanner(src, pfs, t.Boot)
	}

	// First every process, with the descriptor tables up to chunkFDs;
	// then the ranges of the bigger tables. With the BPF pass, first
	// every process's own files, then what the BPF pass could not say.
	out := make([]*Proc, len(pids))
	hidden := make([]bool, len(pids))
	var (
		mu    sync.Mutex
		later []*fdRange
	)
	keep := func(rs []*fdRange) {
		if len(rs) > 0 {
			mu.Lock()
			later = append(later, rs...)
			mu.Unlock()
		}
	}
	if fromBPF == nil {
		parallel(ctx, scanners, len(pids), func(s *scanner, i int) {
			p, dir := s.proc(pids[i])
			if p == nil {
				return
			}
			defer unix.Close(dir)
			var rs []*fdRange
			hidden[i], rs = s.resources(ctx, dir, p)
			out[i] = p
			keep(rs)
		})
	} else {
		parallel(ctx, scanners, len(pids), func(s *scanner, i int) {
			if p, dir := s.proc(pids[i]); p != nil {
				unix.Close(dir)
				out[i] = p
			}
		})
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading /proc: %w", err)
		}
		var seen map[int]*procbpf.Proc // nil when the BPF pass failed
		if b := bpfDone(); b != nil {
			seen = b.Procs
		}
		// What the BPF pass did not see whole (a process started since it,
		// pid 1 on some kernels, a walk cut short) is read from /proc, and
		// so is where its threads in D wait.
		type pending struct {
			i     int
			stuck []int // tids in D, when the counts came from the BPF pass
		}
		var rest []pending
		for i, p := range out {
			if p == nil || p.Kernel {
				continue
			}
			r := seen[p.PID]
			if r == nil || r.Partial || r.StartNS/(1e9/userHZ) != p.StartTicks {
				rest = append(rest, pending{i: i})
				continue
			}
			p.FDs, p.InotifyInstances, p.InotifyWatches = r.FDs, r.InotifyInstances, r.InotifyWatches
			if p.FDs >= limitsFrom {
				p.NofileSoft = r.NofileSoft
			}
			var stuck []int
			for _, tid := range r.Stuck {
				// The main thread's state is the process's own.
				if tid != p.PID {
					stuck = append(stuck, tid)
				}
			}
			if len(stuck) > 0 {
				rest = append(rest, pending{i: i, stuck: stuck})
			}
		}
		parallel(ctx, scanners, len(rest), func(s *scanner, k int) {
			i, p := rest[k].i, out[rest[k].i]
			dir, err := s.openProc(p.PID)
			if err != nil {
				return // gone since: kept, with what was read
			}
			defer unix.Close(dir)
			if st := rest[k].stuck; st != nil {
				// Each is looked at again, as the /proc pass does, before
				// its wchan is read: it may have left D, or exited, since.
				for _, tid := range slices.Sorted(slices.Values(st)) {
					id := strconv.Itoa(tid)
					if b, err := s.readQuick(dir, p.PID, "task/"+id+"/stat"); err == nil && stateOf(b) == 'D' {
						s.stuck(dir, p, id)
					}
				}
				return
			}
			var rs []*fdRange
			hidden[i], rs = s.resources(ctx, dir, p)
			keep(rs)
		})
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading /proc: %w", err)
	}
	later = interleave(later)
	parallel(ctx, scanners, len(later), func(s *scanner, i int) { s.walkRange(ctx, later[i]) })
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading /proc: %w", err)
	}
	for _, r := range later {
		r.p.FDs += int(r.fds.Load())
		r.p.InotifyInstances += int(r.instances.Load())
		r.p.InotifyWatches += int(r.watches.Load())
	}

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

// interleave orders the ranges so that neighbours belong to different
// processes where it can: the workers take them in order, and two workers
// resolving descriptors of one process at once contend in the kernel for
// that process's locks (its task lock, its descriptor table).
func interleave(rs []*fdRange) []*fdRange {
	var procs []*Proc
	by := map[*Proc][]*fdRange{}
	for _, r := range rs {
		if by[r.p] == nil {
			procs = append(procs, r.p)
		}
		by[r.p] = append(by[r.p], r)
	}
	out := make([]*fdRange, 0, len(rs))
	for len(out) < len(rs) {
		for _, p := range procs {
			if q := by[p]; len(q) > 0 {
				out = append(out, q[0])
				by[p] = q[1:]
			}
		}
	}
	return out
}

// parallel runs do(s, i) for every i below n on the scanners' goroutines,
// one scanner each, and stops handing out work once ctx is done.
func parallel(ctx context.Context, scanners []*scanner, n int, do func(s *scanner, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, s := range scanners {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				do(s, i)
			}
		})
	}
	wg.Wait()
}

// fdRange is a range of one process's descriptor numbers, resolved by
// whichever worker takes it. hi < 0 means up to the end of the table.
type fdRange struct {
	p      *Proc
	lo, hi int

	fds, instances, watches atomic.Int64
}

// scanner is one worker's state: its buffers are reused for every file it
// reads, so the pass allocates little beyond the table itself.
type scanner struct {
	src  *host.Source
	rec  *host.Recorder
	pfs  procfs.FS
	boot time.Time
	// fast is set on a live host that is not being recorded: descriptor
	// counts then come from the kernel (the size of /proc/PID/fd) and
	// descriptors are probed by number instead of listed.
	fast bool

	// cgroups are the cgroup files this worker has read, by content.
	cgroups map[string]cgroupInfo

	buf   []byte // file contents
	link  []byte // a descriptor's target
	name  []byte // a NUL-terminated descriptor number
	dents []byte // getdents records
}

func newScanner(src *host.Source, pfs procfs.FS, boot time.Time) *scanner {
	return &scanner{
		src: src, rec: src.Recorder(), pfs: pfs, boot: boot, fast: src.Live() && src.Recorder() == nil, cgroups: map[string]cgroupInfo{},
		buf: make([]byte, 4096), link: make([]byte, 4096), name: make([]byte, 0, 16), dents: make([]byte, 32<<10),
	}
}

func (s *scanner) path(pid int, rest string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + rest
}

// read returns the content of rel inside the process directory dir, in a
// buffer that the next read reuses. When recording, the file goes through
// the source, which copies it into the snapshot.
func (s *scanner) read(dir, pid int, rel string) ([]byte, error) {
	if s.rec != nil {
		return s.src.ReadFile(s.path(pid, rel))
	}
	return s.readAt(dir, rel, false)
}

// readQuick is read for the files that the kernel makes without waiting
// on their process (stat, status, wchan), with raw system calls (see
// readlinkat).
func (s *scanner) readQuick(dir, pid int, rel string) ([]byte, error) {
	if s.rec != nil {
		return s.src.ReadFile(s.path(pid, rel))
	}
	return s.readAt(dir, rel, true)
}

// readAt reads rel below dir into the scanner's buffer; raw: with raw
// system calls.
func (s *scanner) readAt(dir int, rel string, raw bool) ([]byte, error) {
	s.name = append(append(s.name[:0], rel...), 0)
	fd, err := openName(dir, s.name, readFlags, raw)
	if err != nil {
		return nil, err
	}
	defer closeFD(fd, raw)
	n := 0
	for {
		if n == len(s.buf) {
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		k, err := readFD(fd, s.buf[n:], raw)
		if err != nil {
			return nil, err
		}
		n += k
		// /proc files are generated in one piece: a short read is the end.
		if k == 0 || n < len(s.buf) {
			return s.buf[:n], nil
		}
	}
}

// openProc opens /proc/PID as a directory to read below.
func (s *scanner) openProc(pid int) (int, error) {
	return unix.Open(s.src.Path("/proc/"+strconv.Itoa(pid)), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// proc reads one process's own files (stat, status, cgroup, its network
// namespace, where it waits) and returns it with its /proc directory
// open, for the caller to close; nil means it is gone (or unreadable at
// its core).
func (s *scanner) proc(pid int) (*Proc, int) {
	dir, err := s.openProc(pid)
	if err != nil {
		return nil, -1
	}
	p := s.procIn(dir, pid)
	if p == nil {
		unix.Close(dir)
		return nil, -1
	}
	return p, dir
}

func (s *scanner) procIn(dir, pid int) *Proc {
	b, err := s.readQuick(dir, pid, "stat")
	if err != nil {
		return nil
	}
	st, err := parseStat(b)
	if err != nil {
		return nil
	}
	if s.rec != nil {
		for _, f := range []string{"comm", "limits"} {
			_, _ = s.src.ReadFile(s.path(pid, f))
		}
	}
	p := &Proc{
		PID: pid, PPID: st.ppid, Comm: st.comm, State: st.state,
		Threads: st.threads, Kernel: st.flags&pfKthread != 0, FDs: -1,
		UID: -1, EUID: -1, CPUTicks: st.cpu, StartTicks: st.starttime,
	}
	if !s.boot.IsZero() {
		p.Started = s.boot.Add(time.Duration(st.starttime) * time.Second / userHZ).UTC()
	}
	if b, err := s.readQuick(dir, pid, "status"); err == nil {
		p.UID, p.EUID = statusUIDs(b)
	}
	if p.Kernel {
		p.FDs = 0
		p.Owner = Owner{Kind: "host"}
		return p
	}
	if b, err := s.read(dir, pid, "cgroup"); err == nil {
		// The processes of a service or a container share their cgroup
		// file: its owner is worked out once per worker.
		cg, ok := s.cgroups[string(b)]
		if !ok {
			cg = cgroupOf(b)
			s.cgroups[string(b)] = cg
		}
		p.Owner, p.Cgroup, p.PidsCgroup, p.PidsV1 = cg.owner, cg.path, cg.pids, cg.pidsV1
	}
	if s.fast {
		// What the conntrack check names a namespace's owner from: read
		// here, relative to the open directory, it costs a readlink.
		if n, err := readlinkat(dir, nsNet, s.link); err == nil {
			p.NetNS = netnsOfLink(s.link[:n])
		}
	}
	// The command line is read past the recorder: it is recorded redacted.
	// On a live host it is read only when a check asks (Command).
	if s.fast {
		p.cmd = &lazyCmdline{src: s.src, pid: pid, start: st.starttime}
	} else if b, err := s.readAt(dir, "cmdline", false); err == nil {
		args := RedactArgs(splitCmdline(b))
		p.Cmdline = strings.Join(args, " ")
		if s.rec != nil {
			s.rec.Raw(s.path(pid, "cmdline"), []byte(strings.Join(args, "\x00")+"\x00"))
		}
	}
	// Sleeping processes too: a process waiting on a FUSE server sleeps
	// interruptibly (S), in request_wait_answer, not in D.
	if p.State == "D" || p.State == "S" {
		p.Wchan = s.wchan(dir, pid, "wchan")
	}
	return p
}

// resources reads, from /proc, the threads of p in D and its descriptor
// table with RLIMIT_NOFILE. Descriptor ranges of a big table are returned
// for later.
func (s *scanner) resources(ctx context.Context, dir int, p *Proc) (hidden bool, later []*fdRange) {
	if p.Kernel {
		return false, nil
	}
	if p.Threads > 1 {
		s.threads(dir, p)
	}
	hidden, later = s.fds(ctx, dir, p)
	if p.FDs >= limitsFrom || (s.rec != nil && p.FDs > 0) || len(later) > 0 {
		if pp, err := s.pfs.Proc(p.PID); err == nil {
			if lim, err := pp.Limits(); err == nil {
				p.NofileSoft = int(lim.OpenFiles)
				if lim.OpenFiles == ^uint64(0) {
					p.NofileSoft = -1
				}
			}
		}
	}
	return hidden, later
}

func (s *scanner) wchan(dir, pid int, rel string) string {
	b, err := s.readQuick(dir, pid, rel)
	if err != nil {
		return ""
	}
	if w := string(bytes.TrimSpace(b)); w != "0" {
		return w
	}
	return ""
}

// cgroupInfo is what a /proc/PID/cgroup file says of its process.
type cgroupInfo struct {
	owner  Owner
	path   string
	pids   string
	pidsV1 bool
}

func cgroupOf(b []byte) cgroupInfo {
	var c cgroupInfo
	cgs := parseCgroups(b)
	c.owner, c.path = ownerOf(cgs)
	for _, cg := range cgs {
		if slices.Contains(cg.Controllers, "pids") {
			c.pids, c.pidsV1 = cg.Path, true
			break
		}
		if cg.HierarchyID == 0 {
			c.pids = cg.Path
		}
	}
	return c
}

// threads finds the threads other than the main one that are in D. Only
// their state is read; the main thread's is the process's own.
func (s *scanner) threads(dir int, p *Proc) {
	if s.fast {
		s.threadsLive(dir, p)
	} else {
		tids, err := s.src.ReadDirNames(s.path(p.PID, "task"))
		if err != nil {
			return
		}
		self := strconv.Itoa(p.PID)
		for _, tid := range tids {
			if tid == self {
				continue
			}
			b, err := s.read(dir, p.PID, "task/"+tid+"/stat")
			if err != nil || stateOf(b) != 'D' {
				continue
			}
			s.stuck(dir, p, tid)
		}
	}
	sort.Slice(p.StuckThreads, func(i, j int) bool { return p.StuckThreads[i].TID < p.StuckThreads[j].TID })
}

// threadsLive is threads on a live host, which reads as many stat files
// as the host has threads (10,000 and more): it lists the task directory
// into the scanner's buffer and opens each TID/stat relative to it, so
// that nothing is allocated and no path is looked up from /proc again.
func (s *scanner) threadsLive(dir int, p *Proc) {
	// Raw system calls, as for the stat files (see readlinkat): listing a
	// task directory waits on nothing either.
	taskDir, err := openName(dir, taskName, dirFlags, true)
	if err != nil {
		return
	}
	defer closeFD(taskDir, true)
	seen := 0
	for {
		n, _, e := unix.RawSyscall(unix.SYS_GETDENTS64, uintptr(taskDir), uintptr(unsafe.Pointer(&s.dents[0])), uintptr(len(s.dents)))
		if e != 0 || n == 0 {
			return
		}
		for b := s.dents[:n]; len(b) > 0; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
			if reclen == 0 || reclen > len(b) {
				return
			}
			name := b[19:reclen]
			b = b[reclen:]
			end := bytes.IndexByte(name, 0)
			if end <= 0 || name[0] < '0' || name[0] > '9' {
				continue // . and ..
			}
			seen++
			tid := name[:end]
			if n, err := strconv.Atoi(string(tid)); err != nil || n == p.PID {
				continue
			}
			s.name = append(append(s.name[:0], tid...), "/stat\x00"...)
			k, err := readTaskStat(taskDir, s.name, s.buf)
			if err != nil || stateOf(s.buf[:k]) != 'D' {
				continue // gone since, or not in D
			}
			s.stuck(dir, p, string(tid))
		}
		// Every thread the process had is seen: the listing's end, which
		// walks the thread list once more, is not asked for. A thread
		// started since its stat was read is seen if this batch has it.
		if seen >= p.Threads {
			return
		}
	}
}

var (
	taskName = []byte("task\x00")
	fdName   = []byte("fd\x00")
)

// stuck adds thread tid of p, in D, with where it waits.
func (s *scanner) stuck(dir int, p *Proc, tid string) {
	n, err := strconv.Atoi(tid)
	if err != nil {
		return
	}
	p.StuckThreads = append(p.StuckThreads, Thread{TID: n, Wchan: s.wchan(dir, p.PID, "task/"+tid+"/wchan")})
}

// fds counts the descriptor table and the inotify watches behind it. On a
// live host the kernel gives the count (the size of /proc/PID/fd), and the
// descriptors are resolved by number with readlinkat on the open fd
// directory: listing the directory costs as much as resolving every entry,
// and its end is a walk over every slot of the table. A table bigger than
// chunkFDs is returned as ranges for the workers to share.
func (s *scanner) fds(ctx context.Context, dir int, p *Proc) (hidden bool, later []*fdRange) {
	// Opened, and its size asked, with raw system calls (see readlinkat).
	fdDir, err := openName(dir, fdName, dirFlags, true)
	if err != nil {
		return errors.Is(err, fs.ErrPermission), nil
	}
	count := -1
	if s.fast {
		var st unix.Stat_t
		// Kernels before 6.2 give 0 here: then the directory is listed.
		if _, _, e := unix.RawSyscall(unix.SYS_FSTAT, uintptr(fdDir), uintptr(unsafe.Pointer(&st)), 0); e == 0 && st.Size > 0 {
			count = int(st.Size)
		}
	}
	if count > chunkFDs {
		unix.Close(fdDir)
		p.FDs = 0
		n := (count + chunkFDs - 1) / chunkFDs
		for i := range n {
			later = append(later, &fdRange{p: p, lo: i * chunkFDs, hi: (i + 1) * chunkFDs})
		}
		// Whatever lies beyond the dense part, listed.
		later = append(later, &fdRange{p: p, lo: n * chunkFDs, hi: -1})
		return false, later
	}
	defer unix.Close(fdDir)
	var c counts
	if count >= 0 {
		s.probe(ctx, fdDir, p.PID, 0, -1, count, &c)
	} else if err := s.list(ctx, fdDir, p.PID, 0, -1, &c); err != nil {
		return errors.Is(err, fs.ErrPermission), nil
	}
	p.FDs, p.InotifyInstances, p.InotifyWatches = c.fds, c.instances, c.watches
	return false, nil
}

type counts struct{ fds, instances, watches int }

// walkRange resolves one range of a big table.
func (s *scanner) walkRange(ctx context.Context, r *fdRange) {
	fdDir, err := unix.Open(s.src.Path(s.path(r.p.PID, "fd")), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return // gone since
	}
	defer unix.Close(fdDir)
	var c counts
	s.probe(ctx, fdDir, r.p.PID, r.lo, r.hi, -1, &c)
	r.fds.Add(int64(c.fds))
	r.instances.Add(int64(c.instances))
	r.watches.Add(int64(c.watches))
}

// probe resolves descriptors lo, lo+1, … below hi (hi < 0: no bound) until
// want are found (want < 0: no target). Tables are dense at the bottom, so
// each number is tried in turn; at a hole the kernel is asked where the
// next open descriptor is, which walks the hole only, never the rest of
// the table beyond the last descriptor.
func (s *scanner) probe(ctx context.Context, fdDir, pid, lo, hi, want int, c *counts) {
	for fd := lo; hi < 0 || fd < hi; fd++ {
		if want >= 0 && c.fds >= want {
			return
		}
		s.name = append(strconv.AppendInt(s.name[:0], int64(fd), 10), 0)
		n, err := readlinkat(fdDir, s.name, s.link)
		switch {
		case err == nil:
			s.found(pid, fd, s.link[:n], c)
			continue
		case err == unix.EACCES || err == unix.EPERM:
			// There, but not to be resolved (no ptrace rights on the
			// process): counted, not classified.
			c.fds++
			continue
		case err != unix.ENOENT:
			return // the process is going away
		}
		next, ok, err := nextFD(fdDir, fd)
		if err != nil {
			_ = s.list(ctx, fdDir, pid, fd, hi, c)
			return
		}
		if !ok {
			return
		}
		fd = next - 1
	}
}

// nextFD returns the lowest open descriptor at or above from. It lists
// /proc/PID/fd from there into a buffer too small for any entry: the kernel
// stops at the first descriptor it finds, fails with EINVAL, and leaves the
// directory offset (descriptor number plus 2) on it.
func nextFD(fdDir, from int) (int, bool, error) {
	if _, err := unix.Seek(fdDir, int64(from)+2, 0); err != nil {
		return 0, false, err
	}
	var one [1]byte
	n, err := unix.Getdents(fdDir, one[:])
	switch {
	case err == nil && n == 0:
		return 0, false, nil // end of the table
	case err != unix.EINVAL:
		return 0, false, fmt.Errorf("listing /proc/PID/fd from %d: %d bytes, %v", from, n, err)
	}
	off, err := unix.Seek(fdDir, 0, 1)
	if err != nil {
		return 0, false, err
	}
	if off < int64(from)+2 {
		return 0, false, fmt.Errorf("listing /proc/PID/fd from %d went back to offset %d", from, off)
	}
	return int(off - 2), true, nil
}

// list resolves the descriptors from lo on (below hi when hi >= 0) as the
// kernel lists them. In /proc/PID/fd a directory offset is the descriptor
// number plus 2, so a listing can start anywhere in the table.
func (s *scanner) list(ctx context.Context, fdDir, pid, lo, hi int, c *counts) error {
	if lo > 0 {
		if _, err := unix.Seek(fdDir, int64(lo)+2, 0); err != nil {
			return err
		}
	}
	for ctx.Err() == nil {
		n, err := unix.Getdents(fdDir, s.dents)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		for b := s.dents[:n]; len(b) > 0; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
			if reclen == 0 || reclen > len(b) {
				return fmt.Errorf("bad directory record in /proc/%d/fd", pid)
			}
			name := b[19:reclen]
			b = b[reclen:]
			end := bytes.IndexByte(name, 0)
			if end <= 0 {
				continue
			}
			fd, err := strconv.Atoi(string(name[:end]))
			if err != nil {
				continue // . and ..
			}
			if hi >= 0 && fd >= hi {
				return nil
			}
			k, err := readlinkat(fdDir, name[:end+1], s.link)
			switch {
			case err == nil:
				s.found(pid, fd, s.link[:k], c)
			case err == unix.EACCES || err == unix.EPERM:
				c.fds++ // listed, but not to be resolved
			}
		}
	}
	return ctx.Err()
}

// found counts one descriptor with its target.
func (s *scanner) found(pid, fd int, target []byte, c *counts) {
	c.fds++
	if s.rec != nil {
		s.rec.Symlink(s.path(pid, "fd/"+strconv.Itoa(fd)), string(target))
	}
	if !bytes.Equal(target, inotifyTarget) {
		return
	}
	c.instances++
	if n, err := s.watchesOf(pid, fd); err == nil {
		c.watches += n
	}
}

// watchesOf counts an inotify descriptor's watches from its fdinfo, read
// in pieces: one instance can hold hundreds of thousands.
func (s *scanner) watchesOf(pid, fd int) (int, error) {
	path := s.path(pid, "fdinfo/"+strconv.Itoa(fd))
	if s.rec != nil {
		b, err := s.src.ReadFile(path)
		return CountInotifyWatches(b), err
	}
	f, err := unix.Open(s.src.Path(path), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(f)
	var w watchCounter
	for {
		k, err := unix.Read(f, s.buf)
		if err != nil {
			return 0, err
		}
		w.feed(s.buf[:k])
		// /proc files are generated in one piece: a short read is the
		// end, and saves a read per instance.
		if k < len(s.buf) {
			return w.n, nil
		}
	}
}

var nsNet = []byte("ns/net\x00")

// netnsOfLink is the inode number in a namespace link, "net:[4026531840]";
// 0 if it is not one.
func netnsOfLink(b []byte) uint64 {
	s, ok := bytes.CutPrefix(b, []byte("net:["))
	if !ok || len(s) < 2 || s[len(s)-1] != ']' {
		return 0
	}
	n, err := strconv.ParseUint(string(s[:len(s)-1]), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

const (
	readFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
)

// openName opens a NUL-terminated name below dir, without the allocation
// unix.Openat makes for its string; raw: without telling the Go
// scheduler (see readlinkat).
func openName(dir int, name []byte, flags int, raw bool) (int, error) {
	var fd uintptr
	var e unix.Errno
	if raw {
		fd, _, e = unix.RawSyscall6(unix.SYS_OPENAT, uintptr(dir), uintptr(unsafe.Pointer(&name[0])), uintptr(flags), 0, 0, 0)
	} else {
		fd, _, e = unix.Syscall6(unix.SYS_OPENAT, uintptr(dir), uintptr(unsafe.Pointer(&name[0])), uintptr(flags), 0, 0, 0)
	}
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// readFD is one read(2) into b (which is not empty).
func readFD(fd int, b []byte, raw bool) (int, error) {
	var n uintptr
	var e unix.Errno
	if raw {
		n, _, e = unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	} else {
		n, _, e = unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	}
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func closeFD(fd int, raw bool) {
	if raw {
		unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
		return
	}
	unix.Close(fd)
}

// The calls below are made for every descriptor and every thread of
// the host, 100,000 and more a pass, so they go to the kernel without
// telling the Go scheduler (RawSyscall). Told, it hands the worker's P to
// another thread whenever a call outlasts 20 µs and takes it back after:
// on two cores that doubled the pass's context switches and cost a tenth
// of its wall time. It is safe because neither call can wait on another
// process: resolving a /proc descriptor link or generating a task's stat
// takes only spin locks and RCU in the kernel (a hung process blocks
// readers of its memory, as cmdline, never these), so each returns within
// microseconds. Every other /proc read goes through the scheduler.

// readlinkat is unix.Readlinkat for a name that is already NUL-terminated,
// so that resolving 100,000 descriptors allocates nothing.
func readlinkat(dir int, name, buf []byte) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_READLINKAT, uintptr(dir), uintptr(unsafe.Pointer(&name[0])),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// readTaskStat reads a task's stat file, name NUL-terminated below dir,
// into buf in one read (its state comes first, in the first bytes).
func readTaskStat(dir int, name, buf []byte) (int, error) {
	fd, err := openName(dir, name, readFlags, true)
	if err != nil {
		return 0, err
	}
	defer closeFD(fd, true)
	return readFD(fd, buf, true)
}

var inotifyWD = []byte("inotify wd:")

// watchCounter counts the lines starting with "inotify wd:" in a text fed
// in pieces.
type watchCounter struct {
	n int
	// at is how much of the prefix the current line has matched, -1 once
	// it cannot match.
	at int
}

func (w *watchCounter) feed(b []byte) {
	for _, c := range b {
		switch {
		case c == '\n':
			w.at = 0
		case w.at < 0:
		case c == inotifyWD[w.at]:
			w.at++
			if w.at == len(inotifyWD) {
				w.n++
				w.at = -1
			}
		default:
			w.at = -1
		}
	}
}

// stat is what hinomi reads of /proc/PID/stat.
type stat struct {
	comm, state          string
	ppid, flags, threads int
	starttime, cpu       uint64
}

// parseStat reads /proc/PID/stat: "pid (comm) state ppid …". The command
// may hold spaces and parentheses, so the fields are counted from the last
// ')'.
func parseStat(b []byte) (stat, error) {
	var st stat
	l, r := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if l < 0 || r < l {
		return st, errors.New("malformed /proc/PID/stat")
	}
	st.comm = string(b[l+1 : r])
	// state(0) ppid(1) … flags(6) … num_threads(17) … starttime(19):
	// the first 20 fields, split in place (2,000 processes' worth of
	// bytes.Fields was a tenth of the pass's allocations).
	var f [20][]byte
	n := 0
	for i := r + 1; i < len(b) && n < len(f); {
		for i < len(b) && (b[i] == ' ' || b[i] == '\n') {
			i++
		}
		j := i
		for j < len(b) && b[j] != ' ' && b[j] != '\n' {
			j++
		}
		if j > i {
			f[n] = b[i:j]
			n++
		}
		i = j
	}
	if n < len(f) {
		return st, errors.New("short /proc/PID/stat")
	}
	st.state = string(f[0])
	var err error
	if st.ppid, err = strconv.Atoi(string(f[1])); err != nil {
		return st, err
	}
	flags, err := strconv.ParseUint(string(f[6]), 10, 64)
	if err != nil {
		return st, err
	}
	st.flags = int(flags)
	if st.threads, err = strconv.Atoi(string(f[17])); err != nil {
		return st, err
	}
	if st.starttime, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return st, err
	}
	// utime(11) and stime(12): what a CPU-use sample starts from.
	utime, _ := strconv.ParseUint(string(f[11]), 10, 64)
	stime, _ := strconv.ParseUint(string(f[12]), 10, 64)
	st.cpu = utime + stime
	return st, nil
}

// stateOf is the state letter of a /proc/PID/task/TID/stat, 0 if unreadable.
func stateOf(b []byte) byte {
	r := bytes.LastIndexByte(b, ')')
	if r < 0 || r+2 >= len(b) {
		return 0
	}
	return b[r+2]
}

// statusUIDs reads the real and effective UIDs from /proc/PID/status.
func statusUIDs(b []byte) (int, int) {
	i := bytes.Index(b, []byte("\nUid:"))
	if i < 0 {
		return -1, -1
	}
	line := b[i+len("\nUid:"):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) < 2 {
		return -1, -1
	}
	uid, err1 := strconv.Atoi(string(f[0]))
	euid, err2 := strconv.Atoi(string(f[1]))
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return uid, euid
}

// parseCgroups reads /proc/PID/cgroup: "hierarchy-ID:controllers:path".
func parseCgroups(b []byte) []procfs.Cgroup {
	var out []procfs.Cgroup
	for line := range bytes.Lines(b) {
		f := strings.SplitN(strings.TrimRight(string(line), "\n"), ":", 3)
		if len(f) < 3 {
			continue
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		cg := procfs.Cgroup{HierarchyID: id, Path: f[2]}
		if f[1] != "" {
			cg.Controllers = strings.Split(f[1], ",")
		}
		out = append(out, cg)
	}
	return out
}

// splitCmdline splits /proc/PID/cmdline at its NULs.
func splitCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return []string{}
	}
	return strings.Split(string(b), "\x00")
}
