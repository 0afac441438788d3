package proctable

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/procbpf"
)

// shared is the BPF pass of this process, loaded on the first scan and
// kept: the agent scans every interval, and loading is most of a pass's
// cost. A load that failed is not tried again.
var shared struct {
	sync.Mutex
	pass *procbpf.Pass
	err  error
}

type bpfOutcome struct {
	res *procbpf.Result
	err error
}

// bpfRun is the BPF pass running on a thread of its own.
type bpfRun struct {
	done chan bpfOutcome

	mu   sync.Mutex
	tid  int  // the thread, 0 until known
	over bool // the thread is ending: tid is not to be touched
}

// startBPF loads the pass if it is not yet, and runs it.
func startBPF(ctx context.Context, load bool) *bpfRun {
	r := &bpfRun{done: make(chan bpfOutcome, 1)}
	go func() {
		// Locked and never unlocked: the thread ends with the goroutine,
		// so that no other goroutine ever runs on a thread yield lowered.
		runtime.LockOSThread()
		r.mu.Lock()
		r.tid = unix.Gettid()
		r.mu.Unlock()
		out := runBPF(ctx, load)
		r.mu.Lock()
		r.over = true
		r.mu.Unlock()
		r.done <- out
	}()
	return r
}

// yield gives the pass's thread the lowest priority there is (SCHED_IDLE)
// once its result is no longer wanted. Neither the kernel's verifier (the
// loader restarts it when a signal interrupts it) nor a read of the
// iterator can be stopped from outside, and under a tight CPU quota they
// would otherwise take the CPU time that stopping needs.
func (r *bpfRun) yield() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tid == 0 || r.over {
		return
	}
	_ = unix.SchedSetAttr(r.tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0)
}

func runBPF(ctx context.Context, load bool) bpfOutcome {
	if load {
		shared.Lock()
		loadShared()
	} else if !shared.TryLock() {
		// LoadBPF is loading it: this scan reads /proc rather than wait.
		return bpfOutcome{err: errNotLoaded}
	}
	pass, err := shared.pass, shared.err
	shared.Unlock()
	switch {
	case err != nil:
		return bpfOutcome{err: err}
	case pass == nil:
		return bpfOutcome{err: errNotLoaded}
	}
	res, err := pass.Run(ctx)
	return bpfOutcome{res, err}
}

var errNotLoaded = errors.New("the BPF pass is not loaded yet")

// loadShared loads the shared pass unless it is loaded or failed; shared
// is locked.
func loadShared() {
	if shared.pass == nil && shared.err == nil {
		shared.pass, shared.err = procbpf.Load()
	}
}

// LoadBPF loads the BPF pass for the scans that do not load it themselves
// (Options.NoBPFLoad), on a thread at the lowest priority there is
// (SCHED_IDLE): the agent loads it once, after its first report, without
// taking CPU from the host or from its own work. It returns whether the
// pass is ready, and why not.
func LoadBPF() error {
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine.
		runtime.LockOSThread()
		_ = unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0)
		shared.Lock()
		loadShared()
		err := shared.err
		shared.Unlock()
		done <- err
	}()
	return <-done
}
