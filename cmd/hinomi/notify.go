package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/tower"
)

// runNotify is `hinomi notify test CHANNEL...`: send a real test message
// through channels of the tower's configuration, one attempt each, and
// say plainly whether each arrived.
func runNotify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("notify", "test [flags] CHANNEL...|--all", "Send a test message through channels of the tower's configuration, one attempt each,\n"+
		"and say whether each server took it. Channels that keep an alert open (pagerduty, opsgenie,\n"+
		"alertmanager) are sent its resolution right after. Exit status: 0 all delivered, 1 some failed,\n"+
		"2 could not run.", stdout, stderr)
	configFlag := envFlag(fs.FlagSet, "config", "HINOMI_TOWER_CONFIG", "/etc/hinomi/tower.yaml", "the tower's YAML configuration `file` (default $HINOMI_TOWER_CONFIG, else /etc/hinomi/tower.yaml)")
	all := fs.Bool("all", false, "test every channel")
	timeout := fs.Duration("timeout", 30*time.Second, "how long each send may take")
	if len(args) == 0 || args[0] != "test" {
		if len(args) > 0 && strings.HasPrefix(args[0], "-") {
			if err := fs.parse(args); err != nil {
				return err // -h, or a flag error told once with the usage
			}
		}
		return fmt.Errorf("notify: want \"hinomi notify test CHANNEL...\" (or --all); see hinomi notify -h")
	}
	names, err := fs.parseInterspersed(args[1:])
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return fmt.Errorf("notify: --timeout must be positive")
	}
	cfg, err := tower.LoadConfig(configFlag.Get())
	if err != nil {
		return err
	}
	var known []string
	for _, ch := range cfg.Channels {
		known = append(known, ch.Name)
	}
	switch {
	case *all && len(names) > 0:
		return fmt.Errorf("notify: give channel names or --all, not both")
	case *all:
		names = known
	case len(names) == 0:
		return fmt.Errorf("notify: which channel? %s has: %s", configFlag.Get(), listOr(known))
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return fmt.Errorf("notify: no channel named %q in %s (it has: %s)", n, configFlag.Get(), listOr(known))
		}
	}
	host, _ := os.Hostname()
	failed := 0
	for _, ch := range cfg.Channels {
		if !slices.Contains(names, ch.Name) {
			continue
		}
		if err := testChannel(ctx, ch, host, *timeout); err != nil {
			failed++
			fmt.Fprintf(stdout, "FAILED  %s (%s): %v\n", ch.Name, ch.Type, err)
			if notify.Retryable(err) {
				fmt.Fprintf(stdout, "        the tower would retry this; check the address and that the service is up\n")
			} else {
				fmt.Fprintf(stdout, "        the tower would not retry this: fix the channel's settings\n")
			}
			continue
		}
		fmt.Fprintf(stdout, "sent    %s (%s)\n", ch.Name, ch.Type)
	}
	if failed > 0 {
		return exitError{1}
	}
	return nil
}

func testChannel(ctx context.Context, ch notify.Channel, host string, timeout time.Duration) error {
	s, err := notify.New(ch, nil)
	if err != nil {
		return err
	}
	send := func(m notify.Message) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return s.Send(ctx, m)
	}
	m := notify.TestMessage(ch.Name, host, time.Now().UTC())
	if err := send(m); err != nil {
		return err
	}
	if notify.Stateful(ch.Type) {
		m.State, m.Ended, m.Now = notify.Resolved, time.Now().UTC(), time.Now().UTC()
		if err := send(m); err != nil {
			return errors.Join(errors.New("the test arrived, but its resolution did not (close it by hand)"), err)
		}
	}
	return nil
}

func listOr(names []string) string {
	if len(names) == 0 {
		return "no channels"
	}
	return strings.Join(names, ", ")
}
