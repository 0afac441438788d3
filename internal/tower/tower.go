// Package tower is `hinomi tower`: the out-of-band server in another
// failure domain. It takes batches from agents (token per agent, each
// record stored once), notices hosts that fall silent, keeps a persisted
// alert state per signal, and delivers notifications from a persisted
// outbox without ever making the checking wait for the sending.
package tower

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/logthrottle"
	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/probe"
	"github.com/hinomi/hinomi/internal/push"
)

// Tower is a running tower.
type Tower struct {
	cfg   atomic.Pointer[Config]
	store Store
	log   *slog.Logger
	now   func() time.Time

	mu sync.Mutex
	// persistMu orders the writes of in-memory state to the database
	// (Evaluate, acks, notes): each copies under mu and writes under
	// persistMu, so an older copy never overwrites a newer one.
	persistMu sync.Mutex
	// budget bounds each agent's share of ingest, in bytes (budget.go).
	budget byteBudget
	// agentLocks serialise each agent's batches (lockAgent).
	agentLocksMu sync.Mutex
	agentLocks   map[string]*sync.Mutex
	hosts        map[string]*Host
	findings     map[string]map[string]*Finding // host → key → open finding
	alerts       map[string]*Alert
	silences     []Silence
	// silGen changes whenever silences are added or expired.
	silGen       uint64
	incidents    map[int64]*Incident // open ones (and closed this run)
	nextIncident int64
	peers        peerState
	started      time.Time
	// watchFrom is when this tower last began watching: its start, or its
	// resume after a gap it could not have seen reports in (suspend, a
	// clock jump, a stall). A host that is not already firing is judged
	// silent only after its grace from then. t.mu guards it.
	watchFrom time.Time
	// mono is the monotonic time the engine measures its own gaps with.
	mono func() time.Duration
	// lastEval is the time (Unix ns) of the latest evaluation.
	lastEval atomic.Int64
	services services
	ui       http.Handler
	probes   map[string]ProbeResult // latest result per probe
	// pushes are the push monitors' reports, pushDetail what each one's
	// judgement said last (for its notifications); t.mu guards both.
	pushes       map[string]*push.State
	pushDetail   map[string][]string
	probeSince   map[string]time.Time
	probeStreaks map[string]probeStreak // consecutive results, for the thresholds
	ownProbes    map[string]probeVerdict
	isolated     bool                 // its probes looked cut off in the latest round
	logLimit     *logthrottle.Limiter // lines logged once a minute per kind (refused batches, shedding, clocks)
	expecting    map[string]time.Time // configured agents never heard from: since when expected
	peerProbes   map[string]map[string]probeVerdict
	probeSched   *probe.Scheduler
	// startNewDispatchers starts dispatchers for channels a reload added;
	// Run sets it.
	startNewDispatchers func()

	senders     atomic.Pointer[map[string]notify.Sender]
	out         *dispatcher
	degr        degradation
	ingestSlots chan struct{} // batches in flight (maxIngest)
	evaluate    chan struct{} // something changed: evaluate now
	metrics     *metrics
	Registry    *prometheus.Registry
	// publicMetrics is Registry without private probes (metrics.public).
	publicMetrics *prometheus.Registry
	listener      net.Listener
	serveTLS      bool // the listener speaks TLS (tls was set when it was bound)
	cert          atomic.Pointer[tls.Certificate]
	httpSrv       *http.Server
	dispatchW     sync.WaitGroup // sends of the degraded page (degraded.go)
}

// Host is what the tower knows about an agent's host.
type Host struct {
	Name      string        `json:"name"`
	FirstSeen time.Time     `json:"first_seen"`
	LastSeen  time.Time     `json:"last_seen"`
	BootID    string        `json:"boot_id,omitempty"`
	Version   string        `json:"version,omitempty"`
	Addr      string        `json:"addr,omitempty"`
	Interval  time.Duration `json:"interval_ns,omitempty"`
	Dropped   uint64        `json:"dropped,omitempty"`
	// Lost counts records the agent could not spool (a full disk), and
	// LostReason says why.
	Lost       uint64 `json:"lost,omitempty"`
	LostReason string `json:"lost_reason,omitempty"`
	Spool      string `json:"spool,omitempty"`
	Acked      uint64 `json:"acked"`

	loss lossSpell // the current growth of Dropped and Lost
}

// Finding is an agent's finding as the tower keeps it.
type Finding struct {
	Host     string          `json:"host"`
	Opened   time.Time       `json:"opened"`
	Updated  time.Time       `json:"updated"`
	Resolved time.Time       `json:"resolved,omitzero"`
	Finding  finding.Finding `json:"finding"`
}

