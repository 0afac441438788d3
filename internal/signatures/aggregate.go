package signatures

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// Incident is what repeats of one signature on one subject add up to: the
// count, the first and last occurrence, and, for signatures that another
// one resolves (nfs "not responding" … "OK"), the end of the outage.
type Incident struct {
	Sig    *Signature
	Fields map[string]string
	Count  int
	First  Event
	Last   Event
	// Ended is the last resolving event, nil while open.
	Ended *Event
	// Resolutions counts how often it was resolved and came back: a link
	// that flaps is one incident, not one per flap.
	Resolutions int
	// Completion is the line that completed the first event (see
	// Signature.Completes), nil when none did.
	Completion *Event
}

// Duration is from the first occurrence to the resolution (or the last
// occurrence while still open); zero when the times are unknown.
func (in *Incident) Duration() time.Duration {
	end := in.Last
	if in.Ended != nil {
		end = *in.Ended
	}
	return span(in.First, end)
}

// span is the time between two events, when both carry the same kind of
// time (absolute, or since the same boot); zero otherwise.
func span(a, b Event) time.Duration {
	switch {
	case !a.Entry.Time.IsZero() && !b.Entry.Time.IsZero():
		if d := b.Entry.Time.Sub(a.Entry.Time); d > 0 {
			return d
		}
	case a.Entry.Time.IsZero() && b.Entry.Time.IsZero() && a.Entry.HasUptime && b.Entry.HasUptime && a.Input == b.Input:
		if d := b.Entry.Uptime - a.Entry.Uptime; d > 0 {
			return d
		}
	}
	return 0
}

