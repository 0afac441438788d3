// Package procbpf counts, in one pass of a BPF task iterator, what the
// /proc pass spends most of its time on: every process's descriptors, the
// inotify instances among them and the watches behind each, and which
// threads are in uninterruptible sleep (D). The kernel hands over one
// fixed-size record per process instead of a line per descriptor, watch
// and thread; under 2,000 processes, 100,000 descriptors and 50,000
// watches the pass takes about 40 ms where /proc takes hundreds.
//
// It needs root (CAP_BPF and CAP_PERFMON), BTF at /sys/kernel/btf/vmlinux
// and Linux 5.17 or later, and hinomi in the initial pid namespace (the
// kernel's pids are then /proc's). Where any is missing Load says why, and
// proctable reads /proc as before.
//
// The program is src/procpass.c, built by scripts/bpf into procpass.o,
// which is committed and embedded: building hinomi needs no C compiler.
package procbpf

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

//go:embed procpass.o
var object []byte

// Proc is what the pass read of one process.
type Proc struct {
	// StartNS is when it started, in nanoseconds after boot: with
	// /proc/PID/stat's start time it tells a reused pid apart.
	StartNS uint64
	Threads int
	// FDs, InotifyInstances and InotifyWatches are its descriptor table's.
	FDs, InotifyInstances, InotifyWatches int
	// NofileSoft is RLIMIT_NOFILE's soft limit, -1 for unlimited.
	NofileSoft int
	// Stuck are its threads in D, the main one included when it is.
	Stuck []int
	// Partial is set when a count could not be completed (an inotify
	// instance with more watches than one walk may visit, or a table that
	// could not be read): the counts are then not to be used.
	Partial bool
}

// Result is one pass.
type Result struct {
	Procs map[int]*Proc
	Took  time.Duration
}

// ErrUnsupported wraps every reason the pass cannot run here.
var ErrUnsupported = errors.New("the BPF pass cannot run here")

// Pass is the loaded program. One pass runs at a time.
type Pass struct {
	mu    sync.Mutex
	coll  *ebpf.Collection
	prog  *ebpf.Program
	calib int
	buf   []byte
}

// Init pid and user namespaces' inode numbers (PROC_PID_INIT_INO and
// PROC_USER_INIT_INO in the kernel), the same on every Linux.
const (
	initPidNS  = "pid:[4026531836]"
	initUserNS = "user:[4026531837]"
)

// Load loads and verifies the program (about 90 ms, most of it the
// kernel's verifier). Its first Run learns inotify files' f_op from an
// instance Load opens, leaves that instance out of its counts, and closes
// it.
func Load() (*Pass, error) {
	if err := initialNamespaces(); err != nil {
		return nil, err
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(object))
	if err != nil {
		return nil, fmt.Errorf("reading the embedded program: %w", err)
	}
	// The program learns which files are inotify instances from one of
	// the reader's own.
	calib, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%w: inotify_init1: %v", ErrUnsupported, err)
	}
	v := spec.Variables["calib_fd"]
	if v == nil {
		unix.Close(calib)
		return nil, errors.New("the embedded program has no calib_fd")
	}
	if err := v.Set(int32(calib)); err != nil {
		unix.Close(calib)
		return nil, err
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		unix.Close(calib)
		return nil, fmt.Errorf("%w: loading the program: %v", ErrUnsupported, err)
	}
	prog := coll.Programs["procpass"]
	if prog == nil {
		coll.Close()
		unix.Close(calib)
		return nil, errors.New("the embedded program has no procpass")
	}
	return &Pass{coll: coll, prog: prog, calib: calib, buf: make([]byte, 0, 256<<10)}, nil
}

// initialNamespaces is nil when this process is in the initial pid and
// user namespaces: the iterator reports the kernel's pids, which are then
// this /proc's.
func initialNamespaces() error {
	for _, want := range []string{initPidNS, initUserNS} {
		kind := want[:bytes.IndexByte([]byte(want), ':')]
		got, err := os.Readlink("/proc/self/ns/" + kind)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnsupported, err)
		}
		if got != want {
			return fmt.Errorf("%w: in a %s namespace of its own (%s), where the kernel's pids and ids are not /proc's", ErrUnsupported, kind, got)
		}
	}
	return nil
}

