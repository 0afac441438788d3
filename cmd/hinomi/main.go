// Command hinomi diagnoses and watches small self-hosted infrastructure
// hosts. See the README for its subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	// os.Exit also ends goroutines still blocked on a hung mount's stat.
	os.Exit(code)
}

// exitError carries an exit status through run's callers.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
