// Package agent is `hinomi agent`: doctor's engine on an interval plus the
// live kernel log through the signature engine, shipped to one or more
// towers. Everything to ship goes first into a bounded on-disk spool per
// tower and leaves it only when that tower acknowledged it, so a tower
// that is down or restarting loses nothing; every successful delivery is
// also the host's heartbeat.
package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/doctor"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/kube"
	"github.com/hinomi/hinomi/internal/logsource"
	"github.com/hinomi/hinomi/internal/logthrottle"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/signatures"
	"github.com/hinomi/hinomi/internal/spool"
	"github.com/hinomi/hinomi/internal/wire"
)

const (
	// DefaultInterval is how often the agent diagnoses and reports.
	DefaultInterval = 15 * time.Second
	// MinInterval is the shortest interval: every one is a whole
	// diagnosis and a delivery to every tower.
	MinInterval = 100 * time.Millisecond
)

// Config is the agent's configuration (flags, HINOMI_* variables).
type Config struct {
	// Towers are the towers' base URLs.
	Towers []string
	Token  string
	// Name is how the tower knows this host (default: the host name).
	Name     string
	StateDir string
	// Interval is how often to diagnose and report (0: DefaultInterval).
	Interval time.Duration
	// SpoolBytes bounds each tower's spool on disk.
	SpoolBytes int64
	// Kmsg is the kernel log device ("" for /dev/kmsg; "-" to not read it).
	Kmsg string
	// Journal follows the systemd journal (service logs) with journalctl.
	Journal bool
	// LogFiles are globs of log files to follow (rotation and truncation
	// handled, position kept across restarts).
	LogFiles []string
	// ContainerLogs follows the running Docker containers' logs.
	ContainerLogs bool
	// NoBPF reads the process table from /proc only (proctable.Options).
	NoBPF bool
	// Ship says which lines go to the towers' log stores (logship.go).
	Ship       LogShip
	Signatures *signatures.Catalogue
	Version    string
	HTTPClient *http.Client
	Log        *slog.Logger
}

// Agent is a running agent.
type Agent struct {
	cfg     Config
	towers  []*tower
	matcher *signatures.Matcher
	bootID  string

	mu   sync.Mutex
	sent map[string]string // finding key → fingerprint of what the towers have
	// resync: send the whole set next cycle (a spool refused or dropped
	// records); dropped is the spools' drop count seen last.
	resync  bool
	dropped uint64

	// retryMin is the first wait after a failed delivery; warnMax the
	// longest gap between two warnings about one outage.
	retryMin, warnMax time.Duration
	// logs keeps failures that repeat with every record (a full disk)
	// to a line a minute.
	logs *logthrottle.Limiter
	// docker follows the Docker event stream; wake asks for a diagnosis
	// before the next tick when a container starts looping, is
	// OOM-killed or turns unhealthy.
	docker *checks.DockerEvents
	smart  *checks.SmartCache
	wake   chan struct{}
	// logw turns the distress lines read into findings; filesFollowed
	// counts the log files being followed.
	logw          *logWatch
	filesFollowed atomic.Int64
	fileScans     atomic.Int64 // how often the globs were matched
	// containersFollowed counts the containers whose logs are followed.
	containersFollowed atomic.Int64
	// inodes are the log files' inodes read from, so a file rotated to
	// a name the glob also matches is not read twice.
	inodeMu sync.Mutex
	inodes  map[uint64]bool
	// disk remembers each filesystem's use over the last cycles: the
	// disk check predicts from it when one is full and what grows
	// fastest.
	disk *checks.DiskTrend
	// kube remembers Kubernetes node addresses across cycles.
	kube *kube.AddrMemory
	// ship gathers the lines shipped to the log stores (nil: none are);
	// flushMu keeps its records in order; boot dates kernel lines.
	ship    *shipper
	flushMu sync.Mutex
	boot    time.Time
}

type tower struct {
	url   string
	spool *spool.Spool
	id    string // the spool's identity
	kick  chan struct{}

	mu         sync.Mutex
	lostReason string // why the last record that could not be spooled was lost
	failing    bool   // the last Append failed
	lostAt     uint64 // the spool's lost count when appends began failing

	// lines is the log spool (logship.go), nil when no lines are shipped;
	// linesDropped is its drop count already reported.
	lines             *spool.Spool
	linesID           string
	linesKick         chan struct{}
	linesDropped      uint64
	linesDroppedBytes int64
}

