package tower

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// The status page's history in the store: per service its current state
// and last results (probe_services), one row per day of uptime tallies
// (probe_days) and one per 15-minute response-time bucket (probe_latency).
// These are exactly what the page is drawn from, so the page read back
// after a restart is the page before it. At 10,000 results a minute the
// rows changed are written together every historyFlush, in one
// transaction, instead of a write per result; a clean stop writes the
// rest. A crash loses at most historyFlush of results.

const (
	historyFlush = 5 * time.Second
	historyPrune = time.Hour
	// DefaultHistoryRetention keeps the status page's 90 days.
	DefaultHistoryRetention = historyDays * 24 * time.Hour
)

type serviceRow struct {
	name, group     string
	public          bool
	status          string
	since, first    time.Time
	last            time.Time
	message, reason string
	recent          []byte
	days            []dayAgg
	lat             []latBucket
}

// changed takes the rows changed since the last call and marks them
// written; put them back with unflushed when the write fails.
func (s *services) changed() []serviceRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([]serviceRow, 0, len(s.dirty))
	for name, st := range s.dirty {
		recent, _ := json.Marshal(st.recent)
		r := serviceRow{name: name, group: st.group, public: st.public, status: st.status, since: st.since, first: st.first,
			last: st.last, message: st.message, reason: st.reason, recent: recent}
		if !st.daysFrom.IsZero() {
			for _, d := range st.days {
				if !d.date.Before(st.daysFrom) {
					r.days = append(r.days, d)
				}
			}
		}
		for i := range st.lat {
			if st.latDirty[i] && st.lat[i].n > 0 {
				r.lat = append(r.lat, st.lat[i])
			}
		}
		st.daysFrom, st.latDirty = time.Time{}, [latencyPoints]bool{}
		rows = append(rows, r)
		delete(s.dirty, name)
	}
	return rows
}

// unflushed marks rows whose write failed as changed again.
func (s *services) unflushed(rows []serviceRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		st := s.m[r.name]
		if st == nil {
			continue
		}
		s.dirty[r.name] = st
		for _, d := range r.days {
			if st.daysFrom.IsZero() || d.date.Before(st.daysFrom) {
				st.daysFrom = d.date
			}
		}
		for _, b := range r.lat {
			st.latDirty[latIndex(b.start)] = true
		}
	}
}

func latIndex(b time.Time) int {
	return int(b.Unix()/int64(latencyBucket.Seconds())) % latencyPoints
}

// flushHistory writes what changed since the last flush in one transaction.
func (t *Tower) flushHistory(ctx context.Context) error {
	rows := t.services.changed()
	if len(rows) == 0 {
		return nil
	}
	err := t.store.SaveProbeHistory(ctx, rows)
	if err != nil {
		t.services.unflushed(rows)
		return fmt.Errorf("writing the status page's history: %w", err)
	}
	return nil
}

// loadHistory reads the configured probes' history back into memory.
func (t *Tower) loadHistory(ctx context.Context) error {
	cfg := t.cfg.Load()
	configured := make(map[string]*ProbeConfig, len(cfg.Probes))
	for i := range cfg.Probes {
		configured[cfg.Probes[i].Name] = &cfg.Probes[i]
	}
	s := &t.services
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready()
	// Only the chart's buckets: older ones wait for the next prune.
	chart := t.now().Truncate(latencyBucket).Add(-latencyPoints * latencyBucket)
	rows, err := t.store.LoadProbeHistory(ctx, chart)
	if err != nil {
		return err
	}
	for _, r := range rows {
		pc := configured[r.name]
		if pc == nil {
			continue // removed from the configuration: not on the page
		}
		// The configuration says where it is shown now.
		st := serviceState{name: r.name, group: pc.Group, public: pc.Public, status: r.status,
			since: r.since, first: r.first, last: r.last, message: r.message, reason: r.reason, days: r.days}
		if err := json.Unmarshal(r.recent, &st.recent); err != nil {
			t.log.Warn("a probe's recent results in the store do not decode; starting them afresh", "probe", st.name, "err", err)
			st.recent = nil
		}
		for i := range st.recent {
			st.recent[i].At = st.recent[i].At.UTC()
		}
		if len(st.days) > historyDays {
			st.days = st.days[len(st.days)-historyDays:]
		}
		for _, b := range r.lat {
			st.lat[latIndex(b.start)] = b // ordered by time: the newest bucket of a slot wins
		}
		s.m[st.name] = &st
	}
	return nil
}

// pruneHistory forgets days older than the retention, response-time
// buckets older than the chart and services not probed within the
// retention, in memory and in the store alike.
func (t *Tower) pruneHistory(ctx context.Context, retention time.Duration, now time.Time) error {
	cut := now.Add(-retention)
	cutDay := time.Date(cut.Year(), cut.Month(), cut.Day(), 0, 0, 0, 0, time.UTC)
	cutLat := now.Truncate(latencyBucket).Add(-latencyPoints * latencyBucket)
	s := &t.services
	s.mu.Lock()
	for name, st := range s.m {
		if st.last.Before(cut) {
			delete(s.m, name)
			delete(s.dirty, name)
			continue
		}
		keep := 0
		for keep < len(st.days) && st.days[keep].date.Before(cutDay) {
			keep++
		}
		st.days = st.days[keep:]
	}
	s.mu.Unlock()
	return t.store.PruneProbeHistory(ctx, cutDay, cutLat, cut)
}

// keepHistory writes the status page's history every historyFlush and
// prunes it hourly until ctx is done; then, once the probes have stopped
// (probesDone), it writes the rest.
func (t *Tower) keepHistory(ctx context.Context, probesDone <-chan struct{}) {
	flush := time.NewTicker(historyFlush)
	defer flush.Stop()
	prune := time.NewTicker(historyPrune)
	defer prune.Stop()
	t.pruneHistoryLogged(ctx)
	for {
		select {
		case <-ctx.Done():
			<-probesDone
			if err := t.flushHistory(context.Background()); err != nil {
				t.log.Error("status page history", "err", err)
			}
			return
		case <-flush.C:
			if err := t.flushHistory(ctx); err != nil && ctx.Err() == nil {
				t.log.Error("status page history", "err", err)
			}
		case <-prune.C:
			t.pruneHistoryLogged(ctx)
		}
	}
}

func (t *Tower) pruneHistoryLogged(ctx context.Context) {
	if err := t.pruneHistory(ctx, time.Duration(t.cfg.Load().Retention.History), t.now()); err != nil && ctx.Err() == nil {
		t.log.Error("pruning the status page history", "err", err)
	}
}
