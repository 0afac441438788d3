package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"

	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hinomi/hinomi/internal/agent"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/signatures"
	"github.com/hinomi/hinomi/internal/tower"
	"github.com/hinomi/hinomi/internal/web"
)

func runTower(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		return runTowerMigrate(ctx, args[1:], stdout, stderr)
	}
	fs := newFlags("tower", "[flags]", "The out-of-band server: heartbeats, silence detection, probes, alerts, notifications,\nincidents, status page and console (docs/tower.md). SIGHUP reloads the configuration.", stdout, stderr)
	configFlag := envFlag(fs.FlagSet, "config", "HINOMI_TOWER_CONFIG", "/etc/hinomi/tower.yaml", "the tower's YAML configuration `file` (docs/tower.md; default $HINOMI_TOWER_CONFIG, else /etc/hinomi/tower.yaml)")
	check := fs.Bool("check", false, "validate the configuration and exit")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("tower: unexpected argument %q", fs.Arg(0))
	}
	config := configFlag.Get()
	cfg, err := tower.LoadConfig(config)
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok (%d agents, %d probes, %d channels, %d routes, %d peers)\n", config,
			len(cfg.Agents), len(cfg.Probes), len(cfg.Channels), len(cfg.Routes), len(cfg.Peers))
		if len(cfg.Channels) == 0 {
			fmt.Fprintln(stdout, "warning: no channels: alerts are recorded and shown, but nobody is notified")
		}
		if err := haveCARoots(); err != nil {
			fmt.Fprintf(stdout, "warning: %v: HTTPS probes and notification channels cannot verify any server (install ca-certificates, or set SSL_CERT_FILE)\n", err)
		}
		return nil
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	defer tower.TuneRuntime()()
	t, err := tower.New(cfg, tower.Options{Log: log})
	if err != nil {
		return err
	}
	site, err := web.New(t.Web(), web.Options{Title: cfg.Console.Title, Users: cfg.Console.Users, SecureCookie: cfg.Console.SecureCookies,
		TrustedProxies: cfg.Console.TrustedProxies, Log: log, Pages: t.Pages})
	if err != nil {
		return err
	}
	t.SetUI(site.Handler())
	addr, err := t.Listen()
	if err != nil {
		return err
	}
	log.Info("tower listening", "addr", addr.String(), "agents", len(cfg.Agents), "channels", len(cfg.Channels), "data_dir", cfg.DataDir, "store", cfg.Store)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := t.Reload(config); err != nil {
				log.Error("reload failed; the old configuration stays", "err", err)
			} else {
				log.Info("configuration reloaded", "config", config)
			}
		}
	}()
	err = t.Run(ctx)
	logStopped(ctx, log, "tower stopped", err)
	return err
}

// haveCARoots says whether this system has CA certificates to verify TLS
// servers with (a bare container image may have none).
func haveCARoots() error {
	pool, err := x509.SystemCertPool()
	if err != nil {
		return fmt.Errorf("no CA certificates: %w", err)
	}
	if pool.Equal(x509.NewCertPool()) {
		return errors.New("no CA certificates found")
	}
	return nil
}

