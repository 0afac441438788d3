package agent

import (
	"sort"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/signatures"
)

// DefaultQuiet is how long a log signature must stay quiet before the
// finding its lines raised resolves, when the signature sets no quiet of
// its own.
const DefaultQuiet = 30 * time.Minute

// maxLogIncidents bounds what the log watch remembers: a host that logs
// thousands of distinct distress lines keeps the latest ones.
const maxLogIncidents = 256

// logWatch turns the distress lines the agent reads (kernel, journal,
// files) into findings like any other: repeats of one signature on one
// subject are one finding with a count and its first and last line; it
// stays open while the lines keep coming and resolves after the
// signature's quiet period, or when a resolving line arrives.
type logWatch struct {
	mu   sync.Mutex
	agg  *signatures.Aggregator
	seen map[*signatures.Incident]time.Time // when its last line arrived
}

func newLogWatch() *logWatch {
	return &logWatch{agg: signatures.NewAggregator(), seen: map[*signatures.Incident]time.Time{}}
}

// add takes one matched line as it arrives.
func (w *logWatch) add(ev signatures.Event, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.agg.Add(ev)
	w.agg.Each(func(in *signatures.Incident) {
		if in.Last.Line == ev.Line && in.Sig == ev.Sig || in.Ended != nil && in.Ended.Line == ev.Line {
			w.seen[in] = now
		}
	})
	if len(w.seen) > maxLogIncidents {
		w.pruneLocked(now, maxLogIncidents*3/4)
	}
}

// findings are the open log findings at now; incidents quiet for longer
// than their signature's quiet period, or resolved, are forgotten.
func (w *logWatch) findings(host string, now time.Time) []finding.Finding {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pruneLocked(now, maxLogIncidents)
	var out []finding.Finding
	for _, in := range w.agg.Incidents() {
		f := in.Finding(host)
		f.Subject = "log " + f.Subject
		f.Key = finding.MakeKey(f.Mode, f.Subject)
		if last := w.seen[in]; !last.IsZero() {
			f.Evidence.Notes = append(f.Evidence.Notes, "Last such line "+finding.HumanDuration(now.Sub(last))+
				" ago; this resolves after "+finding.HumanDuration(quiet(in.Sig))+" without one.")
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
func (w *logWatch) pruneLocked(now time.Time, keep int) {
	type aged struct {
		in   *signatures.Incident
		last time.Time
	}
	var live []aged
	w.agg.Each(func(in *signatures.Incident) {
		last := w.seen[in]
		if in.Ended != nil || now.Sub(last) > quiet(in.Sig) {
			return
		}
		live = append(live, aged{in, last})
	})
	sort.Slice(live, func(i, j int) bool { return live[i].last.After(live[j].last) })
	if len(live) > keep {
		live = live[:keep]
	}
	keepSet := map[*signatures.Incident]bool{}
	seen := map[*signatures.Incident]time.Time{}
	for _, a := range live {
		keepSet[a.in] = true
		seen[a.in] = a.last
	}
	w.agg.Prune(func(in *signatures.Incident) bool { return keepSet[in] })
	w.seen = seen
}

func quiet(s *signatures.Signature) time.Duration {
	if s.Quiet > 0 {
		return time.Duration(s.Quiet)
	}
	return DefaultQuiet
}