// New opens the agent's state.
func New(cfg Config) (*Agent, error) {
	if len(cfg.Towers) == 0 {
		return nil, errors.New("no tower: give at least one tower URL")
	}
	for i, u := range cfg.Towers {
		base, err := TowerURL(u)
		if err != nil {
			return nil, err
		}
		cfg.Towers[i] = base
	}
	if cfg.Token == "" {
		return nil, errors.New("no token: the tower's config lists a token for this agent")
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	switch {
	case cfg.Interval == 0:
		cfg.Interval = DefaultInterval
	case cfg.Interval < MinInterval:
		return nil, fmt.Errorf("interval %s: want at least %s (default %s)", cfg.Interval, MinInterval, DefaultInterval)
	}
	if cfg.SpoolBytes <= 0 {
		cfg.SpoolBytes = 64 << 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		// A tower behind a cut link swallows packets: do not wait longer
		// than an interval (at least 5 s) for an answer.
		cfg.HTTPClient = &http.Client{Timeout: max(5*time.Second, cfg.Interval)}
	}
	if cfg.Signatures == nil {
		c, err := signatures.Builtin()
		if err != nil {
			return nil, err
		}
		cfg.Signatures = c
	}
	a := &Agent{cfg: cfg, matcher: signatures.NewMatcher(cfg.Signatures), sent: map[string]string{}, retryMin: time.Second, warnMax: 5 * time.Minute,
		logs: logthrottle.New(time.Minute), docker: checks.NewDockerEvents(), smart: checks.NewSmartCache(checks.SmartTTL),
		wake: make(chan struct{}, 1), logw: newLogWatch(), disk: checks.NewDiskTrend(), kube: kube.NewAddrMemory()}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		a.bootID = strings.TrimSpace(string(b))
	}
	for _, u := range cfg.Towers {
		sum := sha256.Sum256([]byte(u))
		dir := filepath.Join(cfg.StateDir, "spool-"+hex.EncodeToString(sum[:6]))
		sp, err := spool.Open(dir, spool.Options{MaxBytes: cfg.SpoolBytes})
		if err != nil {
			return nil, fmt.Errorf("spool for %s: %w", u, err)
		}
		id, err := spoolID(dir)
		if err != nil {
			return nil, err
		}
		t := &tower{url: u, spool: sp, id: id, kick: make(chan struct{}, 1), linesKick: make(chan struct{}, 1)}
		a.towers = append(a.towers, t)
		if !cfg.Ship.Off {
			if a.ship == nil {
				a.ship, a.boot = newShipper(cfg.Ship), bootTime()
			}
			if t.lines, t.linesID, err = openLineSpool(cfg.StateDir, hex.EncodeToString(sum[:6]), a.ship.cfg.SpoolBytes); err != nil {
				a.closeSpools()
				return nil, fmt.Errorf("log spool for %s: %w", u, err)
			}
			st := t.lines.Stats()
			t.linesDropped, t.linesDroppedBytes = st.Dropped, st.DroppedBytes
		}
	}
	return a, nil
}

// spoolID is a random identity kept beside the spool: sequence numbers
// count within it, and a fresh spool (a reinstall) gets a new one.
func spoolID(dir string) (string, error) {
	p := filepath.Join(dir, "id")
	if b, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(r[:])
	if err := writeFileAtomic(p, []byte(id+"\n"), 0o600); err != nil {
		return "", err
	}
	return id, nil
}

