package tower

import (
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// The Tower's side of ingest (hostView): what a stored or spooled batch
// changes in memState, under t.mu.

// stored applies a stored batch to memState (hostView).
func (t *Tower) stored(env *wire.Envelope, addr string, res BatchResult, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hosts[env.Agent]
	loss := noteLoss(h, env, now)
	if h == nil {
		h = &Host{Name: env.Agent, FirstSeen: now}
		t.hosts[env.Agent] = h
	}
	h.LastSeen, h.BootID, h.Version, h.Addr, h.Interval, h.Dropped, h.Spool, h.Acked =
		now, env.BootID, env.Version, addr, env.Interval, env.Dropped, env.Spool, res.Acked
	h.Lost, h.LostReason, h.loss = env.Lost, lostReason(env), loss
	for _, ch := range res.Findings {
		t.applyFindings(env.Agent, ch, now)
	}
}

// heard notes a host heard from (hostView).
func (t *Tower) heard(agent string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.hosts[agent]; h != nil {
		h.LastSeen = now
	} else {
		t.hosts[agent] = &Host{Name: agent, FirstSeen: now, LastSeen: now}
	}
}

// lateFindings applies findings records stored late (hostView).
func (t *Tower) lateFindings(agent string, chs []FindingsChange, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ch := range chs {
		t.applyFindings(agent, ch, at)
	}
}

// applyFindings applies a stored findings record to the in-memory view.
// t.mu is held.
func (t *Tower) applyFindings(host string, f FindingsChange, now time.Time) {
	fs := t.findings[host]
	if fs == nil {
		fs = map[string]*Finding{}
		t.findings[host] = fs
	}
	for _, fd := range f.Open {
		cur := fs[fd.Key]
		if cur == nil {
			cur = &Finding{Host: host, Opened: now}
			fs[fd.Key] = cur
		}
		cur.Finding, cur.Updated = fd, now
	}
	for _, k := range f.Resolved {
		delete(fs, k)
	}
}

// spooled notes a batch kept in the ingest spool (hostView): the host was
// heard from, and the agent may drop up to acked, or up to what was
// already acknowledged from the same spool.
func (t *Tower) spooled(b Batch, acked uint64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hosts[b.Agent]
	if h == nil {
		h = &Host{Name: b.Agent, FirstSeen: b.Received}
		t.hosts[b.Agent] = h
	}
	h.LastSeen = b.Received
	if h.Spool == b.Spool {
		acked = max(acked, h.Acked)
	}
	h.Spool, h.Acked = b.Spool, acked
	return acked
}

// oncePerMinute reports whether a line of this key may be logged now.
func (t *Tower) oncePerMinute(key string) bool {
	ok, _ := t.logLimit.Allow(key, time.Now())
	return ok
}
