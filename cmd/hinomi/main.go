// Command hinomi diagnoses and watches small self-hosted infrastructure
// hosts. See the README for its subcommands.
package main

import (
	"context"
	"errors"
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
	ctx, stop := notifyContext()
	stopProfile := startProfile(os.Getenv("HINOMI_CPUPROFILE"))
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	// A hung mount's stat runs in a child that is left behind (a thread
	// waiting on a FUSE server cannot be killed): this process exits.
	os.Exit(code)
}

// exitError carries an exit status through run's callers.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// signalled is the cause of run's context when SIGINT or SIGTERM stops it,
// so that a command can say which and exit as shells expect.
type signalled struct{ sig syscall.Signal }

func (s signalled) Error() string {
	if s.sig == syscall.SIGINT {
		return "SIGINT"
	}
	return "SIGTERM"
}

func (s signalled) Is(target error) bool { return target == context.Canceled }

// notifyContext is signal.NotifyContext whose cause names the signal. A
// second signal ends the process at once, the way a second Ctrl-C does in
// most tools.
func notifyContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			cancel(signalled{s.(syscall.Signal)})
			signal.Stop(ch)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel(nil) }
}

// interrupted returns the exit status of a command stopped by a signal:
// 128 + its number (130 for SIGINT, 143 for SIGTERM), as shells report a
// process the signal killed.
func interrupted(ctx context.Context) (code int, ok bool) {
	var s signalled
	if !errors.As(context.Cause(ctx), &s) {
		return 0, false
	}
	return 128 + int(s.sig), true
}