// Alert is one signal's alert.
type Alert struct {
	Key      string            `json:"key"`
	Host     string            `json:"host"`
	Kind     string            `json:"kind"` // heartbeat, finding
	Title    string            `json:"title"`
	Severity string            `json:"severity"`
	Summary  string            `json:"summary,omitempty"`
	Runbook  string            `json:"runbook,omitempty"`
	State    alerting.State    `json:"state"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Notified: the current outage's firing was sent (so its end is too).
	Notified bool `json:"notified,omitempty"`
	// Suppressed says why it is not notified now (silence, maintenance,
	// dependency), empty when it is.
	Suppressed  string    `json:"suppressed,omitempty"`
	Ack         *Ack      `json:"ack,omitempty"`
	EscalatedAt time.Time `json:"escalated_at,omitzero"`
	LastRepeat  time.Time `json:"last_repeat,omitzero"`
	// Incident is the incident the current outage belongs to.
	Incident int64 `json:"incident,omitempty"`
	// HeldBy is the host whose silence, or whose unknown state (a
	// dependency), holds this alert's opening back since HeldSince;
	// HeldSilent says that host was found silent meanwhile.
	HeldBy     string    `json:"held_by,omitempty"`
	HeldSince  time.Time `json:"held_since,omitzero"`
	HeldSilent bool      `json:"held_silent,omitempty"`

	// Caches of what matches this alert, valid while the silences and the
	// configuration are the ones they were computed for: an evaluation
	// cycle over 10,000 firing alerts must not match each against every
	// silence and route.
	silGen   uint64
	silMatch []int
	rtCfg    *Config
	rtSev    string
	rt       route
}

// Options are what New needs besides the configuration.
type Options struct {
	Log *slog.Logger
	// Now is the clock (tests pass their own); default time.Now.
	Now func() time.Time
	// HTTPClient sends notifications; default a client with a 10 s timeout.
	HTTPClient *http.Client
}

// New opens the tower's store and loads its state.
func New(cfg *Config, o Options) (*Tower, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Log = slog.New(logthrottle.NewHandler(o.Log.Handler(), time.Minute))
	st, err := openSQLite(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	t := &Tower{
		store: st, log: o.Log, now: o.Now,
		hosts: map[string]*Host{}, findings: map[string]map[string]*Finding{}, alerts: map[string]*Alert{},
		incidents: map[int64]*Incident{}, probes: map[string]ProbeResult{}, probeSince: map[string]time.Time{}, probeStreaks: map[string]probeStreak{},
		ownProbes: map[string]probeVerdict{}, peerProbes: map[string]map[string]probeVerdict{}, peers: peerState{lastOK: map[string]time.Time{}}, started: o.Now(),
		evaluate: make(chan struct{}, 1), ingestSlots: make(chan struct{}, maxIngest),
		Registry: prometheus.NewRegistry(), publicMetrics: prometheus.NewRegistry(), logLimit: logthrottle.New(time.Minute),
	}
	t.watchFrom = t.started
	base := time.Now()
	t.mono = func() time.Duration { return time.Since(base) }
	t.metrics = newMetrics(t.Registry, t.publicMetrics, t)
	// The dispatcher reads the tower's clock through t.now, which a test may set after New.
	t.out = &dispatcher{store: st, log: t.log, now: func() time.Time { return t.now() }, cfg: &t.cfg, senders: &t.senders, metrics: t.metrics}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if err := t.setConfig(cfg, client); err != nil {
		st.Close()
		return nil, err
	}
	if err := t.load(); err != nil {
		st.Close()
		return nil, fmt.Errorf("loading state: %w", err)
	}
	if err := t.loadSilences(o.Now()); err != nil {
		st.Close()
		return nil, fmt.Errorf("loading silences: %w", err)
	}
	if err := t.loadIncidents(); err != nil {
		st.Close()
		return nil, fmt.Errorf("loading incidents: %w", err)
	}
	if err := t.loadHistory(context.Background()); err != nil {
		st.Close()
		return nil, fmt.Errorf("loading the status page's history: %w", err)
	}
	if t.nextIncident, err = st.LastIncidentID(context.Background()); err != nil {
		st.Close()
		return nil, fmt.Errorf("loading incidents: %w", err)
	}
	return t, nil
}

func (t *Tower) setConfig(cfg *Config, client *http.Client) error {
	senders := map[string]notify.Sender{}
	for _, ch := range cfg.Channels {
		s, err := notify.New(ch, client)
		if err != nil {
			return fmt.Errorf("channel %s: %w", ch.Name, err)
		}
		senders[ch.Name] = s
	}
	t.cfg.Store(cfg)
	t.senders.Store(&senders)
	if cfg.cert != nil {
		if old := t.cert.Swap(cfg.cert); old == nil || !bytes.Equal(old.Certificate[0], cfg.cert.Certificate[0]) {
			leaf := cfg.cert.Leaf
			t.log.Info("TLS certificate loaded", "cert_file", cfg.TLS.CertFile, "subject", leaf.Subject.String(),
				"names", strings.Join(leaf.DNSNames, ","), "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC())
			if left := leaf.NotAfter.Sub(t.now()); left < 7*24*time.Hour {
				t.log.Warn("the TLS certificate expires soon or has expired: renew it, then send SIGHUP",
					"cert_file", cfg.TLS.CertFile, "not_after", leaf.NotAfter.UTC(), "left", left.Round(time.Minute))
			}
		}
	}
	return nil
}

// tlsConfig serves the certificate loaded last: connections made after a
// reload get the new one, open ones keep theirs.
func (t *Tower) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.cert.Load(), nil
		},
	}
}

// Reload replaces the configuration; on error the old one stays.
func (t *Tower) Reload(path string) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	if cfg.DataDir != t.cfg.Load().DataDir {
		return errors.New("data_dir cannot change on reload; restart the tower")
	}
	t.mu.Lock()
	bound, serveTLS := t.listener != nil, t.serveTLS
	t.mu.Unlock()
	if bound && serveTLS && cfg.cert == nil {
		return errors.New("tls cannot be removed on reload: the tower serves HTTPS; restart it to serve plain HTTP")
	}
	if bound && !serveTLS && cfg.cert != nil {
		return errors.New("tls cannot be turned on by a reload: the tower serves plain HTTP; restart it to serve HTTPS")
	}
	if a, ok := t.boundAddr().(*net.TCPAddr); ok && !a.IP.IsLoopback() && cfg.APIToken == "" {
		return fmt.Errorf("api_token cannot be removed while the tower listens on %s. %s", a, makeTokenHint)
	}
	if err := t.setConfig(cfg, &http.Client{Timeout: 10 * time.Second}); err != nil {
		return err
	}
	// New channels get their dispatcher; probes their new schedule.
	t.mu.Lock()
	startNew := t.startNewDispatchers
	t.mu.Unlock()
	if startNew != nil {
		startNew()
	}
	if sched := t.probeScheduler(); sched != nil {
		var specs []probe.Spec
		for _, p := range cfg.Probes {
			specs = append(specs, p.Spec)
		}
		if err := sched.Update(specs); err != nil {
			return fmt.Errorf("probes: %w", err)
		}
	}
	t.kick()
	return nil
}

func (t *Tower) load() error {
	ctx := context.Background()
	hosts, err := t.store.LoadHosts(ctx)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		t.hosts[h.Name] = &h
	}
	findings, err := t.store.LoadOpenFindings(ctx)
	if err != nil {
		return err
	}
	for _, f := range findings {
		if t.findings[f.Host] == nil {
			t.findings[f.Host] = map[string]*Finding{}
		}
		t.findings[f.Host][f.Finding.Key] = &f
	}
	alerts, err := t.store.LoadAlerts(ctx)
	if err != nil {
		return err
	}
	for _, a := range alerts {
		t.alerts[a.Key] = &a
	}
	return nil
}

// RecordProbe takes one probe result: the status page's history and the
// probe's alert signal.
func (t *Tower) RecordProbe(r ProbeResult) {
	t.services.record(r)
	t.mu.Lock()
	prev, seen := t.probes[r.Name]
	if !seen || prev.Status != r.Status {
		t.probeSince[r.Name] = r.Started
	}
	t.probes[r.Name] = r
	st := t.probeStreaks[r.Name]
	if r.Status == "down" {
		if st.down == 0 {
			st.downSince = r.Started
		}
		st.down, st.good = st.down+1, 0
	} else {
		st.down, st.good = 0, st.good+1
	}
	t.probeStreaks[r.Name] = st
	t.mu.Unlock()
}

// probeDownSince is when the probe's current state began. t.mu is held.
func (t *Tower) probeDownSince(name string, r ProbeResult) time.Time {
	if s, ok := t.probeSince[name]; ok {
		return s
	}
	return r.Started
}

// SetUI mounts the pages (status page, console) beside the API.
func (t *Tower) SetUI(h http.Handler) { t.ui = h }

// kick asks the engine to evaluate now.
func (t *Tower) kick() {
	select {
	case t.evaluate <- struct{}{}:
	default:
	}
}

// Listen binds the HTTP address (so that callers know it before Run). It
// refuses an address other machines can reach while api_token is empty.
func (t *Tower) Listen() (net.Addr, error) {
	cfg := t.cfg.Load()
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	if a, ok := l.Addr().(*net.TCPAddr); cfg.APIToken == "" && (!ok || !a.IP.IsLoopback()) {
		l.Close()
		return nil, fmt.Errorf("listen %s (%s) is reachable from other machines, and api_token is empty: the tower does not listen there without one. %s", cfg.Listen, l.Addr(), makeTokenHint)
	}
	t.mu.Lock()
	t.listener, t.serveTLS = l, cfg.cert != nil
	t.mu.Unlock()
	return l.Addr(), nil
}

// boundAddr is the address Listen bound, or nil.
func (t *Tower) boundAddr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.listener == nil {
		return nil
	}
	return t.listener.Addr()
}

// Run serves until ctx is done, then shuts down: in-flight requests and
// notification sends finish, the store is closed.
func (t *Tower) Run(ctx context.Context) error {
	if t.listener == nil {
		if _, err := t.Listen(); err != nil {
			return err
		}
	}
	t.httpSrv = &http.Server{Handler: t.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		// The server's own complaints (a client that does not trust the
		// certificate, one speaking plain HTTP to HTTPS) go to the tower's log.
		ErrorLog: slog.NewLogLogger(t.log.Handler(), slog.LevelWarn)}
	if t.ui != nil {
		mux := http.NewServeMux()
		mux.Handle("/api/", t.Handler())
		mux.Handle("/push/", t.Handler())
		mux.Handle("/metrics", t.Handler())
		mux.Handle("/healthz", t.Handler())
		mux.Handle("/", t.ui)
		t.httpSrv.Handler = mux
	}
	errc := make(chan error, 1)
	if t.serveTLS {
		t.httpSrv.TLSConfig = t.tlsConfig()
		go func() { errc <- t.httpSrv.ServeTLS(t.listener, "", "") }()
	} else {
		go func() { errc <- t.httpSrv.Serve(t.listener) }()
	}

	dctx, stopDispatch := context.WithCancel(context.Background())
	t.mu.Lock()
	t.startNewDispatchers = func() { t.out.start(dctx) }
	t.mu.Unlock()
	t.out.start(dctx)

	go t.pollPeers(dctx)
	probesDone, historyDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(probesDone)
		t.runProbes(dctx)
	}()
	go func() {
		defer close(historyDone)
		t.keepHistory(dctx, probesDone)
	}()
	engineDone := make(chan struct{})
	go func() {
		defer close(engineDone)
		t.engine(ctx)
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = t.httpSrv.Shutdown(shut)
	cancel()
	<-engineDone
	stopDispatch()
	<-historyDone // the probes stopped and their last results are written
	t.dispatchW.Wait()
	t.out.wg.Wait()
	if cerr := t.store.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// engine evaluates every signal on a short tick and whenever ingest says
// something changed, and prunes old records hourly. It also notices when
// it could not have watched: see watchGap.
func (t *Tower) engine(ctx context.Context) {
	tick := time.NewTicker(engineTick)
	defer tick.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	prevWall, prevMono := t.now(), t.mono()
	for {
		// A stall is measured over the wait alone, so a slow evaluation or
		// prune is not taken for one; the clocks' drift over the whole turn.
		waitFrom := t.mono()
		pruneNow := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.evaluate:
		case <-prune.C:
			pruneNow = true
		}
		now, mono := t.now(), t.mono()
		if why := watchGapReason(now.Round(0).Sub(prevWall.Round(0)), mono-prevMono, mono-waitFrom); why != "" {
			t.resumeWatch(now, why)
		}
		prevWall, prevMono = now, mono
		if pruneNow {
			cfg := t.cfg.Load()
			if n, err := t.store.Prune(ctx, time.Duration(cfg.Retention.MaxAge), int64(cfg.Retention.MaxBytes), now); err != nil {
				t.log.Error("pruning records", "err", err)
			} else if n > 0 {
				t.log.Info("pruned records", "deleted", n)
			}
		}
		if err := t.Evaluate(ctx, now); err != nil && ctx.Err() == nil {
			t.log.Error("evaluating alerts", "err", err)
		}
		t.watchStorage(ctx, now)
	}
}

const (
	engineTick = 250 * time.Millisecond
	// watchGap is how far the engine's wait may overrun its tick, or the
	// wall clock move apart from the monotonic clock, before the tower
	// counts itself as not having watched: a suspended machine (Linux's
	// monotonic clock stops while the wall clock goes on), a stepped clock,
	// a stopped or starved process. Reports that arrived meanwhile were
	// not seen, or are dated on another time line, so every host that is
	// not already firing gets its grace again from the resume.
	watchGap = 10 * time.Second
)

// watchGapReason says why the engine could not have watched over a turn
// of its loop that took wall on the wall clock and mono on the monotonic
// one, of which wait waiting ("" if it could).
func watchGapReason(wall, mono, wait time.Duration) string {
	switch {
	case wall-mono > watchGap:
		return fmt.Sprintf("the wall clock moved %s further than the monotonic clock: the machine was suspended or the clock jumped forward", wall-mono)
	case mono-wall > watchGap:
		return fmt.Sprintf("the wall clock went back %s: the clock was set back", mono-wall)
	case wait > watchGap:
		return fmt.Sprintf("the engine did not run for %s: the process was stopped or starved", wait.Round(time.Millisecond))
	}
	return ""
}

// resumeWatch starts the hosts' grace again from now.
func (t *Tower) resumeWatch(now time.Time, why string) {
	t.mu.Lock()
	t.watchFrom = now
	for name := range t.expecting {
		if a := t.alerts["heartbeat/"+name]; a == nil || a.State.Status != alerting.Firing {
			t.expecting[name] = now
		}
	}
	t.mu.Unlock()
	t.log.Warn("the tower was not watching; every host that is not already silent gets its grace again from now", "why", why, "resumed", now)
}

// judgedSince is the time a heartbeat's silence counts from: the host's
// last report, but no earlier than when this tower began watching (a
// report it could not have received is not missing) unless the alert
// already fires; a report dated after now (the clock went back) counts
// from when the tower resumed. t.mu is held.
func (t *Tower) judgedSince(last, now time.Time, al *Alert) time.Time {
	if al.State.Status == alerting.Firing {
		return last
	}
	if last.After(now) || t.watchFrom.After(last) {
		return t.watchFrom
	}
	return last
}

// signal is one observation for the state machine.
type signal struct {
	alert *Alert
	obs   alerting.Observation
	rule  alerting.Rule
}

// Evaluate steps every signal to now and persists and notifies what
// changed. Tests call it directly with their own time.
func (t *Tower) Evaluate(ctx context.Context, now time.Time) error {
	t.persistMu.Lock()
	defer t.persistMu.Unlock()
	cfg := t.cfg.Load()
	minSev, _ := finding.ParseSeverity(cfg.Alerts.MinSeverity)
	flap := alerting.FlapRule{Window: time.Duration(cfg.Alerts.Flap.Window), Spells: cfg.Alerts.Flap.Spells, Stable: time.Duration(cfg.Alerts.Flap.Stable)}
	rule := alerting.Rule{For: time.Duration(cfg.Alerts.For), RepeatInterval: time.Duration(cfg.Alerts.RepeatInterval), Flap: flap}

	t.mu.Lock()
	var sigs []signal
	if t.expecting == nil {
		t.expecting = map[string]time.Time{}
	}
	for _, a := range cfg.Agents {
		key := "heartbeat/" + a.Name
		h := t.hosts[a.Name]
		if h == nil {
			// Configured but never heard from since this tower began
			// expecting it (start or reload): after a grace that is a
			// silent host too, or a host nobody watches goes unnoticed.
			since, ok := t.expecting[a.Name]
			if !ok || (cfg.Alerts.NeverReported != nil && !*cfg.Alerts.NeverReported) {
				if !ok {
					t.expecting[a.Name] = now
				}
				continue
			}
			if old := t.alerts[key]; (old == nil || old.State.Status != alerting.Firing) && now.Sub(since) <= time.Duration(a.Grace) {
				continue
			}
			al := t.alertFor(key, a.Name, "heartbeat", "Host "+a.Name+" is silent", "catastrophic", "FM-A1")
			al.Summary = fmt.Sprintf("%s has never reported since this tower began expecting it at %s (grace %s): is its agent running, with --name %s and its token?",
				a.Name, since.UTC().Format("2006-01-02 15:04:05 MST"), time.Duration(a.Grace), a.Name)
			sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: true, BadSince: since},
				rule: alerting.Rule{RepeatInterval: rule.RepeatInterval, Flap: flap}})
			continue
		}
		al := t.alertFor(key, a.Name, "heartbeat", "Host "+a.Name+" is silent", "catastrophic", "FM-A1")
		judged := t.judgedSince(h.LastSeen, now, al)
		silent := now.Sub(judged) > time.Duration(a.Grace)
		al.Summary = fmt.Sprintf("No report from %s since %s (it reports every %s; grace %s).",
			a.Name, h.LastSeen.UTC().Format("2006-01-02 15:04:05 MST"), orDefault(h.Interval, "?"), time.Duration(a.Grace))
		if !judged.Equal(h.LastSeen) && al.State.Status != alerting.Firing {
			al.Summary += fmt.Sprintf(" This tower was not watching until %s, so it gave %s its grace from then.",
				judged.UTC().Format("2006-01-02 15:04:05 MST"), a.Name)
		}
		badSince := h.LastSeen
		if badSince.After(now) {
			badSince = judged // dated on the time line before the clock went back
		}
		sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: silent, BadSince: badSince},
			rule: alerting.Rule{RepeatInterval: rule.RepeatInterval, Flap: flap}})
	}
	sigs = append(sigs, t.peerSignals(now, cfg, flap)...)
	if t.pushDetail == nil {
		t.pushDetail = map[string][]string{}
	}
	sigs = append(sigs, t.pushSignals(now, cfg, rule)...)
	sigs = append(sigs, t.lossSignals(now, rule)...)
	configured := map[string]bool{}
	for _, a := range cfg.Agents {
		configured["heartbeat/"+a.Name] = true
	}
	for _, p := range cfg.Probes {
		configured["probe/"+p.Name] = true
	}
	for _, p := range cfg.Peers {
		configured["peer/"+p.Name] = true
	}
	for _, p := range cfg.Pushes {
		configured["push/"+p.Name] = true
	}
	for name := range t.probes {
		if !configured["probe/"+name] {
			delete(t.probes, name) // removed by a reload
		}
	}
	for key, al := range t.alerts {
		// Removed by a reload: what still fires resolves.
		if (al.Kind == "heartbeat" || al.Kind == "probe" || al.Kind == "peer" || al.Kind == "push") && !configured[key] &&
			(al.State.Status == alerting.Firing || al.State.Status == alerting.Pending) {
			sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: false}, rule: rule})
		}
	}
	thresholds := map[string]ProbeConfig{}
	for _, p := range cfg.Probes {
		thresholds[p.Name] = p
	}
	for name, r := range t.probes {
		host := r.Host
		if host == "" {
			host = "service:" + name
		}
		sev := "high"
		al := t.alertFor("probe/"+name, host, "probe", "Service "+name+" is down", sev, "FM-A3")
		al.Labels["group"] = r.Group
		al.Summary = "The probe of " + name + " fails."
		if r.Message != "" {
			al.Summary = "The probe of " + name + " fails: " + r.Message
		}
		// Opens after failure_threshold failed runs in a row, from the
		// first of them; resolves after success_threshold good ones.
		st, pc := t.probeStreaks[name], thresholds[name]
		wasBad := al.State.Status == alerting.Firing || al.State.Status == alerting.Pending
		bad := st.down >= max(pc.FailureThreshold, 1) || wasBad && st.good < max(pc.SuccessThreshold, 1)
		since := st.downSince
		if since.IsZero() {
			since = t.probeDownSince(name, r)
		}
		sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: bad, BadSince: since}, rule: rule})
	}
	seen := map[string]bool{}
	for host, fs := range t.findings {
		for _, f := range fs {
			if f.Finding.Severity < minSev {
				continue
			}
			key := "finding/" + host + "/" + f.Finding.Key
			seen[key] = true
			al := t.alertFor(key, host, "finding", host+": "+f.Finding.Summary, f.Finding.Severity.String(), f.Finding.Runbook)
			al.Summary = f.Finding.Summary
			since := f.Opened
			if f.Finding.Since != nil && f.Finding.Since.Before(since) {
				since = *f.Finding.Since
			}
			sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: true, BadSince: since}, rule: rule})
		}
	}
	for key, al := range t.alerts {
		if al.Kind == "finding" && !seen[key] && (al.State.Status == alerting.Firing || al.State.Status == alerting.Pending) {
			sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: false}, rule: rule})
		}
	}
	depthOrder(sigs, cfg)
	heldBefore := t.heldBy()
	type change struct {
		alert    Alert
		before   Alert
		event    alerting.Event
		out      []outMsg
		incident *Incident
	}
	var changes []change
	for _, s := range sigs {
		// Repeats follow the routes (decide), not the state machine.
		s.rule.RepeatInterval = 0
		next, ev := alerting.Step(s.alert.State, s.obs, now, s.rule)
		changed := !next.Same(s.alert.State)
		if !changed && next.Status != alerting.Firing && !next.Flapping {
			continue
		}
		before := *s.alert
		s.alert.State = next
		// The incident first, so that the messages link to it.
		in := t.recordIncidents(s.alert, ev, now, cfg)
		out := t.decide(s.alert, ev, now, cfg)
		if in == nil && !changed && len(out) == 0 && before.Notified == s.alert.Notified && before.Suppressed == s.alert.Suppressed {
			continue
		}
		var snap *Incident
		if in != nil {
			cp := *in
			snap = &cp
		}
		changes = append(changes, change{alert: *s.alert, before: before, event: ev, out: out, incident: snap})
	}
	// A silent host's messages name what it holds back, as it stands after
	// every signal was stepped (its dependents are judged after it).
	heldAfter := t.heldBy()
	for _, c := range changes {
		if c.alert.Kind != "heartbeat" {
			continue
		}
		for _, o := range c.out {
			switch o.msg.State {
			case notify.Resolved:
				if keys := appendNew(slices.Clone(heldBefore[c.alert.Host]), heldAfter[c.alert.Host]...); len(keys) > 0 {
					o.msg.Details = append(o.msg.Details, fmt.Sprintf("Held back while %s was silent, and released now (sent if still going on):", c.alert.Host))
					o.msg.Details = append(o.msg.Details, heldList(keys, t.alerts)...)
				}
			default:
				if keys := heldAfter[c.alert.Host]; len(keys) > 0 {
					o.msg.Details = append(o.msg.Details, fmt.Sprintf("Held back while %s is silent (its own alerts and those of hosts that depend on it):", c.alert.Host))
					o.msg.Details = append(o.msg.Details, heldList(keys, t.alerts)...)
				}
			}
		}
	}
	t.mu.Unlock()
	t.lastEval.Store(now.UnixNano())
	if len(changes) == 0 {
		t.noteUnwritten(nil)
		return nil
	}
	writes := make([]AlertChange, 0, len(changes))
	for _, c := range changes {
		w := AlertChange{Alert: c.alert, Incident: c.incident}
		for _, o := range c.out {
			w.Messages = append(w.Messages, o.enqueue(c.alert.Key, now))
		}
		if text := eventText(&c.alert, c.event, now); text != "" {
			w.Events = append(w.Events, AlertEvent{At: now, Key: c.alert.Key, Host: c.alert.Host, Incident: c.alert.Incident, Event: string(c.event), Text: text})
		}
		if held := c.before.HeldSince; !held.IsZero() && c.alert.HeldSince.IsZero() && c.alert.Notified && !c.before.Notified {
			text := fmt.Sprintf("SENT: %s, held back for %s (%s)", c.alert.Title, finding.HumanDuration(now.Sub(held)), c.before.Suppressed)
			w.Events = append(w.Events, AlertEvent{At: now, Key: c.alert.Key, Host: c.alert.Host, Incident: c.alert.Incident, Event: "released", Text: text})
		}
		writes = append(writes, w)
	}
	err := t.store.SaveAlerts(ctx, now, writes)
	if err != nil {
		// Nothing was written: put the alerts back as they were, so that the
		// next evaluation decides (and notifies) again.
		t.mu.Lock()
		for _, c := range changes {
			if a := t.alerts[c.alert.Key]; a != nil {
				*a = c.before
			}
		}
		t.mu.Unlock()
		if t.store.StorageError(err) {
			// Judged all the same: the degraded page names them.
			var judged []Alert
			for _, c := range changes {
				judged = append(judged, c.alert)
			}
			t.noteUnwritten(judged)
		}
		return err
	}
	t.noteUnwritten(nil)
	for _, c := range changes {
		if c.event != alerting.None {
			t.log.Info("alert", "key", c.alert.Key, "event", string(c.event), "status", string(c.alert.State.Status), "suppressed", c.alert.Suppressed)
			t.metrics.transitions.WithLabelValues(c.alert.Kind, string(c.event)).Inc()
		}
	}
	t.out.wake()
	return nil
}

// heldBy lists, per host, the alerts its silence holds back, sorted.
// t.mu is held.
func (t *Tower) heldBy() map[string][]string {
	out := map[string][]string{}
	for _, a := range t.alerts {
		if a.HeldBy != "" && !a.Notified {
			out[a.HeldBy] = append(out[a.HeldBy], a.Key)
		}
	}
	for _, keys := range out {
		sort.Strings(keys)
	}
	return out
}

// eventText is an alert event as a timeline line.
func eventText(a *Alert, ev alerting.Event, now time.Time) string {
	note := ""
	if a.Suppressed != "" {
		note = " (not sent: " + a.Suppressed + ")"
	}
	switch ev {
	case alerting.Fire:
		return fmt.Sprintf("FIRING: %s, bad since %s%s", a.Title, a.State.BadSince.UTC().Format("15:04:05"), note)
	case alerting.Resolve:
		return resolutionText(a, finding.HumanDuration(a.State.Downtime(now)))
	case alerting.FlapStart:
		return fmt.Sprintf("FLAPPING: %s (%d bad spells)%s", a.Title, len(a.State.Spells), note)
	case alerting.FlapEnd:
		if e, ok := a.State.FlapEpisode(); ok {
			return fmt.Sprintf("%s: flapped %d times between %s and %s, down %s in total; up and stable since %s",
				recoveryTitle(a, true), e.Spells, e.First.UTC().Format("15:04:05"), e.Last.UTC().Format("15:04:05"),
				finding.HumanDuration(e.Down), e.StableSince.UTC().Format("15:04:05"))
		}
		return recoveryTitle(a, true)
	}
	return ""
}

func orDefault(d time.Duration, s string) string {
	if d == 0 {
		return s
	}
	return d.String()
}

func (t *Tower) alertFor(key, host, kind, title, severity, runbook string) *Alert {
	a := t.alerts[key]
	if a == nil {
		a = &Alert{Key: key, Host: host, Kind: kind, State: alerting.State{Status: alerting.OK}}
		t.alerts[key] = a
	}
	a.Title, a.Severity, a.Runbook = title, severity, runbook
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	a.Labels["host"], a.Labels["kind"], a.Labels["severity"] = host, kind, severity
	return a
}

// message builds the notification for an event (nil: none).
func (t *Tower) message(a *Alert, ev alerting.Event, now time.Time) *notify.Message {
	m := &notify.Message{
		Key: a.Key, Host: a.Host, Title: a.Title, Severity: a.Severity, Started: a.State.BadSince,
		Now: now, Summary: a.Summary, Runbook: a.Runbook, Labels: map[string]string{"kind": a.Kind},
		Condition: a.Kind == "finding",
	}
	if cfg := t.cfg.Load(); cfg.URL != "" {
		// A person follows the link: to the console when it has users
		// (the incident's timeline when there is one), else to the API.
		base := strings.TrimRight(cfg.URL, "/")
		switch {
		case len(cfg.Console.Users) > 0 && a.Incident != 0:
			m.URL = base + "/console/incidents/" + strconv.FormatInt(a.Incident, 10)
		case len(cfg.Console.Users) > 0:
			m.URL = base + "/console/#alerts-h"
		default:
			m.URL = base + "/api/v1/alerts?key=" + url.QueryEscape(a.Key)
		}
	}
	if strings.HasPrefix(m.Host, "service:") {
		m.Host = "" // a probe of a service with no host declared
	}
	switch ev {
	case alerting.Fire:
		m.State = notify.Firing
		if b := a.State.BlipSummary(); b != "" {
			m.Details = append(m.Details, "Before this: "+b+". This one is still going on.")
		}
	case alerting.FlapStart:
		m.State = notify.Firing
		m.Title = a.Title + " (flapping)"
		m.Started = a.State.Spells[0]
		m.Labels["flapping"] = "true"
		cfg := t.cfg.Load()
		m.Summary = fmt.Sprintf("It went bad %d times in the last %s; instead of a message each time, the next one comes when it has been stable for %s or a spell lasts that long.",
			len(a.State.Spells), time.Duration(cfg.Alerts.Flap.Window), time.Duration(cfg.Alerts.Flap.Stable))
		if b := a.State.BlipSummary(); b != "" {
			m.Details = append(m.Details, b+".")
		}
	case alerting.FlapEnd:
		m.State = notify.Resolved
		m.Title = recoveryTitle(a, true)
		m.Started, m.Ended = a.State.FlapSince, now
		m.Labels["flapping"] = "false"
		m.Summary = "It has been stable for " + time.Duration(t.cfg.Load().Alerts.Flap.Stable).String() + " after flapping."
		if e, ok := a.State.FlapEpisode(); ok {
			m.Flap = &notify.Flap{Spells: e.Spells, First: e.First, Last: e.Last, Down: e.Down, StableSince: e.StableSince}
			m.Started, m.Ended = e.First, e.StableSince
		}
		if b := a.State.BlipSummary(); b != "" {
			m.Details = append(m.Details, b+".")
		}
	case alerting.Repeat:
		m.State = notify.Repeat
	case alerting.Resolve:
		m.State, m.Ended = notify.Resolved, a.State.ResolvedAt
		m.Title = recoveryTitle(a, false)
		if a.Kind == "probe" {
			m.Summary = "The probe of " + strings.TrimPrefix(a.Key, "probe/") + " passes again."
		}
		if a.Kind == "peer" {
			m.Summary = "Tower " + t.cfg.Load().Name + " has an answer from its peer " + a.Host + " again."
		}
		if a.Kind == "heartbeat" {
			m.Details = t.lastWords(a.Host)
			if len(m.Details) > 0 {
				m.Summary = fmt.Sprintf("%s reports again. Last words before it went silent: %s", a.Host, m.Details[0])
			} else {
				m.Summary = a.Host + " reports again."
			}
		}
	default:
		return nil
	}
	if a.Kind == "push" && ev != alerting.Resolve {
		m.Details = append(m.Details, t.pushMessageDetail(a.Key)...)
	}
	if a.Kind == "finding" {
		if fs := t.findings[a.Host]; fs != nil {
			for _, f := range fs {
				if "finding/"+a.Host+"/"+f.Finding.Key == a.Key {
					for _, l := range f.Finding.Evidence.Lines {
						m.Details = append(m.Details, l.Text)
					}
				}
			}
		}
	}
	return m
}

// resolutionText is a resolution as a timeline line.
func resolutionText(a *Alert, after string) string {
	if a.Kind == "finding" {
		return "Cleared after " + after + ": " + a.Title
	}
	return recoveryTitle(a, false) + " after " + after
}

// recoveryTitle is the title of an alert's resolution, or with stable of
// the end of its flapping: what is well again ("Host pve1 is back",
// "Host pve1 is stable again"), never the problem's words ("is silent").
// A finding's resolution keeps its title, which names what was wrong, and
// is marked as one.
func recoveryTitle(a *Alert, stable bool) string {
	well := map[string]string{"heartbeat": "is back", "probe": "is up again", "peer": "answers again"}[a.Kind]
	if stable {
		well = "is stable again"
	}
	switch a.Kind {
	case "heartbeat":
		return "Host " + a.Host + " " + well
	case "probe":
		return "Service " + strings.TrimPrefix(a.Key, "probe/") + " " + well
	case "peer":
		return "Tower " + a.Host + " " + well
	}
	if stable {
		return "No longer flapping: " + a.Title
	}
	return a.Title
}

// lastWords are the distress lines a host's agent backfilled from the
// boot that ended in silence (findings about the previous boot).
func (t *Tower) lastWords(host string) []string {
	var out []string
	var fs []*Finding
	for _, f := range t.findings[host] {
		if strings.HasPrefix(f.Finding.Subject, "previous boot") {
			fs = append(fs, f)
		}
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].Finding.Severity > fs[j].Finding.Severity })
	for _, f := range fs {
		if len(f.Finding.Evidence.Lines) == 0 {
			continue
		}
		l := f.Finding.Evidence.Lines[0] // the first distress line of each
		text := l.Text
		if l.Time != nil {
			text += " (at " + l.Time.UTC().Format("15:04:05 MST") + ")"
		}
		out = append(out, text)
	}
	return out
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