// logStopped says that a long-running command ended, and why: a stopped
// monitor must not look like a quiet one in its own log.
func logStopped(ctx context.Context, log *slog.Logger, msg string, err error) {
	switch {
	case err != nil:
		log.Error(msg, "err", err)
	case ctx.Err() != nil:
		log.Info(msg, "reason", "signal")
	default:
		log.Info(msg)
	}
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("agent", "--tower URL [flags]", "Watch this host: doctor's checks every interval and the kernel log (and the journal), reported\nto one or more towers through a bounded on-disk spool per tower. Every delivery is also the\nhost's heartbeat.", stdout, stderr)
	var towers multiFlag
	fs.Var(&towers, "tower", "a tower's `URL`, e.g. http://tower.lan:7450 (repeatable; default $HINOMI_TOWER, comma-separated)")
	token := envFlag(fs.FlagSet, "token", "HINOMI_TOKEN", "", "this agent's `token`, as listed in the tower's config (default $HINOMI_TOKEN)")
	tokenFile := envFlag(fs.FlagSet, "token-file", "HINOMI_TOKEN_FILE", "", "read the token from this `file` (default $HINOMI_TOKEN_FILE)")
	name := envFlag(fs.FlagSet, "name", "HINOMI_NAME", "", "the `name` the tower knows this host by (default $HINOMI_NAME, else the host name)")
	state := envFlag(fs.FlagSet, "state-dir", "HINOMI_STATE_DIR", "/var/lib/hinomi-agent", "`dir`ectory of the spool and the agent's state (default $HINOMI_STATE_DIR, else /var/lib/hinomi-agent)")
	interval := fs.Duration("interval", agent.DefaultInterval, "how often to diagnose and report (at least "+agent.MinInterval.String()+")")
	spoolMax := fs.Int64("spool-max-bytes", 64<<20, "bound on each tower's on-disk spool")
	kmsg := fs.String("kmsg", "", "kernel log device (default /dev/kmsg; - to not read the kernel log)")
	journal := fs.String("journal", "auto", "follow the systemd journal for service logs: auto (when journald runs), yes, no")
	containerLogs := fs.String("container-logs", "auto", "follow the running Docker containers' logs: auto (when a Docker socket is there), yes, no")
	var sigFiles, logFiles multiFlag
	fs.Var(&sigFiles, "signatures", "a YAML file of extra log signatures (repeatable)")
	fs.Var(&logFiles, "log-file", "follow the log files matching this `glob` too, e.g. '/var/log/nginx/*.log' (repeatable; default $HINOMI_LOG_FILES, comma-separated)")
	shipLogs := fs.String("ship-logs", "yes", "ship the lines read (kernel, journal, files, containers) to the towers' log stores: yes, no")
	shipPriority := fs.String("ship-logs-priority", "info", "ship lines with a priority (journal, kernel) only at this one or more severe: emerg .. debug, or 0..7")
	var shipUnits multiFlag
	fs.Var(&shipUnits, "ship-logs-unit", "ship only this `unit`'s lines: a systemd unit, a container, kernel, or a followed file's path (repeatable)")
	shipMatch := fs.String("ship-logs-match", "", "ship only lines this regular `expression` matches")
	logSpoolMax := fs.Int64("log-spool-max-bytes", agent.DefaultLogSpoolBytes, "bound on each tower's on-disk log spool; the oldest lines go first, counted")
	noBPF := fs.Bool("no-bpf", false, "read descriptor tables and threads from /proc only, without the BPF pass (docs/bpf-pass.md)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("agent: unexpected argument %q", fs.Arg(0))
	}
	if len(logFiles) == 0 && os.Getenv("HINOMI_LOG_FILES") != "" {
		logFiles = strings.Split(os.Getenv("HINOMI_LOG_FILES"), ",")
	}
	for _, g := range logFiles {
		if _, err := filepath.Match(g, ""); err != nil || !filepath.IsAbs(g) {
			return fmt.Errorf("agent: --log-file %q: want an absolute path or glob, e.g. /var/log/nginx/*.log", g)
		}
	}
	// The agent lives on the host it watches and idles between cycles:
	// collect garbage sooner than Go's default, for a smaller footprint
	// (GOGC in the environment still decides when set).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if len(towers) == 0 && os.Getenv("HINOMI_TOWER") != "" {
		towers = strings.Split(os.Getenv("HINOMI_TOWER"), ",")
	}
	if *interval <= 0 {
		return fmt.Errorf("agent: --interval %s: want how often to report, at least %s (default %s)", *interval, agent.MinInterval, agent.DefaultInterval)
	}
	switch *journal {
	case "auto", "yes", "no":
	default:
		return fmt.Errorf("agent: --journal %q: want auto, yes or no", *journal)
	}
	followContainers := *containerLogs == "yes"
	switch *containerLogs {
	case "auto":
		_, errSock := os.Stat("/var/run/docker.sock")
		followContainers = errSock == nil || os.Getenv("DOCKER_HOST") != ""
	case "yes", "no":
	default:
		return fmt.Errorf("agent: --container-logs %q: want auto, yes or no", *containerLogs)
	}
	ship := agent.LogShip{Units: shipUnits, SpoolBytes: *logSpoolMax}
	switch *shipLogs {
	case "yes":
	case "no":
		ship.Off = true
	default:
		return fmt.Errorf("agent: --ship-logs %q: want yes or no", *shipLogs)
	}
	pri, err := logstore.ParsePriority(*shipPriority)
	if err != nil {
		return fmt.Errorf("agent: --ship-logs-priority: %w", err)
	}
	ship.Priority = pri
	if pri == 0 {
		ship.Priority = -1 // emerg only; 0 would mean the default
	}
	if *shipMatch != "" {
		if ship.Match, err = regexp.Compile(*shipMatch); err != nil {
			return fmt.Errorf("agent: --ship-logs-match: %w", err)
		}
	}
	tok := token.Get()
	if f := tokenFile.Get(); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		tok = strings.TrimSpace(string(b))
	}
	cat, err := signatures.Load(sigFiles...)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	followJournal := *journal == "yes"
	if *journal == "auto" {
		_, errTool := exec.LookPath("journalctl")
		_, errSock := os.Stat("/run/systemd/journal/socket")
		followJournal = errTool == nil && errSock == nil
	}
	a, err := agent.New(agent.Config{
		Journal: followJournal, LogFiles: logFiles, ContainerLogs: followContainers, Ship: ship,
		Towers: towers, Token: tok, Name: name.Get(), StateDir: state.Get(), Interval: *interval,
		SpoolBytes: *spoolMax, Kmsg: *kmsg, Signatures: cat, Version: shortVersion(), Log: log, NoBPF: *noBPF,
	})
	if err != nil {
		return err
	}
	log.Info("agent started", "towers", strings.Join(towers, ","), "interval", *interval, "state_dir", state.Get())
	err = a.Run(ctx)
	logStopped(ctx, log, "agent stopped", err)
	return err
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "[flags]", "The hosts and the firing alerts, as the tower sees them. Exit status 1 while an alert fires.", stdout, stderr)
	c := towerFlags(fs.FlagSet)
	asJSON := fs.Bool("json", false, "print the hosts and the firing alerts as JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("status: unexpected argument %q", fs.Arg(0))
	}
	get := func(path string, v any) error { return c.do(ctx, http.MethodGet, path, nil, v) }
	var hosts struct {
		Hosts []tower.HostView `json:"hosts"`
	}
	var alerts struct {
		Alerts []struct {
			tower.Alert
			DurationSeconds float64 `json:"duration_seconds"`
		} `json:"alerts"`
	}
	if err := get("/api/v1/hosts", &hosts); err != nil {
		return err
	}
	if err := get("/api/v1/alerts?status=firing", &alerts); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"hosts": hosts.Hosts, "alerts": alerts.Alerts})
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATUS\tLAST REPORT\tVERSION")
	now := time.Now()
	for _, h := range hosts.Hosts {
		last := "never"
		if !h.LastSeen.IsZero() {
			last = fmt.Sprintf("%s (%s ago)", h.LastSeen.Local().Format("2006-01-02 15:04:05"), finding.HumanDuration(now.Sub(h.LastSeen)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Name, strings.ToUpper(h.Status), last, h.Version)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(alerts.Alerts) == 0 {
		fmt.Fprintln(stdout, "\nNo alert is firing.")
		return nil
	}
	fmt.Fprintln(stdout, "\nFiring (hinomi ack KEY; hinomi silence add --key KEY --for 1h):")
	for _, a := range alerts.Alerts {
		fmt.Fprintf(stdout, "  %-12s %s\n  %-12s %s — since %s (%s)\n", strings.ToUpper(a.Severity), a.Key, "", a.Title,
			a.State.BadSince.Local().Format("2006-01-02 15:04:05 MST"), finding.HumanDuration(time.Duration(a.DurationSeconds)*time.Second))
		if a.Suppressed != "" {
			fmt.Fprintf(stdout, "  %-12s not notified: %s\n", "", a.Suppressed)
		}
		if a.Ack != nil {
			ack := "acknowledged by " + a.Ack.By + " at " + a.Ack.At.Local().Format("2006-01-02 15:04:05 MST")
			if a.Ack.Comment != "" {
				ack += ": " + a.Ack.Comment
			}
			fmt.Fprintf(stdout, "  %-12s %s\n", "", ack)
		}
	}
	return exitError{1}
}

// runHashPassword prints the bcrypt hash of a password read from standard
// input, for the console's users in the tower's config.
func runHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("hash-password", "", "Prints the bcrypt hash (cost 12) of the password read from standard input, for\npassword_hash in the tower's console.users. At least 10 characters:\n  printf '%s' 'a long password' | hinomi hash-password", stdout, stderr)
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("hash-password: unexpected argument %q (the password is read from standard input)", fs.Arg(0))
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 1024))
	if err != nil {
		return err
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if len(pw) < 10 {
		return errors.New("hash-password: give a password of at least 10 characters on standard input")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), 12)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(h))
	return nil
}

