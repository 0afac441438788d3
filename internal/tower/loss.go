package tower

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/wire"
)

// An agent reports, with every batch, how many records its spool ever
// dropped to keep its size bound (dropped) and how many it could not
// store at all because writing failed, with why (lost, lost_reason: "its
// spool's disk is full"). Those records never reach the tower: the
// findings and log lines in them are missing. When either count grows the
// tower raises a medium alert per host, "pve1 lost 312 records: its
// spool's disk is full", counting from the first growth of the spell; it
// resolves once the counts have not grown for lossQuiet.

// lossQuiet is how long the counts must stay put for the alert to resolve.
const lossQuiet = 10 * time.Minute

// maxLostReason bounds the reason an agent gives.
const maxLostReason = 200

// lossSpell is a run of growth of a host's dropped and lost counts.
type lossSpell struct {
	since, grew           time.Time // first and last growth; zero: none
	fromDropped, fromLost uint64    // the counts before it
	dropped, lost         uint64    // the counts now
	reason                string    // the agent's last reason for lost records
	restored              bool      // carried over a restart of this tower: the counts before it are unknown
	over                  bool      // no growth for lossQuiet: the next growth starts a new spell
}

// noteLoss compares a batch's counts with the host's and starts or
// extends a spell when they grew. t.mu is held; h is the host before the
// batch is applied (nil: first heard of). Counts a tower sees first, from
// a host it never heard from, were lost at an unknown time: they are the
// baseline, not a spell.
func noteLoss(h *Host, env *wire.Envelope, now time.Time) lossSpell {
	if h == nil || h.Spool == "" {
		return lossSpell{}
	}
	sp := h.loss
	oldDropped, oldLost := h.Dropped, h.Lost
	if h.Spool != env.Spool {
		oldDropped, oldLost = 0, 0 // a new spool (a reinstalled agent) counts from zero
	}
	if env.Dropped > oldDropped || env.Lost > oldLost {
		if sp.since.IsZero() || sp.over || h.Spool != env.Spool {
			sp = lossSpell{since: now, fromDropped: oldDropped, fromLost: oldLost}
		}
		sp.grew = now
	}
	if !sp.since.IsZero() && !sp.over {
		sp.dropped, sp.lost = env.Dropped, env.Lost
		if r := lostReason(env); r != "" {
			sp.reason = r
		}
	}
	return sp
}

// title says what a spell cost: "pve1 lost 312 records: its spool's disk
// is full".
func (sp *lossSpell) title(host string) (string, uint64) {
	lost, dropped := sp.lost-min(sp.fromLost, sp.lost), sp.dropped-min(sp.fromDropped, sp.dropped)
	reason := sp.reason
	if reason == "" {
		reason = "its spool could not be written"
	}
	const bound = "its spool reached its size bound"
	switch {
	case lost > 0 && dropped > 0:
		return fmt.Sprintf("%s lost %d records: %s (%d), %s (%d)", host, lost+dropped, reason, lost, bound, dropped), lost + dropped
	case lost > 0:
		return fmt.Sprintf("%s lost %d records: %s", host, lost, reason), lost
	case dropped > 0:
		return fmt.Sprintf("%s lost %d records: %s", host, dropped, bound), dropped
	}
	return "", 0
}

// lossSignals are the hosts' lost-records alerts. A spell it moves on
// (restored at start, or over) is in e.loss.
func (e *evaluation) lossSignals(rule alerting.Rule) []signal {
	now := e.now
	var sigs []signal
	for name, h := range e.st.hosts {
		key := "spool/" + name
		old := e.alert(key)
		active := old != nil && (old.State.Status == alerting.Firing || old.State.Status == alerting.Pending)
		if h.loss.over && !active {
			continue
		}
		sp := h.loss
		if sp.since.IsZero() {
			if !active {
				continue
			}
			// Firing when this tower started: the counts before are
			// unknown; it resolves unless they grow again.
			sp = lossSpell{since: old.State.BadSince, grew: now, fromDropped: h.Dropped, fromLost: h.Lost,
				dropped: h.Dropped, lost: h.Lost, restored: true}
		}
		title, n := sp.title(name)
		if title == "" && old != nil {
			title = old.Title // restored: keep what was said
		}
		if title == "" {
			title = name + " lost records"
		}
		al := e.alertFor(key, name, "spool", title, "medium", "FM-A1")
		al.Summary = fmt.Sprintf("%s's agent could not keep %d records since %s; they never reach this tower, so the findings and log lines in them are missing. "+
			"Its spool has lost %d records to a failed write and dropped %d to its size bound in all. Free space where the agent keeps its state, or give its spool more room (--spool-max-bytes).",
			name, n, sp.since.UTC().Format("2006-01-02 15:04:05 MST"), sp.lost, sp.dropped)
		if sp.restored {
			al.Summary = fmt.Sprintf("%s's agent lost records (see the alert's start). Its spool has lost %d records to a failed write and dropped %d to its size bound in all.", name, sp.lost, sp.dropped)
		}
		bad := now.Sub(sp.grew) < lossQuiet
		sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: bad, BadSince: sp.since}, rule: rule})
		if !bad {
			sp.over = true
		}
		if sp != h.loss {
			e.loss[name] = lossUpdate{was: h.loss, now: sp}
		}
	}
	return sigs
}

// lossCollector exports each host's spool counts as its agent last
// reported them, for dashboards and for rules of one's own.
type lossCollector struct{ t *Tower }

var (
	spoolDroppedDesc = prometheus.NewDesc("hinomi_agent_spool_dropped_records_total",
		"Records the host's agent deleted unsent to keep its spool's size bound, as it last reported (per spool: a reinstalled agent starts again at 0).", []string{"host"}, nil)
	spoolLostDesc = prometheus.NewDesc("hinomi_agent_spool_lost_records_total",
		"Records the host's agent could not spool because writing failed (a full disk), as it last reported.", []string{"host"}, nil)
)

func (c lossCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- spoolDroppedDesc
	ch <- spoolLostDesc
}

func (c lossCollector) Collect(ch chan<- prometheus.Metric) {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	for name, h := range c.t.hosts {
		ch <- prometheus.MustNewConstMetric(spoolDroppedDesc, prometheus.CounterValue, float64(h.Dropped), name)
		ch <- prometheus.MustNewConstMetric(spoolLostDesc, prometheus.CounterValue, float64(h.Lost), name)
	}
}
