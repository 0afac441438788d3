package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/doctor"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/runbook"
)

const usage = `hinomi: diagnose and watch self-hosted infrastructure hosts.

Usage:
  hinomi doctor [flags]        diagnose this host (or a snapshot) now
  hinomi runbook [ID]          list the runbooks, or print one (e.g. FM-B2)
  hinomi snapshot DIR          save what doctor reads on this host into DIR
  hinomi logs scan FILE...|-   find known distress in logs, as a timeline
  hinomi logs search 'QUERY'   search every host's lines on the tower (--since, --around, --follow)
  hinomi explain [FILE...|-]   diagnose a pasted command output (docker ps, inspect …) or log
  hinomi agent --tower URL     watch this host and report to towers
  hinomi tower --config FILE   the out-of-band server: heartbeats, alerts, notifications
  hinomi status --tower URL    hosts and firing alerts, as the tower sees them
  hinomi ack KEY               acknowledge a firing alert (stops repeats, escalation)
  hinomi silence add|list|expire   mute matching alerts for a while
  hinomi incidents [ID]        incidents, one's timeline, --postmortem, --note
  hinomi notify test CHANNEL   send a test message through a channel of the tower's config
  hinomi import gatus|uptime-kuma FILE   a tower config from a Gatus or Uptime Kuma setup
  hinomi push URL [-- CMD...]  report to a push monitor (dead-man switch) that a job ran
  hinomi hash-password         bcrypt a console password read from standard input
  hinomi version               print the version and the commit it was built from

Run "hinomi <command> -h" (or "hinomi help <command>") for a command's flags.
`

// run is the whole program; it returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return doctor.ExitFailed
	}
	var err error
	switch args[0] {
	case "doctor":
		err = runDoctor(ctx, args[1:], stdout, stderr)
	case "runbook", "runbooks":
		err = runRunbook(args[1:], stdout, stderr)
	case "snapshot":
		err = runSnapshot(ctx, args[1:], stdout, stderr)
	case "agent":
		err = runAgent(ctx, args[1:], stdout, stderr)
	case "tower":
		err = runTower(ctx, args[1:], stdout, stderr)
	case "status":
		err = runStatus(ctx, args[1:], stdout, stderr)
	case "ack":
		err = runAck(ctx, args[1:], stdout, stderr)
	case "silence", "silences":
		err = runSilence(ctx, args[1:], stdout, stderr)
	case "notify":
		err = runNotify(ctx, args[1:], stdout, stderr)
	case "import":
		err = runImport(args[1:], stdout, stderr)
	case "push":
		err = runPush(ctx, args[1:], stdout, stderr)
	case "hash-password":
		err = runHashPassword(args[1:], os.Stdin, stdout, stderr)
	case "incidents", "incident":
		err = runIncidents(ctx, args[1:], stdout, stderr)
	case "logs":
		err = runLogs(ctx, args[1:], os.Stdin, stdout, stderr)
	case "explain":
		err = runExplain(ctx, args[1:], os.Stdin, stdout, stderr)
	case "version", "--version":
		err = runVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && !isHelp(args[1:]) {
			// "hinomi help logs scan" is "hinomi logs scan -h".
			return run(ctx, append(append([]string{}, args[1:]...), "-h"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "hinomi: unknown command %q\n\n%s", args[0], usage)
		return doctor.ExitFailed
	}
	var ee exitError
	switch {
	case err == nil:
		return doctor.ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		return doctor.ExitOK
	case errors.As(err, new(usageError)):
		return doctor.ExitFailed // printed with the usage already
	}
	fmt.Fprintln(stderr, "hinomi:", err)
	return doctor.ExitFailed
}

func runbookDir(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return os.Getenv("HINOMI_RUNBOOKS")
}

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("doctor", "[flags]", "Diagnose this host (or a snapshot saved by hinomi snapshot) now. Exit status: 0 nothing\nat or above --min-severity, 1 findings, 2 could not run.", stdout, stderr)
	asJSON := fs.Bool("json", false, "print JSON (schema "+doctor.JSONSchema+", see docs/doctor-json.md)")
	minSev := fs.String("min-severity", "low", "show findings at or above: info, low, medium, high, catastrophic")
	from := fs.String("from", "", "diagnose the snapshot in `DIR` (made by hinomi snapshot) instead of this host")
	rbDir := fs.String("runbooks", "", "directory of runbook overrides (default $HINOMI_RUNBOOKS)")
	sample := fs.Duration("sample", 250*time.Millisecond, "second sample for rates such as packet drops (0: since-boot totals only)")
	mountTimeout := fs.Duration("mount-timeout", 2*time.Second, "how long a network or FUSE mount may take to answer stat")
	color := fs.String("color", "auto", "colour the output: auto (on a terminal, unless $NO_COLOR), always, never")
	verbose := fs.Bool("v", false, "log what each check does on stderr")
	noBPF := fs.Bool("no-bpf", false, "read descriptor tables and threads from /proc only, without the BPF pass (docs/bpf-pass.md)")
	var sigFiles multiFlag
	fs.Var(&sigFiles, "signatures", "a YAML file of extra log signatures (repeatable)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("doctor: unexpected argument %q", fs.Arg(0))
	}
	switch *color {
	case "auto", "always", "never":
	default:
		return fmt.Errorf("doctor: --color %q: want auto, always or never", *color)
	}
	min, err := finding.ParseSeverity(*minSev)
	if err != nil {
		return fmt.Errorf("doctor: --min-severity: %w", err)
	}
	// One diagnosis allocates a few tens of MB, most of it kept to the
	// end: at Go's default the collector ran five times a run, four of
	// them while the signatures and the process table were being read,
	// each taking one of the pass's two cores on a two-core host. Five
	// times the live heap before collecting costs about 4 MB of peak RSS;
	// under a 2,000-process load the pass's start went from 14–25 ms to
	// about 5 ms (docs/benchmarks.md). GOGC, when set, decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	// The runbooks and the signatures load while the host is read.
	type loadedBook struct {
		book *runbook.Book
		err  error
	}
	books := make(chan loadedBook, 1)
	go func() {
		b, err := runbook.Load(runbookDir(*rbDir))
		books <- loadedBook{b, err}
	}()
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	d, err := doctor.Diagnose(ctx, doctor.Options{
		From: *from, SampleFor: *sample, MountDeadline: *mountTimeout, SignatureFiles: sigFiles, NoBPF: *noBPF,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	})
	lb := <-books
	if lb.err != nil {
		return lb.err
	}
	book := lb.book
	if err != nil {
		return err
	}
	if *asJSON {
		err = doctor.WriteJSON(stdout, d, min, book)
	} else {
		err = doctor.WriteText(stdout, d, doctor.TextOptions{Min: min, Color: useColor(*color, stdout)}, book)
	}
	if err != nil {
		return err
	}
	if code, ok := interrupted(ctx); ok {
		return exitError{code} // the report says what was not read
	}
	if len(d.AtLeast(min)) > 0 {
		return exitError{doctor.ExitFindings}
	}
	return nil
}

