package proctable

import (
	"context"
	"sync"

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

func runBPF(ctx context.Context) bpfOutcome {
	shared.Lock()
	if shared.pass == nil && shared.err == nil {
		shared.pass, shared.err = procbpf.Load()
	}
	pass, err := shared.pass, shared.err
	shared.Unlock()
	if err != nil {
		return bpfOutcome{err: err}
	}
	res, err := pass.Run(ctx)
	return bpfOutcome{res, err}
}