// Run works until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	defer a.closeSpools()
	var wg sync.WaitGroup
	for _, t := range a.towers {
		wg.Go(func() { a.deliverLoop(ctx, t) })
	}
	if a.ship != nil {
		// Lines spooled as the agent stops are delivered by the shippers'
		// last try, so the spooler stops first.
		lctx, stopLines := context.WithCancel(context.Background())
		var lwg sync.WaitGroup
		for _, t := range a.towers {
			lwg.Go(func() { a.shipLog(lctx, t) })
		}
		spooled := make(chan struct{})
		go func() {
			defer close(spooled)
			a.spoolLines(ctx)
			stopLines() // their last try runs beside the records' own
		}()
		defer func() {
			<-spooled
			lwg.Wait()
		}()
	}
	if a.cfg.Kmsg != "-" {
		wg.Go(func() { a.watchKernel(ctx) })
	}
	if a.cfg.Journal {
		wg.Go(func() { a.watchJournal(ctx) })
	}
	if len(a.cfg.LogFiles) > 0 {
		// The files there at start are read from their ends: where those
		// are is settled before the first report, so that a line written
		// after it is never taken for the file's past.
		scanned := make(chan struct{})
		wg.Go(func() { a.watchFiles(ctx, scanned) })
		select {
		case <-scanned:
		case <-ctx.Done():
		}
	}
	if a.cfg.ContainerLogs {
		wg.Go(func() { a.watchContainerLogs(ctx) })
	}
	wg.Go(func() {
		a.docker.Watch(ctx, a.cfg.Log, func() {
			select {
			case a.wake <- struct{}{}:
			default: // a diagnosis is already due
			}
		})
	})
	a.status(wire.Status{Event: "started", Message: "hinomi agent " + a.cfg.Version})
	a.cycles(ctx)
	wg.Wait()
	return nil
}

func (a *Agent) closeSpools() {
	for _, t := range a.towers {
		if err := t.spool.Close(); err != nil {
			a.cfg.Log.Error("closing spool", "tower", t.url, "err", err)
		}
		if t.lines != nil {
			if err := t.lines.Close(); err != nil {
				a.cfg.Log.Error("closing log spool", "tower", t.url, "err", err)
			}
		}
	}
}

// cycles runs doctor's engine every interval and spools what changed.
func (a *Agent) cycles(ctx context.Context) {
	mounts := checks.NewMountProber(2 * time.Second)
	full := true
	loadingBPF := false
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	for {
		last := time.Now()
		d, err := doctor.Diagnose(ctx, doctor.Options{Mounts: mounts, MountDeadline: 2 * time.Second, Signatures: a.matcher, DockerEvents: a.docker,
			NoJournal: a.cfg.Journal, Smart: a.smart, DiskTrend: a.disk, KubeAddrs: a.kube, NoBPF: a.cfg.NoBPF, NoBPFLoad: true})
		if err == nil && !loadingBPF && !a.cfg.NoBPF {
			// The BPF pass is loaded once, after the first report and at
			// the lowest priority: a start, or a stop during it, is not
			// held up by the kernel's verifier.
			loadingBPF = true
			go func() {
				if err := proctable.LoadBPF(); err != nil {
					a.cfg.Log.Info("processes are read from /proc", "why_not_bpf", err)
				} else {
					a.cfg.Log.Info("processes are read with the BPF pass from the next cycle on")
				}
			}()
		}
		if err != nil && ctx.Err() != nil {
			return // stopping: a diagnosis cut short is not sent
		}
		if err != nil {
			a.cfg.Log.Error("diagnosis failed", "err", err)
		} else {
			// The distress lines read since, folded into findings.
			d.Findings = append(d.Findings, a.logw.findings(d.Host, time.Now())...)
			var dropped uint64
			for _, t := range a.towers {
				st := t.spool.Stats()
				dropped += st.Dropped + st.Lost
			}
			a.mu.Lock()
			if dropped > a.dropped || a.resync {
				full = true // the towers may have missed changes
			}
			a.dropped, a.resync = dropped, false
			a.mu.Unlock()
			a.findings(d, full)
			full = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.wake:
			// A container started looping, was OOM-killed or turned
			// unhealthy: diagnose now, but at most once per wakeGap,
			// so events of many containers do not turn into
			// back-to-back diagnoses.
			wait := time.NewTimer(max(wakeGap-time.Since(last), 0))
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-wait.C:
			}
		}
	}
}

// wakeGap is the shortest time between the starts of two diagnoses that
// Docker events asked for.
const wakeGap = 2 * time.Second

// fingerprint is what makes a finding "changed" for the towers: its
// severity. Figures move every cycle and are sent with the next change.
func fingerprint(f finding.Finding) string { return f.Severity.String() + "|" + f.Key }

