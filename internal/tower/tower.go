// Package tower is `hinomi tower`: the out-of-band server in another
// failure domain. It takes batches from agents (token per agent, each
// record stored once), notices hosts that fall silent, keeps a persisted
// alert state per signal, and delivers notifications from a persisted
// outbox without ever making the checking wait for the sending.
package tower

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
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

// Tower is a running tower. Its parts, each in its own files:
//
//   - ingest (ingest.go, turns.go, budget.go, spool.go): the ingester,
//     which takes agents' batches into the store (or the ingest spool)
//     and hands what they changed to hostView, which Tower implements on
//     memState (hostview.go, loss.go);
//   - evaluation (evaluate.go, policy.go, incidents.go, cluster.go,
//     message.go): evaluate is a function of a memState, the peers, the
//     configuration and a time, returning the alerts' changes; Evaluate
//     writes them with one Store.SaveAlerts and then applies them;
//     engine.go runs it on a tick;
//   - sending (outbox.go): the dispatcher, which shares only the store,
//     the clock, the senders and the metrics;
//   - peers, probes and push monitors (peers.go, probes.go, services.go,
//     history.go, push.go);
//   - HTTP (api.go, webbackend.go): api, which reads memState through
//     stateView and changes it only through changer (acks, silences,
//     notes), which Tower implements.
//
// What they share is the store and memState under mu.
type Tower struct {
	cfg   atomic.Pointer[Config]
	store Store
	log   *slog.Logger
	now   func() time.Time

	mu sync.Mutex
	// memState is what evaluation reads; mu guards it.
	memState
	// persistMu orders the writes of in-memory state to the database
	// (Evaluate, acks, notes): each copies under mu and writes under
	// persistMu, so an older copy never overwrites a newer one.
	persistMu sync.Mutex
	// in takes the agents' batches (ingest.go).
	in    *ingester
	peers peerState
	// lead is this tower's part in a shared store's lease (lead.go);
	// leadMu guards it.
	leadMu  sync.Mutex
	lead    leadership
	started time.Time
	// mono is the monotonic time the engine measures its own gaps with.
	mono func() time.Duration
	// lastEval is the time (Unix ns) of the latest evaluation.
	lastEval   atomic.Int64
	services   services
	ui         http.Handler
	logLimit   *logthrottle.Limiter // lines logged once a minute per kind (refused batches, shedding, clocks)
	probeSched *probe.Scheduler
	// startNewDispatchers starts dispatchers for channels a reload added;
	// Run sets it.
	startNewDispatchers func()

	senders  atomic.Pointer[map[string]notify.Sender]
	out      *dispatcher
	degr     degradation
	evaluate chan struct{} // something changed: evaluate now
	metrics  *metrics
	Registry *prometheus.Registry
	// publicMetrics is Registry without private probes (metrics.public).
	publicMetrics *prometheus.Registry
	listener      net.Listener
	serveTLS      bool // the listener speaks TLS (tls was set when it was bound)
	cert          atomic.Pointer[tls.Certificate]
	httpSrv       *http.Server
	dispatchW     sync.WaitGroup // sends of the degraded page (degraded.go)
	// incLog reads incidents for the API and the exported methods.
	incLog incidentLog
	// logs is the central log store and its ingest (logs.go), recent the
	// latest lines for follows (logsearch.go).
	logs   *logIngest
	recent *recentLines
	// syslog is the syslog receiver (syslog.go), nil until it listens.
	syslog *syslogRx
	// http is the HTTP side: the API and the pages' backend (api.go).
	http *api
}