func useColor(mode string, w io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func runRunbook(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("runbook", "[flags] [ID]", "List the runbooks, or print one (e.g. FM-B2) with the values given by -set filled in.", stdout, stderr)
	rbDir := fs.String("runbooks", "", "directory of runbook overrides (default $HINOMI_RUNBOOKS)")
	var sets multiFlag
	fs.Var(&sets, "set", "fill a template value, e.g. -set pid=4242 (repeatable)")
	ids, err := fs.parseInterspersed(args)
	if err != nil {
		return err
	}
	book, err := runbook.Load(runbookDir(*rbDir))
	if err != nil {
		return err
	}
	if len(ids) > 1 {
		return fmt.Errorf("runbook: want one runbook ID, got %q", ids)
	}
	if len(ids) == 0 {
		for _, rb := range book.All() {
			src := ""
			if rb.Source != "built-in" {
				src = "  [" + rb.Source + "]"
			}
			fmt.Fprintf(stdout, "%-7s %-13s %s%s\n", rb.ID, rb.Severity, rb.Title, src)
		}
		return nil
	}
	rb := book.Get(ids[0])
	if rb == nil {
		return fmt.Errorf("no runbook %q; `hinomi runbook` lists them", ids[0])
	}
	vars := map[string]string{}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("-set %q: want name=value", s)
		}
		// A name the runbook does not use is a typo, not a no-op: setting
		// it changes nothing (a condition such as holds_docker=no does).
		base, err := rb.Render(nil)
		if err != nil {
			return err
		}
		probe, err := rb.Render(map[string]string{k: "no"})
		if err != nil {
			return err
		}
		probe2, err := rb.Render(map[string]string{k: "\x00hinomi-probe\x00"})
		if err != nil {
			return err
		}
		if probe == base && probe2 == base {
			return fmt.Errorf("-set %s: %s has no value named %q", s, rb.ID, k)
		}
		vars[k] = v
	}
	text, err := rb.Render(vars)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# %s: %s (%s)\n\n%s", rb.ID, rb.Title, rb.Severity, text)
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("snapshot", "[flags] DIR", "Save what doctor reads on this host into the new directory DIR; hinomi doctor --from DIR\ndiagnoses it anywhere (docs/snapshot.md). Environment variables are never saved.", stdout, stderr)
	sample := fs.Duration("sample", 250*time.Millisecond, "second sample for rates")
	mountTimeout := fs.Duration("mount-timeout", 2*time.Second, "how long a network or FUSE mount may take to answer stat")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("snapshot: want one argument, the directory to create")
	}
	dir := fs.Arg(0)
	rec, err := host.NewRecorder(dir)
	if err != nil {
		return err
	}
	d, err := doctor.Diagnose(ctx, doctor.Options{SampleFor: *sample, MountDeadline: *mountTimeout, Record: rec})
	if err != nil {
		return err
	}
	if err := rec.Close(host.Meta{Host: d.Host, Taken: d.Taken, Version: shortVersion(), UID: os.Geteuid(), Warnings: d.Blind}); err != nil {
		return fmt.Errorf("snapshot %s: %w", dir, err)
	}
	fmt.Fprintf(stdout, "saved a snapshot of %s (%d processes) in %s; diagnose it with: hinomi doctor --from %s\n", d.Host, d.Processes, dir, dir)
	return nil
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "", "Print the module version and the commit this binary was built from.", stdout, stderr)
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version: unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintln(stdout, longVersion())
	return nil
}