// findings spools the findings that opened, changed or resolved since the
// last cycle (all of them, marked full, after a start).
func (a *Agent) findings(d *doctor.Diagnosis, full bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := wire.Findings{Full: full}
	now := map[string]string{}
	for _, f := range d.Findings {
		fp := fingerprint(f)
		now[f.Key] = fp
		if full || a.sent[f.Key] != fp {
			rec.Open = append(rec.Open, f)
		}
	}
	for k := range a.sent {
		if _, ok := now[k]; !ok && !full {
			rec.Resolved = append(rec.Resolved, k)
		}
	}
	if !full && len(rec.Open) == 0 && len(rec.Resolved) == 0 {
		a.sent = now
		return
	}
	if a.append(wire.KindFindings, rec) {
		a.sent = now
	} else {
		// Not spooled everywhere: the next cycle sends the whole set.
		a.sent = map[string]string{}
		a.resync = true
	}
}

func (a *Agent) status(s wire.Status) { a.append(wire.KindStatus, s) }

// append spools one record for every tower; false when a spool refused it.
func (a *Agent) append(kind string, v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		a.cfg.Log.Error("encoding a record", "kind", kind, "err", err)
		return false
	}
	item, _ := json.Marshal(spooled{Kind: kind, Time: time.Now().UTC(), Data: data})
	ok := true
	for _, t := range a.towers {
		if _, err := t.spool.Append(item); err != nil {
			ok = false
			if !errors.Is(err, spool.ErrClosed) {
				a.spoolFailed(t, kind, err)
			}
			continue
		}
		a.spooledAgain(t)
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
	return ok
}

// spoolFailed notes a record a tower's spool could not take: the spool
// counts it as lost (the tower is told with every batch) and the log says
// so once a minute per tower and reason, with how many lines it held back.
func (a *Agent) spoolFailed(t *tower, kind string, err error) {
	reason := lossReason(err)
	t.mu.Lock()
	counted := !errors.Is(err, spool.ErrTooLarge) // the spool counts what a failed write lost
	if !t.failing {
		t.failing, t.lostAt = true, t.spool.Stats().Lost
		if counted && t.lostAt > 0 {
			t.lostAt-- // this record is counted already
		}
	}
	if counted {
		t.lostReason = reason
	}
	t.mu.Unlock()
	ok, held := a.logs.Allow(t.url+" "+reason, time.Now())
	if !ok {
		return
	}
	st := t.spool.Stats()
	a.cfg.Log.Error("cannot spool a record: it is lost, counted and reported to the tower (logged once a minute while it lasts)",
		"tower", t.url, "reason", reason, "kind", kind, "err", err, "lost_total", st.Lost, "pending", st.Pending,
		"suppressed", held, "suppressed_over", a.logs.Period)
}

// spooledAgain says once that a spool that failed takes records again,
// and what the failure cost.
func (a *Agent) spooledAgain(t *tower) {
	t.mu.Lock()
	if !t.failing {
		t.mu.Unlock()
		return
	}
	t.failing = false
	reason, from := t.lostReason, t.lostAt
	t.mu.Unlock()
	lost := t.spool.Stats().Lost
	a.cfg.Log.Info("spooling records again", "tower", t.url, "lost", lost-min(from, lost), "reason", reason,
		"suppressed", a.logs.Reset(t.url+" "+reason))
}

// lossReason says why a spool could not take a record, as the tower's
// page puts it ("pve1 lost 312 records: its spool's disk is full").
func lossReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "its spool's disk is full"
	case errors.Is(err, syscall.EDQUOT):
		return "its spool's disk quota is exceeded"
	case errors.Is(err, syscall.EROFS):
		return "its spool's file system is read-only"
	case errors.Is(err, syscall.EIO):
		return "its spool's disk has I/O errors"
	case errors.Is(err, spool.ErrTooLarge):
		return "a record was larger than a quarter of its spool"
	}
	return "its spool cannot be written"
}