// runTowerMigrate copies a stopped SQLite tower's state into PostgreSQL.
func runTowerMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tower migrate", "--from sqlite:DATA_DIR --to postgres://…", "Copy a stopped tower's SQLite state (hosts, records, findings, alerts, silences, incidents,\nthe outbox, the status page's history) into an empty PostgreSQL database, in one transaction;\nthen set store: to the URL in tower.yaml (docs/tower.md).", stdout, stderr)
	from := fs.String("from", "", "the SQLite store: `sqlite:PATH`, PATH the tower's data_dir (or its tower.db)")
	to := fs.String("to", "", "the PostgreSQL `URL` (postgres://user@host/db?sslmode=…); the password from --to-password-file or $PGPASSWORD")
	pwFile := fs.String("to-password-file", "", "a `file` holding the PostgreSQL password")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("tower migrate: unexpected argument %q", fs.Arg(0))
	}
	path, ok := strings.CutPrefix(*from, "sqlite:")
	if !ok || path == "" {
		return fmt.Errorf("tower migrate: --from must be sqlite:PATH, not %q", *from)
	}
	if !strings.HasPrefix(*to, "postgres://") && !strings.HasPrefix(*to, "postgresql://") {
		return fmt.Errorf("tower migrate: --to must be a postgres:// URL")
	}
	password := ""
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return fmt.Errorf("tower migrate: --to-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	tables, err := tower.Migrate(ctx, path, *to, password)
	if err != nil {
		return fmt.Errorf("tower migrate: %w", err)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, tb := range tables {
		fmt.Fprintf(w, "%s\t%d rows\t\n", tb.Name, tb.Rows)
	}
	w.Flush()
	fmt.Fprintln(stdout, "copied; set store: to the URL in tower.yaml and start the tower")
	return nil
}
