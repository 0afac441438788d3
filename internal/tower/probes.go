package tower

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/probe"
)

// Probes: the tower runs the configured probes on its scheduler; each
// result is merged with what peer towers (other locations) last saw of the
// same probe, and only when enough locations agree is the service down.

// ProbeConfig is a probe in the tower's YAML.
type ProbeConfig struct {
	probe.Spec `yaml:",inline"`
	// Host is where the service runs: while that host is silent, the
	// probe's alert does not open (dependency).
	Host string `yaml:"host"`
	// FailureThreshold: consecutive failed runs before the alert opens
	// (default 1); SuccessThreshold: consecutive good runs before it
	// resolves (default 1). The status page shows every run regardless.
	FailureThreshold int `yaml:"failure_threshold"`
	SuccessThreshold int `yaml:"success_threshold"`
}

// probeStreak counts a probe's consecutive results of one kind.
type probeStreak struct {
	down, good int
	downSince  time.Time // first run of the current failing streak
}

// probeVerdict is one location's latest result, as peers exchange them.
type probeVerdict struct {
	Status   probe.Status `json:"status"`
	At       time.Time    `json:"at"`
	Isolated bool         `json:"isolated,omitempty"`
	Message  string       `json:"message,omitempty"`
}

// runProbes schedules the probes until ctx is done.
func (t *Tower) runProbes(ctx context.Context) {
	results := make(chan probe.Delivery, 4096)
	sched := probe.NewScheduler(probe.SchedulerConfig{
		Env: &probe.Env{Now: t.now},
		Deliver: func(d probe.Delivery) {
			select {
			case results <- d:
			default:
				t.log.Warn("probe result queue full; result dropped", "probe", d.Spec.Name)
			}
		},
	})
	specs := func() []probe.Spec {
		var out []probe.Spec
		for _, p := range t.cfg.Load().Probes {
			out = append(out, p.Spec)
		}
		return out
	}
	if err := sched.Update(specs()); err != nil {
		t.log.Error("probes", "err", err)
	}
	t.mu.Lock()
	t.probeSched = sched
	t.mu.Unlock()
	go func() {
		if err := sched.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.log.Error("probe scheduler stopped", "err", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-results:
			t.probeDelivered(d)
		}
	}
}

// probeDelivered records one of this tower's results and the verdict of
// all locations.
func (t *Tower) probeDelivered(d probe.Delivery) {
	cfg := t.cfg.Load()
	var pc *ProbeConfig
	for i := range cfg.Probes {
		if cfg.Probes[i].Name == d.Spec.Name {
			pc = &cfg.Probes[i]
		}
	}
	if pc == nil {
		return // removed by a reload
	}
	msg := probeDetail(d.Result)
	reason := d.Result.Reason
	t.mu.Lock()
	mine := probeVerdict{Status: d.Result.Status, At: d.Result.Started, Message: msg}
	t.ownProbes[pc.Name] = mine
	// This tower is cut off when every one of its probes fails at once and
	// nothing else reaches it: no agent reported and no peer answered.
	var round []probe.Status
	for _, v := range t.ownProbes {
		round = append(round, v.Status)
	}
	now := t.now()
	heard := false
	for _, h := range t.hosts {
		if now.Sub(h.LastSeen) < 2*time.Duration(cfg.Grace) {
			heard = true
		}
	}
	for _, p := range cfg.Peers {
		if now.Sub(t.peers.last(p.Name)) <= time.Duration(cfg.PeerGrace) {
			heard = true
		}
	}
	allDown := len(round) > 0
	for _, st := range round {
		if st != probe.Down {
			allDown = false
		}
	}
	// Isolation only matters where another location can speak instead: a
	// tower with peers that hears nothing and sees its probes all fail
	// (probe.Isolated wants three; with peers, all failing is enough) is
	// cut off. A tower alone reports what it sees: staying quiet would
	// leave the status page green and page nobody.
	isolated := len(cfg.Peers) > 0 && !heard && (probe.Isolated(round) || allDown)
	if isolated && !t.isolated {
		t.log.Warn("every probe fails and no agent or peer tower is heard: this tower looks cut off, its probe results do not vote", "probes", len(round))
	}
	t.isolated = isolated
	mine.Isolated = isolated
	t.ownProbes[pc.Name] = mine
	votes := []probe.LocationResult{{Location: cfg.Name, Status: mine.Status, At: mine.At, Isolated: isolated}}
	maxAge := 3 * max(pc.Interval, time.Minute)
	for peer, vs := range t.peerProbes {
		if v, ok := vs[pc.Name]; ok {
			votes = append(votes, probe.LocationResult{Location: peer, Status: v.Status, At: v.At, Isolated: v.Isolated})
		}
	}
	votes = probe.Recent(votes, now, maxAge)
	status := probe.Consensus(votes, cfg.ProbeQuorum)
	t.mu.Unlock()
	if isolated && len(votes) == 1 {
		// Alone and cut off: say nothing about the service.
		return
	}
	if status != mine.Status && msg == "" {
		msg = "other locations see it " + string(status)
		reason = msg
	}
	if status == probe.Up {
		reason = ""
	}
	t.RecordProbe(ProbeResult{Name: pc.Name, Group: pc.Group, Public: pc.Public, Status: string(status),
		Started: d.Result.Started, Duration: d.Result.Duration, Message: msg, Reason: reason, Host: pc.Host})
}

// probeDetail is a result's failure for operators: the error with the target's address,
// then every failed condition with the value seen.
func probeDetail(r probe.Result) string {
	parts := r.Failed
	if r.Error != "" && !strings.Contains(strings.Join(r.Failed, "; "), r.Error) {
		parts = append([]string{r.Error}, r.Failed...)
	}
	return strings.Join(parts, "; ")
}

func (t *Tower) setPeerVerdicts(peer string, vs map[string]probeVerdict) {
	t.mu.Lock()
	t.peerProbes[peer] = vs
	t.mu.Unlock()
}

func (t *Tower) probeScheduler() *probe.Scheduler {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.probeSched
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
func (m *memState) probeDownSince(name string, r ProbeResult) time.Time {
	if s, ok := m.probeSince[name]; ok {
		return s
	}
	return r.Started
}