// spooled is a record as kept in the spool (the sequence number is the
// spool's).
type spooled struct {
	Kind string          `json:"kind"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// watchKernel follows the kernel log and spools every line that matches a
// signature.
func (a *Agent) watchKernel(ctx context.Context) {
	pos := &positionWriter{file: filepath.Join(a.cfg.StateDir, "kmsg-seq"), before: a.flushLines}
	warn := func(err error) { a.cfg.Log.Warn("cannot save the kernel log's position", "err", err) }
	defer func() { pos.flush(time.Now(), warn) }()
	from := kmsgPosition(pos.file, a.bootID)
	backoff := time.Second
	for ctx.Err() == nil {
		err := logsource.Kmsg(ctx, a.cfg.Kmsg, from, func(l logsource.Line) error {
			spooled := false
			var sig, mode string
			a.matcher.Line(l.Text, "kernel", func(ev signatures.Event) {
				a.logw.add(ev, time.Now())
				a.append(wire.KindLog, wire.Log{
					Signature: ev.Sig.ID, Mode: ev.Sig.Mode, Severity: ev.Sig.Severity, Title: ev.Sig.Title,
					Source: "kernel", Line: ev.Entry.Message, Fields: ev.Fields,
				})
				spooled, sig, mode = true, ev.Sig.ID, ev.Sig.Mode
			})
			if a.ship != nil {
				sl := kmsgLine(l.Text, a.boot)
				sl.Fields = matchFields(sig, mode)
				a.shipLine(sl)
			}
			from = l.Seq + 1
			pos.set(fmt.Appendf(nil, "%s %d\n", a.bootID, l.Seq), spooled, time.Now(), warn)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		a.cfg.Log.Warn("kernel log reader stopped; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// watchJournal follows the systemd journal (services' logs; the kernel's
// come from /dev/kmsg) and spools every line that matches a signature.
// The cursor is kept so a restarted agent resumes after the last line.
func (a *Agent) watchJournal(ctx context.Context) {
	pos := &positionWriter{file: filepath.Join(a.cfg.StateDir, "journal-cursor"), before: a.flushLines}
	warn := func(err error) { a.cfg.Log.Warn("cannot save the journal's cursor", "err", err) }
	defer func() { pos.flush(time.Now(), warn) }()
	backoff := time.Second
	for ctx.Err() == nil {
		pos.flush(time.Now(), warn)
		cursor := ""
		if b, err := os.ReadFile(pos.file); err == nil {
			cursor = strings.TrimSpace(string(b))
		}
		err := logsource.Journal(ctx, "", cursor, func(l logsource.Line) error {
			if bytes.Contains(l.Text, []byte(`"_TRANSPORT":"kernel"`)) {
				return nil // read from /dev/kmsg already
			}
			spooled := false
			var sig, mode string
			a.matcher.Line(l.Text, "journal", func(ev signatures.Event) {
				a.logw.add(ev, time.Now())
				a.append(wire.KindLog, wire.Log{
					Signature: ev.Sig.ID, Mode: ev.Sig.Mode, Severity: ev.Sig.Severity, Title: ev.Sig.Title,
					Source: ev.Entry.Source, Line: ev.Entry.Message, Fields: ev.Fields,
				})
				spooled, sig, mode = true, ev.Sig.ID, ev.Sig.Mode
			})
			if a.ship != nil {
				if sl, ok := journalLine(l.Text); ok {
					if sig != "" {
						if sl.Fields == nil {
							sl.Fields = map[string]string{}
						}
						sl.Fields["signature"], sl.Fields["mode"] = sig, mode
					}
					a.shipLine(sl)
				}
			}
			if l.Cursor != "" {
				pos.set([]byte(l.Cursor+"\n"), spooled, time.Now(), warn)
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		a.cfg.Log.Warn("journal reader stopped; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// deliverLoop delivers one tower's spool in order, and reports at least every
// interval even with nothing to send (the heartbeat). While the tower does
// not take deliveries, retries back off (from retryMin, doubling, at most
// an interval apart, so a tower that comes back hears from the host within
// one) whatever is spooled meanwhile, and the warnings back off further.
func (a *Agent) deliverLoop(ctx context.Context, t *tower) {
	var down outage
	for {
		// Whatever is spooled from here on kicks again; this attempt
		// sends everything before it.
		select {
		case <-t.kick:
		default:
		}
		sent, err := a.deliver(ctx, t)
		wait := a.cfg.Interval
		if err != nil {
			if ctx.Err() != nil {
				a.lastTry(t) // stopped mid-delivery: what was spooled still goes
				return
			}
			wait = down.failed(time.Now(), sent, err, a.retryMin, a.warnMax, min(30*time.Second, a.cfg.Interval), func() {
				a.warnDown(t, &down, err)
			})
			// A tower that sheds load says when to come back: earlier
			// would only add to its load.
			if busy := (*busyError)(nil); errors.As(err, &busy) {
				wait = max(wait, busy.after)
			}
		} else if !down.since.IsZero() {
			down.sent += sent
			a.cfg.Log.Info("delivering to the tower again", "tower", t.url,
				"down_for", finding.HumanDuration(time.Since(down.since)), "since", down.since.Format(time.RFC3339),
				"attempts", down.attempts, "records_sent", down.sent)
			down = outage{}
		}
		timer := time.NewTimer(wait)
		kick := t.kick
		if err != nil {
			kick = nil // backing off: new records wait for the next attempt
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			a.lastTry(t)
			return
		case <-kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// lastTryFor bounds the delivery an agent makes as it stops: short, so a
// tower that hangs cannot keep it from exiting within a second of SIGTERM
// (what it could not send stays in the spool for its next start).
const lastTryFor = 500 * time.Millisecond

// lastTry delivers once more as the agent stops, so what the last cycle
// found is not left behind.
func (a *Agent) lastTry(t *tower) {
	ctx, cancel := context.WithTimeout(context.Background(), lastTryFor)
	defer cancel()
	_, _ = a.deliver(ctx, t)
}

// outage is one tower's run of failed deliveries.
type outage struct {
	since    time.Time // the first failed attempt; zero while delivering
	attempts int
	sent     int           // records delivered meanwhile (in part-delivered attempts)
	retry    time.Duration // the wait before the next attempt
	nextWarn time.Time
	warnGap  time.Duration
	refused  bool // the last failure was a refusal, not an unreachable tower
}

// failed records a failed attempt, calls warn when a warning is due (the
// first failure, a change between refused and unreachable, and then at
// doubling gaps up to warnMax) and returns the wait before the next one.
func (o *outage) failed(now time.Time, sent int, err error, retryMin, warnMax, retryMax time.Duration, warn func()) time.Duration {
	var refused *refusedError
	isRefused := errors.As(err, &refused)
	o.attempts++
	o.sent += sent
	if o.since.IsZero() {
		o.since, o.retry, o.warnGap = now, min(retryMin, retryMax), retryMin
		o.refused = isRefused
		o.nextWarn = now.Add(o.warnGap)
		warn()
	} else {
		o.retry = min(2*o.retry, retryMax)
		if isRefused != o.refused || !now.Before(o.nextWarn) {
			o.refused = isRefused
			o.warnGap = min(2*o.warnGap, warnMax)
			o.nextWarn = now.Add(o.warnGap)
			warn()
		}
	}
	return o.retry
}

func (a *Agent) warnDown(t *tower, o *outage, err error) {
	attrs := []any{"tower", t.url, "err", err, "name", a.cfg.Name, "pending", t.spool.Stats().Pending,
		"down_for", finding.HumanDuration(time.Since(o.since)), "attempts", o.attempts, "retry_in", o.retry}
	if o.refused {
		a.cfg.Log.Error("the tower refused this agent (check --token and --name against the tower's agents list); records stay in the spool", attrs...)
		return
	}
	if se := (*spoolError)(nil); errors.As(err, &se) {
		a.cfg.Log.Error("the tower is reachable but this agent cannot read or update its spool: records the tower already has are sent again, and it ignores them",
			append(attrs, "reason", lossReason(err))...)
		return
	}
	if busy := (*busyError)(nil); errors.As(err, &busy) {
		a.cfg.Log.Warn("the tower is overloaded and asked this agent to come back later; records stay in the spool", attrs...)
		return
	}
	a.cfg.Log.Warn("tower unreachable; records stay in the spool", attrs...)
}

// deliver sends everything pending (at least one batch, empty when there
// is nothing: that is the heartbeat) and returns how many records the
// tower took. A batch smaller than the limit does not mean the spool is
// empty (a Peek may stop at a segment's end): it goes on until a Peek
// finds nothing.
func (a *Agent) deliver(ctx context.Context, t *tower) (sent int, err error) {
	for first := true; ; first = false {
		recs, err := t.spool.Peek(wire.MaxRecords, 1<<20)
		if err != nil {
			return sent, &spoolError{err}
		}
		if len(recs) == 0 && !first {
			return sent, nil
		}
		st := t.spool.Stats()
		env := wire.Envelope{
			Agent: a.cfg.Name, Spool: t.id, BootID: a.bootID, Version: a.cfg.Version,
			Sent: time.Now().UTC(), Interval: a.cfg.Interval, Dropped: st.Dropped,
			Lost: st.Lost, LostReason: t.reason(st.Lost),
			Records: make([]wire.Record, 0, len(recs)),
		}
		for _, r := range recs {
			var s spooled
			if err := json.Unmarshal(r.Data, &s); err != nil {
				// Unreadable: ship it as a status so the sequence stays whole.
				s = spooled{Kind: wire.KindStatus, Time: time.Now().UTC()}
				s.Data, _ = json.Marshal(wire.Status{Event: "corrupt", Message: "an unreadable spool record was skipped"})
			}
			env.Records = append(env.Records, wire.Record{Seq: r.Seq, Kind: s.Kind, Time: s.Time, Data: s.Data})
		}
		reply, err := a.post(ctx, t, &env)
		if err != nil {
			return sent, err
		}
		if len(recs) == 0 {
			return sent, nil
		}
		last := recs[len(recs)-1].Seq
		if reply.Acked < last {
			return sent, fmt.Errorf("tower acknowledged %d of a batch up to %d", reply.Acked, last)
		}
		if err := t.spool.Ack(last); err != nil {
			return sent, &spoolError{err}
		}
		sent += len(recs)
	}
}

// reason is why the tower's spool lost records, "" if it lost none. A
// count from before a restart has no reason known.
func (t *tower) reason(lost uint64) string {
	if lost == 0 {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lostReason == "" {
		return "its spool could not be written"
	}
	return t.lostReason
}

func (a *Agent) post(ctx context.Context, t *tower, env *wire.Envelope) (*wire.Reply, error) {
	return a.postTo(ctx, t, wire.Path, env)
}

func (a *Agent) postTo(ctx context.Context, t *tower, path string, env *wire.Envelope) (*wire.Reply, error) {
	var body bytes.Buffer
	// The fastest level: log lines are most of what is sent, and they
	// compress well at any level; the agent's CPU is the host's.
	zw, _ := gzip.NewWriterLevel(&body, gzip.BestSpeed)
	if err := writeEnvelope(zw, env); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+path, &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var reply wire.Reply
	_ = json.Unmarshal(b, &reply)
	if resp.StatusCode != http.StatusOK {
		msg := reply.Error
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		err := fmt.Errorf("%s: %s: %s", t.url, resp.Status, msg)
		if after, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok &&
			(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			return nil, &busyError{err, after}
		}
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return nil, &refusedError{err, resp.StatusCode}
		}
		return nil, err
	}
	return &reply, nil
}

// busyError is a tower that shed the batch under load (429, or 503 with
// Retry-After) and said when to come back.
type busyError struct {
	error
	after time.Duration
}

func (e *busyError) Unwrap() error { return e.error }

// maxRetryAfter bounds how long a tower's Retry-After can keep an agent
// away: longer and the tower would call the host silent.
const maxRetryAfter = 5 * time.Minute

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(n) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	} else {
		return 0, false
	}
	return max(0, min(d, maxRetryAfter)), true
}

// spoolError is a delivery that failed in the spool (reading records,
// recording an acknowledgement), not on the way to the tower.
type spoolError struct{ error }

func (e *spoolError) Unwrap() error { return e.error }

// refusedError is a tower that answered and refused the batch: a wrong
// token or agent name, not a network problem.
type refusedError struct {
	error
	status int
}

func (e *refusedError) Unwrap() error { return e.error }
