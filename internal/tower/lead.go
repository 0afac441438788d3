package tower

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
)

// Leading: towers that share a store (PostgreSQL) all take ingest and
// serve the API from it, and one at a time evaluates and sends, the holder
// of the store's lease. The leader renews it every quarter lease; a tower
// counts itself leader until one lease after it asked for its latest
// renewal (its own monotonic clock, so never later than the database's
// expiry), so a leader cut off from the store stops evaluating and sending
// within one lease. The store fences the outbox with the lease's token on
// top (SharedStore.NextDue). Another tower takes an expired lease on its
// next renewal: a dead leader is replaced within lease + lease/4, and a
// row it was sending when it died is sent again sendTimeout after its
// claim (bound: 2 × lease with the defaults).

// leadership is a tower's part in the lease.
type leadership struct {
	shared SharedStore // nil: the store is this tower's alone, which always leads
	holder string      // this tower's name and a random id of this run
	// leading says whether this tower holds the lease; until (monotonic
	// ns) is how long it may count on it.
	leading    bool
	until      time.Duration
	lastRenew  time.Duration
	lastFollow time.Duration
}

func newLeadership(st Store, name string) leadership {
	l := leadership{}
	if s, ok := st.(SharedStore); ok {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		l.shared, l.holder = s, name+"/"+hex.EncodeToString(b)
	}
	return l
}

// leads reports whether this tower may evaluate and send now.
func (t *Tower) leads() bool {
	if t.lead.shared == nil {
		return true
	}
	t.leadMu.Lock()
	defer t.leadMu.Unlock()
	return t.lead.leading && t.mono() < t.lead.until
}

// keepLease renews (or tries to take) the lease when a quarter of it has
// gone by, and says whether this tower leads. A tower that just became
// leader first loads the state the previous leader wrote.
func (t *Tower) keepLease(ctx context.Context) bool {
	l := &t.lead
	lease := time.Duration(t.cfg.Load().Lease)
	t.leadMu.Lock()
	due := !l.leading || t.mono()-l.lastRenew >= lease/4
	t.leadMu.Unlock()
	if due {
		asked := t.mono()
		rctx, cancel := context.WithTimeout(ctx, lease/2)
		_, held, err := l.shared.Lease(rctx, l.holder, lease)
		cancel()
		t.leadMu.Lock()
		was := l.leading
		switch {
		case err != nil:
			// Unknown: keep what the last renewal gave, until it runs out.
			if ctx.Err() == nil && t.oncePerMinute("lease") {
				t.log.Warn("the lease could not be renewed; this tower stops evaluating and sending when it runs out", "err", err)
			}
		case held:
			l.leading, l.until, l.lastRenew = true, asked+lease, asked
		default:
			l.leading = false
		}
		now := l.leading && t.mono() < l.until
		t.leadMu.Unlock()
		t.metrics.leader.Set(b2f(now))
		if now && !was {
			t.log.Info("this tower leads: it evaluates and sends", "holder", l.holder)
			if err := t.syncShared(ctx, true); err != nil {
				t.log.Error("loading the state the previous leader wrote", "err", err)
				t.leadMu.Lock()
				l.leading = false
				t.leadMu.Unlock()
				return false
			}
			t.out.wake()
		}
		if was && !l.leading {
			t.log.Warn("this tower no longer leads", "holder", l.holder)
		}
	}
	return t.leads()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// syncShared brings memState up to what the other towers wrote: hosts and
// findings (their ingest), push reports, silences and acknowledgements
// always; with all,
// alerts and incidents too (a follower's view, or a new leader's start).
func (t *Tower) syncShared(ctx context.Context, all bool) error {
	st := t.lead.shared
	hosts, err := st.LoadHosts(ctx)
	if err != nil {
		return err
	}
	findings, err := st.LoadOpenFindings(ctx)
	if err != nil {
		return err
	}
	now := t.now()
	silences, err := st.LoadSilences(ctx, now)
	if err != nil {
		return err
	}
	acks, err := st.LoadAcks(ctx)
	if err != nil {
		return err
	}
	pushes, err := st.LoadPushStates(ctx)
	if err != nil {
		return err
	}
	var alerts []Alert
	var incidents []Incident
	var lastIncident int64
	if all {
		if alerts, err = st.LoadAlerts(ctx); err != nil {
			return err
		}
		if incidents, err = st.LoadOpenIncidents(ctx); err != nil {
			return err
		}
		if lastIncident, err = st.LastIncidentID(ctx); err != nil {
			return err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range hosts {
		if cur := t.hosts[h.Name]; cur != nil {
			if cur.LastSeen.After(h.LastSeen) {
				continue // this tower took a newer batch meanwhile
			}
			h.loss = cur.loss
			*cur = h
		} else {
			t.hosts[h.Name] = &h
		}
	}
	fs := map[string]map[string]*Finding{}
	for _, f := range findings {
		if fs[f.Host] == nil {
			fs[f.Host] = map[string]*Finding{}
		}
		fs[f.Host][f.Finding.Key] = &f
	}
	t.findings = fs
	t.mergePushes(pushes)
	if len(silences) != len(t.silences) || !sameSilences(silences, t.silences) {
		t.silences = silences
		t.silGen++
	}
	if all {
		t.alerts = map[string]*Alert{}
		for _, a := range alerts {
			t.alerts[a.Key] = &a
		}
		t.incidents = map[int64]*Incident{}
		for _, in := range incidents {
			t.incidents[in.ID] = &in
		}
		t.nextIncident = max(t.nextIncident, lastIncident)
	}
	for key, ack := range acks {
		a := t.alerts[key]
		if a == nil || a.Ack != nil || (a.State.Status != alerting.Firing && !a.State.Flapping) || ack.At.Before(a.State.BadSince) {
			continue // none to take, or an acknowledgement of an earlier outage
		}
		a.Ack = &ack
	}
	return nil
}

func sameSilences(a, b []Silence) bool {
	for i := range a {
		if a[i].ID != b[i].ID || !a[i].Ends.Equal(b[i].Ends) {
			return false
		}
	}
	return true
}

// followEvery is how often a tower that does not lead reloads the shared
// state for its API and pages.
const followEvery = time.Second

// follow reloads the shared state when followEvery has gone by.
func (t *Tower) follow(ctx context.Context) {
	t.leadMu.Lock()
	due := t.mono()-t.lead.lastFollow >= followEvery
	if due {
		t.lead.lastFollow = t.mono()
	}
	t.leadMu.Unlock()
	if !due {
		return
	}
	if err := t.syncShared(ctx, true); err != nil && ctx.Err() == nil && t.oncePerMinute("follow") {
		t.log.Warn("reading the shared state", "err", err)
	}
}
