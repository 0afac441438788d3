package tower

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/wire"
)

// Incidents group alerts that belong together: those of one host, or of
// hosts linked by a declared dependency, that fire while an incident is
// open or within incidentGap of its last activity. Every alert event,
// finding and matched log line of the hosts involved makes its timeline.

const (
	incidentGap = 30 * time.Minute
	// timelineMargin widens the window of findings and log lines before the
	// first alert and after the last: the causes come first.
	timelineMargin = 15 * time.Minute
)

// Incident is a group of related alerts.
type Incident struct {
	ID       int64     `json:"id"`
	Title    string    `json:"title"`
	Opened   time.Time `json:"opened"`
	Closed   time.Time `json:"closed,omitzero"`
	Hosts    []string  `json:"hosts"`
	Alerts   []string  `json:"alerts"`
	Notes    []Note    `json:"notes,omitempty"`
	Last     time.Time `json:"last_activity"`
	Severity string    `json:"severity"`
	// Began is when the impact began: the earliest time one of its alerts
	// went bad (a silent host's last report), before Opened (it fired).
	Began time.Time `json:"began,omitzero"`
	// BadSince is, per alert, when it went bad as it fired in this
	// incident (the alert's live state moves on with later outages).
	BadSince map[string]time.Time `json:"bad_since,omitempty"`
}

// ImpactStart is when the incident's impact began, as far as known.
func (in *Incident) ImpactStart() time.Time {
	if !in.Began.IsZero() && in.Began.Before(in.Opened) {
		return in.Began
	}
	return in.Opened
}

// Note is a person's remark on an incident.
type Note struct {
	At   time.Time `json:"at"`
	By   string    `json:"by"`
	Text string    `json:"text"`
}

// Event is one line of an incident's timeline.
type Event struct {
	At   time.Time `json:"at"`
	Host string    `json:"host"`
	Kind string    `json:"kind"` // alert, finding, log, note
	Text string    `json:"text"`
}

func (t *Tower) loadIncidents() error {
	ins, err := t.store.LoadOpenIncidents(context.Background())
	for _, in := range ins {
		t.incidents[in.ID] = &in
	}
	return err
}

// related reports whether two hosts are the same or linked by a declared
// dependency.
func related(a, b string, cfg *Config) bool {
	if a == b {
		return true
	}
	for _, d := range cfg.Dependencies {
		for _, dep := range d.Dependents {
			if d.Host == a && glob(dep, b) || d.Host == b && glob(dep, a) {
				return true
			}
		}
	}
	return false
}

// incident is the evaluation's copy of the incident id, to change (nil:
// none is open).
func (e *evaluation) incident(id int64) *Incident {
	if in := e.incidents[id]; in != nil {
		return in
	}
	base := e.st.incidents[id]
	if base == nil {
		return nil
	}
	cp := *base
	cp.Hosts, cp.Alerts, cp.Notes = slices.Clone(base.Hosts), slices.Clone(base.Alerts), slices.Clone(base.Notes)
	cp.BadSince = maps.Clone(base.BadSince)
	e.incidents[id] = &cp
	return &cp
}

// incidentFor finds or opens the incident a firing alert belongs to; the
// evaluation's changes carry it to the store.
func (e *evaluation) incidentFor(a *Alert) *Incident {
	match := func(in *Incident) bool {
		if !in.Closed.IsZero() || e.now.Sub(in.Last) > incidentGap {
			return false
		}
		for _, h := range in.Hosts {
			if related(h, a.Host, e.cfg) {
				return true
			}
		}
		return false
	}
	for id, in := range e.st.incidents {
		if own := e.incidents[id]; own != nil {
			in = own
		}
		if match(in) {
			return e.incident(id)
		}
	}
	for id, in := range e.incidents {
		if e.st.incidents[id] == nil && match(in) {
			return in
		}
	}
	e.nextIncident++
	in := &Incident{ID: e.nextIncident, Title: a.Title, Opened: e.now, Last: e.now, Severity: a.Severity}
	e.incidents[in.ID] = in
	return in
}