// memState is the tower's working state in memory: what ingest, probes
// and peers feed, what an evaluation steps, and what the API reads. The
// store holds the durable copy (loaded at start); memState changes only
// after the store's write succeeded.
type memState struct {
	hosts    map[string]*Host
	findings map[string]map[string]*Finding // host → key → open finding
	alerts   map[string]*Alert
	silences []Silence
	// silGen changes whenever silences are added or expired.
	silGen       uint64
	incidents    map[int64]*Incident // open ones (and closed this run)
	nextIncident int64
	// watchFrom is when this tower last began watching: its start, or its
	// resume after a gap it could not have seen reports in (suspend, a
	// clock jump, a stall). A host that is not already firing is judged
	// silent only after its grace from then.
	watchFrom    time.Time
	probes       map[string]ProbeResult // latest result per probe
	probeSince   map[string]time.Time
	probeStreaks map[string]probeStreak // consecutive results, for the thresholds
	ownProbes    map[string]probeVerdict
	isolated     bool                 // its probes looked cut off in the latest round
	expecting    map[string]time.Time // configured agents never heard from: since when expected
	peerProbes   map[string]map[string]probeVerdict
	// pushes are the push monitors' reports, pushDetail what each one's
	// judgement said last (for its notifications). Kept by the tower that
	// received them.
	pushes     map[string]*push.State
	pushDetail map[string][]string
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
	st, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	t := &Tower{
		store: st, log: o.Log, now: o.Now,
		memState: memState{
			hosts: map[string]*Host{}, findings: map[string]map[string]*Finding{}, alerts: map[string]*Alert{},
			incidents: map[int64]*Incident{}, probes: map[string]ProbeResult{}, probeSince: map[string]time.Time{}, probeStreaks: map[string]probeStreak{},
			ownProbes: map[string]probeVerdict{}, peerProbes: map[string]map[string]probeVerdict{},
		},
		peers: peerState{lastOK: map[string]time.Time{}}, started: o.Now(),
		evaluate: make(chan struct{}, 1),
		Registry: prometheus.NewRegistry(), publicMetrics: prometheus.NewRegistry(), logLimit: logthrottle.New(time.Minute),
	}
	t.watchFrom = t.started
	base := time.Now()
	t.mono = func() time.Duration { return time.Since(base) }
	t.metrics = newMetrics(t.Registry, t.publicMetrics, t)
	t.logs, t.recent = newLogIngest(t.Registry), newRecentLines()
	t.in = &ingester{cfg: &t.cfg, store: st, log: t.log, now: func() time.Time { return t.now() }, metrics: t.metrics,
		view: t, once: t.oncePerMinute, kick: t.kick, slots: make(chan struct{}, maxIngest)}
	// The dispatcher reads the tower's clock through t.now, which a test may set after New.
	t.lead = newLeadership(st, cfg.Name)
	if t.lead.shared == nil {
		t.metrics.leader.Set(1)
	} else {
		if t.in.spool, err = openIngestSpool(filepath.Join(cfg.DataDir, "ingest-spool")); err != nil {
			st.Close()
			return nil, fmt.Errorf("the ingest spool: %w", err)
		}
		t.metrics.spooled.Set(float64(t.in.spool.pending()))
	}
	t.out = &dispatcher{store: st, log: t.log, now: func() time.Time { return t.now() }, cfg: &t.cfg, senders: &t.senders, metrics: t.metrics, leads: t.leads}
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
	if err := t.loadPushes(context.Background()); err != nil {
		st.Close()
		return nil, fmt.Errorf("loading the push monitors' reports: %w", err)
	}
	if t.nextIncident, err = st.LastIncidentID(context.Background()); err != nil {
		st.Close()
		return nil, fmt.Errorf("loading incidents: %w", err)
	}
	t.incLog = incidentLog{store: st, state: stateView{mu: &t.mu, s: &t.memState}, now: func() time.Time { return t.now() }, logs: t.logStore}
	t.http = newAPI(t)
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

// Reload replaces the configuration; on error the old one stays.
func (t *Tower) Reload(path string) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	if cfg.DataDir != t.cfg.Load().DataDir {
		return errors.New("data_dir cannot change on reload; restart the tower")
	}
	if old := t.cfg.Load(); cfg.Store != old.Store || cfg.StorePassword != old.StorePassword {
		return errors.New("store cannot change on reload; restart the tower")
	}
	if err := checkLogsReload(t.cfg.Load(), cfg); err != nil {
		return err
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