// Subject names what the incident is about, from its grouping fields.
func (in *Incident) Subject() string {
	var parts []string
	for _, g := range in.Sig.GroupBy {
		if v := in.Fields[g]; v != "" {
			parts = append(parts, g+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// Aggregator collects events into incidents.
type Aggregator struct {
	byKey map[string]*Incident
	all   []*Incident
	// excused[host+"\x00"+sigID] holds the cluster nodes whose events of
	// that signature are expected (see Signature.Excuses).
	excused map[string]map[string]bool
}

// NewAggregator returns an empty aggregator.
func NewAggregator() *Aggregator {
	return &Aggregator{byKey: map[string]*Incident{}, excused: map[string]map[string]bool{}}
}

// nodesOf are the cluster node IDs an event is about.
func nodesOf(ev Event) []string {
	if n := ev.Fields["node"]; n != "" {
		return strings.Fields(n)
	}
	if n := ev.Fields["host_id"]; n != "" {
		return []string{n}
	}
	return nil
}

// excuse records the nodes of a planned event; isExcused says whether an
// event is about nodes that were all announced that way.
func (a *Aggregator) excuse(ev Event) {
	for _, id := range ev.Sig.Excuses {
		k := ev.Entry.Host + "\x00" + id
		if a.excused[k] == nil {
			a.excused[k] = map[string]bool{}
		}
		for _, n := range nodesOf(ev) {
			a.excused[k][n] = true
		}
	}
}

func (a *Aggregator) isExcused(ev Event) bool {
	set := a.excused[ev.Entry.Host+"\x00"+ev.Sig.ID]
	nodes := nodesOf(ev)
	if len(set) == 0 || len(nodes) == 0 {
		return false
	}
	for _, n := range nodes {
		if !set[n] {
			return false
		}
	}
	return true
}

func groupKey(id string, groupBy []string, fields map[string]string) string {
	var b strings.Builder
	b.WriteString(id)
	for _, g := range groupBy {
		b.WriteByte(0)
		b.WriteString(fields[g])
	}
	return b.String()
}

// Add takes the next event (events should come in time order).
func (a *Aggregator) Add(ev Event) {
	if len(ev.Sig.Excuses) > 0 {
		a.excuse(ev)
		return
	}
	if a.isExcused(ev) {
		return
	}
	if target := ev.Sig.Resolves; target != "" {
		// The resolved signature's group_by names the fields to compare.
		for _, in := range a.all {
			if in.Ended == nil && in.Sig.ID == target && in.First.Entry.Host == ev.Entry.Host &&
				groupKey(target, in.Sig.GroupBy, in.Fields) == groupKey(target, in.Sig.GroupBy, ev.Fields) {
				e := ev
				in.Ended = &e
				in.Resolutions++
			}
		}
		return
	}
	// Lines from different hosts (a syslog server's files, pasted logs)
	// are different incidents.
	if ev.Sig.Completes != "" && (a.complete(ev) || ev.Sig.Companion) {
		return
	}
	k := groupKey(ev.Sig.ID, ev.Sig.GroupBy, ev.Fields) + "\x00" + ev.Entry.Host
	in := a.byKey[k]
	if in == nil {
		in = &Incident{Sig: ev.Sig, Fields: ev.Fields, First: ev}
		a.byKey[k] = in
		a.all = append(a.all, in)
	}
	in.Ended = nil // it is back, if it had been resolved
	in.Count++
	in.Last = ev
}

// Each calls f for every incident, those below their signature's
// MinCount included.
func (a *Aggregator) Each(f func(*Incident)) {
	for _, in := range a.all {
		f(in)
	}
}

// Prune forgets the incidents keep refuses, for a reader that never
// stops (the agent's log watch).
func (a *Aggregator) Prune(keep func(*Incident) bool) {
	all := a.all[:0]
	for _, in := range a.all {
		if keep(in) {
			all = append(all, in)
		}
	}
	clear(a.all[len(all):])
	a.all = all
	for k, in := range a.byKey {
		if !keep(in) {
			delete(a.byKey, k)
		}
	}
}

// complete joins ev to the latest event it completes, if any.
func (a *Aggregator) complete(ev Event) bool {
	for i := len(a.all) - 1; i >= 0; i-- {
		in := a.all[i]
		if in.Sig.ID != ev.Sig.Completes || in.First.Entry.Host != ev.Entry.Host {
			continue
		}
		for _, f := range ev.Sig.Same {
			if in.Last.Fields[f] != ev.Fields[f] {
				return false
			}
		}
		if in.Count == 1 && in.Completion == nil {
			e := ev
			in.Completion = &e
		}
		return true
	}
	return false
}

// Host is the host the incident's lines name, empty when they name none
// (kmsg, dmesg, a container's log).
func (in *Incident) Host() string { return in.First.Entry.Host }

// Incidents returns every incident in order of first occurrence, but
// for those with fewer occurrences than their signature's MinCount.
func (a *Aggregator) Incidents() []*Incident {
	var out []*Incident
	for _, in := range a.all {
		if in.Count >= in.Sig.MinCount {
			out = append(out, in)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ti, tj := out[i].First.When(), out[j].First.When()
		if ti.IsZero() != tj.IsZero() {
			return !ti.IsZero()
		}
		return ti.Before(tj)
	})
	return out
}

// Finding turns an incident into a finding for host, with the lines that
// show it (first, last, and the first one's trace).
func (in *Incident) Finding(host string) finding.Finding {
	sig := in.Sig
	subject := sig.ID
	if s := in.Subject(); s != "" {
		subject += " " + s
	}
	summary := sig.Title
	if s := in.Subject(); s != "" {
		summary += " (" + s + ")"
	}
	if in.Count > 1 {
		summary += fmt.Sprintf(": %d times", in.Count)
		if d := span(in.First, in.Last); d > 0 {
			summary += fmt.Sprintf(" over %s (%.1f per minute)", roundDur(d), float64(in.Count)/d.Minutes())
		}
	}
	switch {
	case in.Ended != nil && in.Resolutions > 1:
		summary += fmt.Sprintf("; came back %d times, resolved at the end", in.Resolutions)
	case in.Ended != nil && in.Duration() > 0:
		summary += fmt.Sprintf("; resolved after %s", roundDur(in.Duration()))
	case in.Ended != nil:
		summary += "; resolved"
	case hasResolver(sig):
		summary += "; not resolved in this log"
	}
	lines := []finding.Line{lineOf(in.First)}
	if in.Completion != nil {
		lines = append(lines, lineOf(*in.Completion))
	}
	for _, t := range in.First.Trace {
		lines = append(lines, finding.Line{Source: in.First.Input, Text: t})
	}
	if in.Count > 1 {
		lines = append(lines, lineOf(in.Last))
	}
	if in.Ended != nil {
		lines = append(lines, lineOf(*in.Ended))
	}
	vars := map[string]string{"line": in.First.Entry.Message}
	for k, v := range sig.Vars {
		vars[k] = v
	}
	for k, v := range in.Fields {
		vars[k] = v
	}
	f := finding.Finding{
		Key:      finding.MakeKey(sig.Mode, subject),
		Mode:     sig.Mode,
		Severity: sig.Severity,
		Host:     host,
		Subject:  subject,
		Summary:  summary + ".",
		Evidence: finding.Evidence{
			Figures: []finding.Figure{{Name: "occurrences", Value: float64(in.Count), Source: in.First.Input}},
			Lines:   lines,
			Vars:    vars,
		},
		Runbook: sig.Mode,
	}
	if t := in.First.Entry.Time; !t.IsZero() {
		f.Since = &t
	}
	if d := in.Duration(); d > 0 {
		f.Evidence.Figures = append(f.Evidence.Figures, finding.Figure{Name: "duration", Value: d.Seconds(), Unit: "s"})
	}
	return f
}

// hasResolver is set on signatures some other signature resolves; it is
// filled by New.
func hasResolver(s *Signature) bool { return s.resolvedBy }

func lineOf(ev Event) finding.Line {
	l := finding.Line{Source: fmt.Sprintf("%s:%d", ev.Input, ev.LineNo), Text: ev.Line}
	if t := ev.Entry.Time; !t.IsZero() {
		l.Time = &t
	}
	return l
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d > time.Hour:
		return d.Round(time.Minute)
	case d > time.Minute:
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
