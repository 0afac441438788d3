// Command hinomi diagnoses and watches small self-hosted infrastructure
// hosts. See the README for its subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	// Time zones are compiled in (about 450 kB): the FROM scratch image has
	// no /usr/share/zoneinfo, and maintenance windows, --tz and the
	// console's times name zones such as Europe/Berlin.
	_ "time/tzdata"

	"github.com/hinomi/hinomi/internal/checks"
)

// statHelperArg runs hinomi as the child that stats one mount point.
const statHelperArg = "__stat-mount"

func main() {
	if len(os.Args) == 3 && os.Args[1] == statHelperArg {
		os.Exit(checks.ServeStatHelper(os.Args[2], os.Stdout))
	}
	if exe, err := os.Executable(); err == nil {
		checks.SetStatHelper(exe, statHelperArg)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	// A hung mount's stat runs in a child that is left behind (a thread
	// waiting on a FUSE server cannot be killed): this process exits.
	os.Exit(code)
}

// exitError carries an exit status through run's callers.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
