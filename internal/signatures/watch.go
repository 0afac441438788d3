package signatures

import (
	"sort"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// Watch turns distress lines read live (an agent's kernel log, journal,
// files; the tower's syslog senders) into findings like any other: repeats of one signature on one
// subject are one finding with a count and its first and last line; it
// stays open while the lines keep coming and resolves after the
// signature's quiet period, or when a resolving line arrives.
type Watch struct {
	mu    sync.Mutex
	keep  int
	quiet time.Duration
	agg   *Aggregator
	seen  map[*Incident]time.Time // when its last line arrived
}

// NewWatch returns a Watch that remembers at most keep incidents (the
// latest) and resolves one after its signature's quiet period, or after
// quiet when the signature sets none.
func NewWatch(keep int, quiet time.Duration) *Watch {
	return &Watch{keep: keep, quiet: quiet, agg: NewAggregator(), seen: map[*Incident]time.Time{}}
}

// Add takes one matched line as it arrives.
func (w *Watch) Add(ev Event, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.agg.Add(ev)
	w.agg.Each(func(in *Incident) {
		if in.Last.Line == ev.Line && in.Sig == ev.Sig || in.Ended != nil && in.Ended.Line == ev.Line {
			w.seen[in] = now
		}
	})
	if len(w.seen) > w.keep {
		w.pruneLocked(now, w.keep*3/4)
	}
}

// Findings are the open log findings at now; incidents quiet for longer
// than their signature's quiet period, or resolved, are forgotten.
func (w *Watch) Findings(host string, now time.Time) []finding.Finding {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pruneLocked(now, w.keep)
	var out []finding.Finding
	for _, in := range w.agg.Incidents() {
		f := in.Finding(host)
		f.Subject = "log " + f.Subject
		f.Key = finding.MakeKey(f.Mode, f.Subject)
		if last := w.seen[in]; !last.IsZero() {
			f.Evidence.Notes = append(f.Evidence.Notes, "Last such line "+finding.HumanDuration(now.Sub(last))+
				" ago; this resolves after "+finding.HumanDuration(w.quietOf(in.Sig))+" without one.")
			if f.Since == nil || f.Since.IsZero() {
				first := last
				f.Since = &first
			}
		}
		out = append(out, f)
	}
	return out
}

// pruneLocked forgets resolved and quiet incidents, then the oldest ones
// beyond keep.
func (w *Watch) pruneLocked(now time.Time, keep int) {
	type aged struct {
		in   *Incident
		last time.Time
	}
	var live []aged
	w.agg.Each(func(in *Incident) {
		last := w.seen[in]
		if in.Ended != nil || now.Sub(last) > w.quietOf(in.Sig) {
			return
		}
		live = append(live, aged{in, last})
	})
	sort.Slice(live, func(i, j int) bool { return live[i].last.After(live[j].last) })
	if len(live) > keep {
		live = live[:keep]
	}
	keepSet := map[*Incident]bool{}
	seen := map[*Incident]time.Time{}
	for _, a := range live {
		keepSet[a.in] = true
		seen[a.in] = a.last
	}
	w.agg.Prune(func(in *Incident) bool { return keepSet[in] })
	w.seen = seen
}

func (w *Watch) quietOf(s *Signature) time.Duration {
	if s.Quiet > 0 {
		return time.Duration(s.Quiet)
	}
	return w.quiet
}