// recordIncidents attaches an alert's event to its incident (opening one
// when it fires), which is written with the alert's change.
func (e *evaluation) recordIncidents(a *Alert, ev alerting.Event) (touched *Incident) {
	now := e.now
	switch ev {
	case alerting.Fire, alerting.FlapStart:
		in := e.incidentFor(a)
		if !slices.Contains(in.Hosts, a.Host) {
			in.Hosts = append(in.Hosts, a.Host)
		}
		if !slices.Contains(in.Alerts, a.Key) {
			in.Alerts = append(in.Alerts, a.Key)
		}
		if bad := a.State.BadSince; !bad.IsZero() {
			if in.BadSince == nil {
				in.BadSince = map[string]time.Time{}
			}
			if _, ok := in.BadSince[a.Key]; !ok {
				in.BadSince[a.Key] = bad
			}
			if in.Began.IsZero() || bad.Before(in.Began) {
				in.Began = bad
			}
		}
		if sevRank(a.Severity) > sevRank(in.Severity) {
			in.Severity = a.Severity
			in.Title = a.Title
		}
		in.Last = now
		a.Incident = in.ID
		return in
	case alerting.Resolve, alerting.FlapEnd, alerting.Cancelled:
		if cur := e.incidents[a.Incident]; cur == nil {
			if base := e.st.incidents[a.Incident]; base == nil || !base.Closed.IsZero() {
				return nil
			}
		} else if !cur.Closed.IsZero() {
			return nil
		}
		in := e.incident(a.Incident)
		in.Last = now
		open := false
		for _, k := range in.Alerts {
			if o := e.alert(k); o != nil && o.Key != a.Key && (o.State.Status == alerting.Firing || o.State.Flapping) {
				open = true
			}
		}
		if !open {
			in.Closed = now
		}
		return in
	}
	return nil
}

func sevRank(s string) int {
	return map[string]int{"info": 1, "low": 2, "medium": 3, "high": 4, "catastrophic": 5}[s]
}

// incidentLog reads incidents: the open ones from memState, the others
// and every timeline from the store. The HTTP side and Tower's exported
// methods share it.
type incidentLog struct {
	store Store
	state stateView
	now   func() time.Time
	// logs is the log store, for the lines of every host in postmortems.
	logs func(context.Context) (logstore.Store, error)
}

// Timeline assembles an incident's events: alert changes, findings opened
// and resolved, matched log lines of every host involved, and notes.
func (t *Tower) Timeline(ctx context.Context, id int64) (*Incident, []Event, error) {
	return t.incLog.timeline(ctx, id)
}

// Postmortem renders an incident as a markdown postmortem draft.
func (t *Tower) Postmortem(ctx context.Context, id int64) (string, error) {
	return t.incLog.postmortem(ctx, id)
}

// Incidents lists incidents, newest first.
func (t *Tower) Incidents(ctx context.Context, limit int) ([]Incident, error) {
	return t.incLog.list(ctx, limit)
}

