package tower

import (
	"context"
	"fmt"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
)

// kick asks the engine to evaluate now.
func (t *Tower) kick() {
	select {
	case t.evaluate <- struct{}{}:
	default:
	}
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
		waited := t.mono() - waitFrom
		// With a shared store, the lease and what the other towers wrote
		// first: the time the evaluation judges by is taken after the
		// reading, so that no report read is newer than it (one from the
		// future is judged from when this tower began watching).
		leading, synced := true, true
		if t.lead.shared != nil {
			if leading = t.keepLease(ctx); !leading {
				t.follow(ctx)
			} else if err := t.syncShared(ctx, false); err != nil {
				synced = false
				if ctx.Err() == nil {
					t.log.Error("reading what the other towers wrote", "err", err)
				}
			}
		}
		now, mono := t.now(), t.mono()
		if why := watchGapReason(now.Round(0).Sub(prevWall.Round(0)), mono-prevMono, waited); why != "" {
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
		if !leading || !synced {
			t.watchStorage(ctx, now)
			continue
		}
		// An evaluation that began is written even if the tower is told
		// to stop meanwhile (PostgreSQL gives up on a cancelled context at
		// once), within a bound.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), evaluateWriteTimeout)
		if err := t.Evaluate(ectx, now); err != nil && ctx.Err() == nil {
			t.log.Error("evaluating alerts", "err", err)
		}
		cancel()
		t.watchStorage(ctx, now)
	}
}

const (
	engineTick = 250 * time.Millisecond
	// evaluateWriteTimeout bounds the write of an evaluation at shutdown.
	evaluateWriteTimeout = 10 * time.Second
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
