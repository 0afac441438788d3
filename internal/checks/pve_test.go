package checks

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
)

// On a host that is neither a PVE node nor a running corosync node (this
// one: at most Debian's corosync package, installed and not running), every
// pve check says not applicable, and cheaply: the mount table it shares
// with the other checks, one directory listing and one file read.
func TestPVEChecksNotApplicableElsewhere(t *testing.T) {
	src := host.Live()
	procs, err := proctable.Scan(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	if procs.HasComm("corosync", "pmxcfs") {
		t.Skip("corosync or pmxcfs runs on this host")
	}
	env := &Env{Src: src, Host: "h", Procs: procs, Now: time.Now(), Mounts: NewMountProber(time.Second), Log: slog.New(slog.DiscardHandler)}
	_, _ = mounts(env) // read once per run for every check anyway
	start := time.Now()
	for _, c := range All() {
		if len(c.Name) < 4 || c.Name[:4] != "pve-" {
			continue
		}
		res, err := c.Run(t.Context(), env)
		if !errors.Is(err, ErrNotApplicable) || len(res.Findings)+len(res.Blind) > 0 {
			t.Errorf("%s: %v, %+v", c.Name, err, res)
		}
	}
	took := time.Since(start)
	t.Logf("the pve checks on a host without PVE or corosync took %s", took)
	if took > 50*time.Millisecond {
		t.Errorf("the pve checks took %s on a host without PVE or corosync", took)
	}
}