// Close unloads the program.
func (p *Pass) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.coll == nil {
		return nil
	}
	p.coll.Close()
	p.coll, p.prog = nil, nil
	if p.calib >= 0 {
		unix.Close(p.calib)
		p.calib = -1
	}
	return nil
}

// recSize is sizeof(struct rec) in src/procpass.c.
const recSize = 48

// readSize is how much one read of the iterator asks for.
const readSize = 4096

const (
	recLeader = 1
	recD      = 2
	recCapped = 4
)

// Run makes one pass.
func (p *Pass) Run(ctx context.Context) (*Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prog == nil {
		return nil, errors.New("the BPF pass is closed")
	}
	start := time.Now()
	l, err := link.AttachIter(link.IterOptions{Program: p.prog})
	if err != nil {
		return nil, fmt.Errorf("%w: attaching the iterator: %v", ErrUnsupported, err)
	}
	defer l.Close()
	rd, err := l.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: opening the iterator: %v", ErrUnsupported, err)
	}
	defer rd.Close()
	b := p.buf[:0]
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		// The program runs inside read(), which no signal interrupts: a
		// read of readSize bytes runs it for about 85 processes, so that
		// a process told to stop is not held by one read of them all.
		n, err := rd.Read(b[len(b):min(cap(b), len(b)+readSize)])
		b = b[:len(b)+n]
		if err == io.EOF || (err == nil && n == 0) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the iterator: %w", err)
		}
	}
	p.buf = b[:0]
	res, err := parse(b)
	if err != nil {
		return nil, err
	}
	var fop uint64
	if v := p.coll.Variables["ino_fop"]; v != nil {
		if err := v.Get(&fop); err != nil {
			return nil, err
		}
	}
	if fop == 0 {
		return nil, fmt.Errorf("%w: the program did not find its own inotify instance", ErrUnsupported)
	}
	if p.calib >= 0 {
		// Learned: the instance is closed, so that it shows nowhere (the
		// program left it out of this pass's counts), and forgotten by
		// the program before its address can be another file's.
		if v := p.coll.Variables["calib_file"]; v == nil || v.Set(uint64(0)) != nil {
			return nil, errors.New("the program's calib_file cannot be reset")
		}
		unix.Close(p.calib)
		p.calib = -1
	}
	res.Took = time.Since(start)
	return res, nil
}

// parse reads the records. A thread's record in D can come before or
// after its leader's.
func parse(b []byte) (*Result, error) {
	if len(b)%recSize != 0 {
		return nil, fmt.Errorf("the iterator gave %d bytes, not a whole number of %d-byte records", len(b), recSize)
	}
	res := &Result{Procs: make(map[int]*Proc, len(b)/recSize)}
	get := func(tgid int) *Proc {
		q := res.Procs[tgid]
		if q == nil {
			q = &Proc{}
			res.Procs[tgid] = q
		}
		return q
	}
	leaders := make(map[int]bool, len(b)/recSize)
	ne := binary.NativeEndian
	for ; len(b) >= recSize; b = b[recSize:] {
		tgid, tid, flags := int(ne.Uint32(b)), int(ne.Uint32(b[4:])), ne.Uint32(b[8:])
		q := get(tgid)
		if flags&recD != 0 {
			q.Stuck = append(q.Stuck, tid)
		}
		if flags&recLeader == 0 {
			continue
		}
		leaders[tgid] = true
		q.Threads = int(ne.Uint32(b[16:]))
		q.FDs = int(ne.Uint32(b[20:]))
		q.InotifyInstances = int(ne.Uint32(b[24:]))
		q.InotifyWatches = int(ne.Uint32(b[28:]))
		q.StartNS = ne.Uint64(b[32:])
		q.NofileSoft = nofile(ne.Uint64(b[40:]))
		q.Partial = flags&recCapped != 0
	}
	// A thread in D whose leader's record is missing (the leader exited
	// between the two) leaves a process without counts: it is dropped,
	// and read from /proc.
	for tgid := range res.Procs {
		if !leaders[tgid] {
			delete(res.Procs, tgid)
		}
	}
	return res, nil
}

func nofile(v uint64) int {
	if v > 1<<62 {
		return -1 // RLIM_INFINITY
	}
	return int(v)
}