func (l *incidentLog) timeline(ctx context.Context, id int64) (*Incident, []Event, error) {
	in, err := l.incident(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	end := in.Closed
	if end.IsZero() {
		end = l.now()
	}
	from, to := in.ImpactStart().Add(-timelineMargin), end.Add(timelineMargin)
	var evs []Event
	alertEvs, err := l.store.IncidentEvents(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	for _, ae := range alertEvs {
		evs = append(evs, Event{At: ae.At, Host: ae.Host, Kind: "alert", Text: rewordResolution(ae.Key, ae.Text)})
	}
	for _, h := range in.Hosts {
		spans, err := l.store.FindingsBetween(ctx, h, from, to)
		if err != nil {
			return nil, nil, err
		}
		for _, f := range spans {
			if o := f.Opened; !o.Before(from) && !o.After(to) {
				evs = append(evs, Event{At: o, Host: h, Kind: "finding", Text: fmt.Sprintf("finding (%s): %s", f.Severity, f.Summary)})
			}
			if r := f.Resolved; !r.IsZero() && !r.Before(from) && !r.After(to) {
				evs = append(evs, Event{At: r, Host: h, Kind: "finding", Text: "finding resolved: " + f.Summary})
			}
		}
		logs, err := l.store.RecordsBetween(ctx, h, wire.KindLog, from, to)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range logs {
			var l wire.Log
			if json.Unmarshal(r.Data, &l) == nil {
				evs = append(evs, Event{At: r.Time, Host: h, Kind: "log", Text: fmt.Sprintf("%s: %s", l.Source, l.Line)})
			}
		}
	}
	for _, n := range in.Notes {
		evs = append(evs, Event{At: n.At, Host: "", Kind: "note", Text: n.By + ": " + n.Text})
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
	return in, evs, nil
}

// rewordResolution words a resolution that an earlier version recorded
// in the problem's words ("RESOLVED: Host c is silent after 8s") as the
// tower words it now ("Host c is back after 8s").
func rewordResolution(key, text string) string {
	rest, ok := strings.CutPrefix(text, "RESOLVED: ")
	i := strings.LastIndex(rest, " after ")
	if !ok || i < 0 {
		return text
	}
	title, after := rest[:i], rest[i+len(" after "):]
	kind, name, _ := strings.Cut(key, "/")
	return resolutionText(&Alert{Key: key, Kind: kind, Host: name, Title: title}, after)
}

func (l *incidentLog) incident(ctx context.Context, id int64) (*Incident, error) {
	var live *Incident
	l.state.read(func(s *memState) {
		if in := s.incidents[id]; in != nil {
			cp := *in
			live = &cp
		}
	})
	if live != nil {
		return live, nil
	}
	in, err := l.store.LoadIncident(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("no incident %d", id)
	}
	if err != nil {
		return nil, err
	}
	return &in, nil
}

// AddNote records a person's note on an incident.
func (t *Tower) AddNote(ctx context.Context, id int64, by, text string) error {
	if by == "" || strings.TrimSpace(text) == "" {
		return errors.New("a note needs by and text")
	}
	in, err := t.incLog.incident(ctx, id)
	if err != nil {
		return err
	}
	t.persistMu.Lock()
	defer t.persistMu.Unlock()
	t.mu.Lock()
	if live := t.incidents[id]; live != nil {
		in = live
	}
	in.Notes = append(in.Notes, Note{At: t.now(), By: by, Text: text})
	cp := *in
	t.mu.Unlock()
	return t.store.SaveIncident(ctx, cp)
}

func (l *incidentLog) postmortem(ctx context.Context, id int64) (string, error) {
	in, evs, err := l.timeline(ctx, id)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Incident %d: %s\n\n", in.ID, in.Title)
	end := in.Closed
	state := "resolved"
	if end.IsZero() {
		end, state = l.now(), "still open"
	}
	// The impact starts when the first alert went bad, not when it fired.
	start, fired := in.ImpactStart(), in.Opened
	var what []string
	l.state.read(func(s *memState) {
		for _, k := range in.Alerts {
			if a := s.alerts[k]; a != nil {
				bad, ok := in.BadSince[k]
				if !ok {
					bad = a.State.BadSince // an incident recorded before bad_since was kept
				}
				line := fmt.Sprintf("- **%s** %s — bad since %s", strings.ToUpper(a.Severity), a.Title, bad.UTC().Format("2006-01-02 15:04:05 MST"))
				if a.Suppressed != "" {
					line += " (not sent: " + a.Suppressed + ")"
				}
				what = append(what, line)
			}
		}
	})
	fmt.Fprintf(&b, "*Draft written by hinomi from the tower's records. All times UTC.*\n\n## Summary\n\n")
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| Status | %s |\n", state)
	fmt.Fprintf(&b, "| Hosts | %s |\n", strings.Join(in.Hosts, ", "))
	fmt.Fprintf(&b, "| Impact began | %s |\n", start.UTC().Format("2006-01-02 15:04:05"))
	fmt.Fprintf(&b, "| Detected (first alert fired) | %s |\n", fired.UTC().Format("2006-01-02 15:04:05"))
	if state == "resolved" {
		fmt.Fprintf(&b, "| Resolved | %s |\n", end.UTC().Format("2006-01-02 15:04:05"))
	}
	fmt.Fprintf(&b, "| Impact duration | %s |\n", finding.HumanDuration(end.Sub(start)))
	fmt.Fprintf(&b, "| Detection delay | %s |\n\n", finding.HumanDuration(fired.Sub(start)))
	fmt.Fprintf(&b, "## What fired\n\n%s\n\n## Timeline\n\n| Time (UTC) | Host | What happened |\n|---|---|---|\n", strings.Join(what, "\n"))
	for _, e := range evs {
		text := strings.ReplaceAll(e.Text, "|", "\\|")
		host := e.Host
		if host == "" {
			host = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", e.At.UTC().Format("2006-01-02 15:04:05"), host, text)
	}
	b.WriteString("\n")
	postmortemLogs(ctx, &b, l.logs, start, end)
	fmt.Fprintf(&b, "## Root cause\n\n_To be written._\n\n## What we change\n\n_To be written._\n")
	return b.String(), nil
}

func (l *incidentLog) list(ctx context.Context, limit int) ([]Incident, error) {
	out, err := l.store.LoadIncidents(ctx, limit)
	l.state.read(func(s *memState) {
		for i := range out {
			if live := s.incidents[out[i].ID]; live != nil {
				out[i] = *live
			}
		}
	})
	return out, err
}
