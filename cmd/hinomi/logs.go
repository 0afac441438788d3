package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/doctor"
	"github.com/hinomi/hinomi/internal/logline"
	"github.com/hinomi/hinomi/internal/logscan"
	"github.com/hinomi/hinomi/internal/signatures"
)

const logsUsage = `Usage:
  hinomi logs scan [flags] FILE... | -     find distress in log files (plain, .gz, .zst) or stdin
  hinomi logs scan --journal [--boot -1]   the same over the systemd journal
  hinomi logs signatures                   list the signature catalogue
  hinomi logs search 'QUERY' [flags]       search the lines every host shipped to the tower

Exit status of scan: 0 nothing found, 1 incidents found, 2 could not run;
130 or 143 stopped by SIGINT (Ctrl-C) or SIGTERM: it prints the report of
what it had read, marked INTERRUPTED, with how much that was.
`

func runLogs(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, logsUsage)
		return exitError{doctor.ExitFailed}
	}
	if isHelp(args) {
		fmt.Fprint(stdout, logsUsage+"\nRun \"hinomi logs scan -h\" for the flags of scan.\n")
		return nil
	}
	switch args[0] {
	case "scan":
		return runLogsScan(ctx, args[1:], stdin, stdout, stderr)
	case "signatures":
		return runLogsSignatures(args[1:], stdout, stderr)
	case "search":
		return runLogsSearch(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "hinomi logs: unknown command %q\n\n%s", args[0], logsUsage)
	return exitError{doctor.ExitFailed}
}

func runLogsScan(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("logs scan", "[flags] FILE... | -   (or --journal)", "Find known distress in log files (plain, .gz, .zst), standard input (-) or the systemd\njournal, as a timeline. Exit status: 0 nothing found, 1 incidents found, 2 could not run.", stdout, stderr)
	asJSON := fs.Bool("json", false, "print JSON (schema "+logscan.JSONSchema+")")
	since := fs.String("since", "", "only events at or after this time (RFC 3339, \"2006-01-02 15:04:05\", or a duration ago such as 2h)")
	until := fs.String("until", "", "only events at or before this time (same forms as --since)")
	journal := fs.Bool("journal", false, "scan the systemd journal (journalctl)")
	boot := fs.String("boot", "", "with --journal: which boot, e.g. -1 for the previous one")
	year := fs.Int("year", 0, "year of timestamps that leave it out (syslog, klog); default: the current one")
	tz := fs.String("tz", "", "time zone of timestamps that leave it out, e.g. UTC or Europe/Berlin (default: local)")
	var sigFiles multiFlag
	fs.Var(&sigFiles, "signatures", "a YAML file of extra signatures (repeatable; see docs/signatures.md)")
	inputs, err := fs.parseInterspersed(args)
	if err != nil {
		return err
	}
	if len(inputs) == 0 && !*journal {
		return errors.New("logs scan: name files to scan, - for standard input, or --journal")
	}
	cat, err := signatures.Load(sigFiles...)
	if err != nil {
		return err
	}
	o := logscan.Options{Inputs: inputs, Stdin: stdin, Catalogue: cat}
	o.Host, _ = os.Hostname()
	o.Context = logline.Context{Year: *year}
	if *tz != "" {
		loc, err := time.LoadLocation(*tz)
		if err != nil {
			return fmt.Errorf("--tz: %w", err)
		}
		o.Context.Location = loc
	}
	now := time.Now()
	if o.Since, err = parseWhen(*since, now, o.Context); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if o.Until, err = parseWhen(*until, now, o.Context); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	if *journal {
		o.Journal = []string{}
		if *boot != "" {
			o.Journal = append(o.Journal, "-b", *boot)
		}
	}
	rep, err := logscan.Run(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		err = logscan.WriteJSON(stdout, rep)
	} else {
		err = logscan.WriteText(stdout, rep, o.Context.Location)
	}
	if err != nil {
		return err
	}
	if rep.Interrupted != nil {
		if code, ok := interrupted(ctx); ok {
			return exitError{code}
		}
		return rep.Interrupted
	}
	if len(rep.Incidents) > 0 {
		return exitError{doctor.ExitFindings}
	}
	return nil
}

// parseWhen reads an absolute time or a duration before now.
func parseWhen(s string, now time.Time, ctx logline.Context) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil {
		return now.Add(-d), nil
	}
	loc := ctx.Location
	if loc == nil {
		loc = time.Local
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (2006-01-02 15:04:05, RFC 3339) nor a duration (2h)", s)
}

func runLogsSignatures(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("logs signatures", "[flags]", "List the signature catalogue: failure mode, severity, ID and title of each.", stdout, stderr)
	var sigFiles multiFlag
	fs.Var(&sigFiles, "signatures", "a YAML file of extra signatures (repeatable)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("logs signatures: unexpected argument %q", fs.Arg(0))
	}
	cat, err := signatures.Load(sigFiles...)
	if err != nil {
		return err
	}
	for _, s := range cat.Sigs {
		fmt.Fprintf(stdout, "%-6s %-13s %-36s %s\n", s.Mode, s.Severity, s.ID, s.Title)
	}
	fmt.Fprintf(stdout, "%s signatures\n", strconv.Itoa(len(cat.Sigs)))
	return nil
}
