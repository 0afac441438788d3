package tower

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/notify"
)

// Alert evaluation is a function of state and time: evaluate reads a
// memState (which it never changes), what this tower knows of its peers,
// the configuration and a time, and returns an evaluation: the alerts it
// stepped, the incidents they opened or touched, and the writes for the
// store. Tower.Evaluate runs it under t.mu, writes its changes with one
// Store.SaveAlerts, and applies it to memState once the store accepted
// them (apply).

// evaluation is one evaluation cycle: what it read (st, peers, cfg, now)
// and what it changed, kept apart from st until it is applied.
type evaluation struct {
	st    *memState // read only
	peers peerView
	cfg   *Config
	now   time.Time

	// alerts are the alerts this evaluation touched, as it leaves them
	// (copies: st's stay as they were); incidents the same.
	alerts       map[string]*Alert
	incidents    map[int64]*Incident
	nextIncident int64
	// expecting are the configured agents never heard from that this
	// evaluation began expecting; dropProbes the results of probes a
	// reload removed; pushDetail each push monitor's latest judgement.
	expecting  map[string]time.Time
	dropProbes []string
	pushDetail map[string][]string
	// loss are the hosts' loss spells this evaluation moved on, each with
	// the spell it read: applied only if ingest did not change it since.
	loss map[string]lossUpdate

	// changes are the alert changes to write, in order.
	changes []alertChange
}

// alertChange is one alert's change: what the store writes, and the
// event that caused it (for the log and the metrics).
type alertChange struct {
	AlertChange
	event alerting.Event
}

type lossUpdate struct{ was, now lossSpell }

// peerView is what evaluation reads of the peers: when each last answered
// and why it says it is degraded.
type peerView struct {
	lastOK   map[string]time.Time
	degraded map[string]string
}

// signal is one observation for the state machine.
type signal struct {
	alert *Alert
	obs   alerting.Observation
	rule  alerting.Rule
}

// Evaluate steps every signal to now and persists and notifies what
// changed. Tests call it directly with their own time.
func (t *Tower) Evaluate(ctx context.Context, now time.Time) error {
	t.persistMu.Lock()
	defer t.persistMu.Unlock()
	cfg := t.cfg.Load()
	peers := t.peers.view()
	t.mu.Lock()
	e := evaluate(&t.memState, peers, cfg, now)
	t.mu.Unlock()
	t.lastEval.Store(now.UnixNano())
	if len(e.changes) == 0 {
		t.apply(e, true)
		t.noteUnwritten(nil)
		return nil
	}
	if err := t.store.SaveAlerts(ctx, now, e.writes()); err != nil {
		// Nothing was written: the alerts stay as they were, so that the
		// next evaluation decides (and notifies) again.
		t.apply(e, false)
		if t.store.StorageError(err) {
			// Judged all the same: the degraded page names them.
			var judged []Alert
			for _, c := range e.changes {
				judged = append(judged, c.Alert)
			}
			t.noteUnwritten(judged)
		}
		return err
	}
	t.apply(e, true)
	t.noteUnwritten(nil)
	for _, c := range e.changes {
		if c.event != alerting.None {
			t.log.Info("alert", "key", c.Alert.Key, "event", string(c.event), "status", string(c.Alert.State.Status), "suppressed", c.Alert.Suppressed)
			t.metrics.transitions.WithLabelValues(c.Alert.Kind, string(c.event)).Inc()
		}
	}
	t.out.wake()
	return nil
}

// apply makes an evaluation memState's. With written false (the store
// refused its changes) the changed alerts and their incidents stay as
// they were; what the store does not keep (alerts that only had their
// wording refreshed, agents expected, probes removed, loss spells, push
// judgements) is applied either way. t.mu is not held.
func (t *Tower) apply(e *evaluation, written bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := map[string]bool{}
	for _, c := range e.changes {
		changed[c.Alert.Key] = true
	}
	for key, a := range e.alerts {
		if written || !changed[key] {
			t.alerts[key] = a
		}
	}
	if written {
		maps.Copy(t.incidents, e.incidents)
		t.nextIncident = max(t.nextIncident, e.nextIncident)
	}
	if len(e.expecting) > 0 && t.expecting == nil {
		t.expecting = map[string]time.Time{}
	}
	for name, since := range e.expecting {
		if _, ok := t.expecting[name]; !ok {
			t.expecting[name] = since
		}
	}
	for _, name := range e.dropProbes {
		delete(t.probes, name)
	}
	if len(e.pushDetail) > 0 && t.pushDetail == nil {
		t.pushDetail = map[string][]string{}
	}
	maps.Copy(t.pushDetail, e.pushDetail)
	for name, u := range e.loss {
		if h := t.hosts[name]; h != nil && h.loss == u.was {
			h.loss = u.now
		}
	}
}

// writes are the evaluation's changes as the store takes them.
func (e *evaluation) writes() []AlertChange {
	out := make([]AlertChange, len(e.changes))
	for i, c := range e.changes {
		out[i] = c.AlertChange
	}
	return out
}

// evaluate steps every signal in st to now under cfg. It changes nothing
// it reads: what it changed is in the evaluation it returns.
func evaluate(st *memState, peers peerView, cfg *Config, now time.Time) *evaluation {
	e := &evaluation{st: st, peers: peers, cfg: cfg, now: now,
		alerts: make(map[string]*Alert, len(st.hosts)+len(cfg.Probes)+len(cfg.Peers)+len(cfg.Pushes)), incidents: map[int64]*Incident{}, nextIncident: st.nextIncident,
		expecting: map[string]time.Time{}, pushDetail: map[string][]string{}, loss: map[string]lossUpdate{}}
	minSev, _ := finding.ParseSeverity(cfg.Alerts.MinSeverity)
	flap := alerting.FlapRule{Window: time.Duration(cfg.Alerts.Flap.Window), Spells: cfg.Alerts.Flap.Spells, Stable: time.Duration(cfg.Alerts.Flap.Stable)}
	rule := alerting.Rule{For: time.Duration(cfg.Alerts.For), RepeatInterval: time.Duration(cfg.Alerts.RepeatInterval), Flap: flap}

	var sigs []signal
	for _, a := range cfg.Agents {
		key := "heartbeat/" + a.Name
		h := st.hosts[a.Name]
		if h == nil {
			// Configured but never heard from since this tower began
			// expecting it (start or reload): after a grace that is a
			// silent host too, or a host nobody watches goes unnoticed.
			since, ok := st.expecting[a.Name]
			if !ok || (cfg.Alerts.NeverReported != nil && !*cfg.Alerts.NeverReported) {
				if !ok {
					e.expecting[a.Name] = now
				}
				continue
			}
			if old := e.alert(key); (old == nil || old.State.Status != alerting.Firing) && now.Sub(since) <= time.Duration(a.Grace) {
				continue
			}
			al := e.alertFor(key, a.Name, "heartbeat", "Host "+a.Name+" is silent", "catastrophic", "FM-A1")
			al.Summary = fmt.Sprintf("%s has never reported since this tower began expecting it at %s (grace %s): is its agent running, with --name %s and its token?",
				a.Name, since.UTC().Format("2006-01-02 15:04:05 MST"), time.Duration(a.Grace), a.Name)
			sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: true, BadSince: since},
				rule: alerting.Rule{RepeatInterval: rule.RepeatInterval, Flap: flap}})
			continue
		}
		al := e.alertFor(key, a.Name, "heartbeat", "Host "+a.Name+" is silent", "catastrophic", "FM-A1")
		judged := e.judgedSince(h.LastSeen, al)
		silent := now.Sub(judged) > time.Duration(a.Grace)
		al.Summary = fmt.Sprintf("No report from %s since %s (it reports every %s; grace %s).",
			a.Name, h.LastSeen.UTC().Format("2006-01-02 15:04:05 MST"), orDefault(h.Interval, "?"), time.Duration(a.Grace))
		if !judged.Equal(h.LastSeen) && al.State.Status != alerting.Firing {
			al.Summary += fmt.Sprintf(" This tower was not watching until %s, so it gave %s its grace from then.",
				judged.UTC().Format("2006-01-02 15:04:05 MST"), a.Name)
		}
		badSince := h.LastSeen
		if badSince.After(now) {
			badSince = judged // dated on the time line before the clock went back
		}
		sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: silent, BadSince: badSince},
			rule: alerting.Rule{RepeatInterval: rule.RepeatInterval, Flap: flap}})
	}
	sigs = append(sigs, e.peerSignals(flap)...)
	sigs = append(sigs, e.lossSignals(rule)...)
	sigs = append(sigs, e.pushSignals(rule)...)
	configured := map[string]bool{}
	for _, a := range cfg.Agents {
		configured["heartbeat/"+a.Name] = true
	}
	for _, p := range cfg.Probes {
		configured["probe/"+p.Name] = true
	}
	for _, p := range cfg.Peers {
		configured["peer/"+p.Name] = true
	}
	for _, p := range cfg.Pushes {
		configured["push/"+p.Name] = true
	}
	for name := range st.probes {
		if !configured["probe/"+name] {
			e.dropProbes = append(e.dropProbes, name) // removed by a reload
		}
	}
	// Alerts made in this evaluation are all configured and seen: the
	// stored ones are the ones to look at.
	for key, al := range st.alerts {
		// Removed by a reload: what still fires resolves.
		if (al.Kind == "heartbeat" || al.Kind == "probe" || al.Kind == "peer" || al.Kind == "push") && !configured[key] &&
			(al.State.Status == alerting.Firing || al.State.Status == alerting.Pending) {
			sigs = append(sigs, signal{alert: e.alert(key), obs: alerting.Observation{Bad: false}, rule: rule})
		}
	}
	thresholds := map[string]ProbeConfig{}
	for _, p := range cfg.Probes {
		thresholds[p.Name] = p
	}
	for name, r := range st.probes {
		if !configured["probe/"+name] {
			continue
		}
		host := r.Host
		if host == "" {
			host = "service:" + name
		}
		sev := "high"
		al := e.alertFor("probe/"+name, host, "probe", "Service "+name+" is down", sev, "FM-A3", "group", r.Group)
		al.Summary = "The probe of " + name + " fails."
		if r.Message != "" {
			al.Summary = "The probe of " + name + " fails: " + r.Message
		}
		// Opens after failure_threshold failed runs in a row, from the
		// first of them; resolves after success_threshold good ones.
		ps, pc := st.probeStreaks[name], thresholds[name]
		wasBad := al.State.Status == alerting.Firing || al.State.Status == alerting.Pending
		bad := ps.down >= max(pc.FailureThreshold, 1) || wasBad && ps.good < max(pc.SuccessThreshold, 1)
		since := ps.downSince
		if since.IsZero() {
			since = st.probeDownSince(name, r)
		}
		sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: bad, BadSince: since}, rule: rule})
	}
	seen := map[string]bool{}
	clustered := clusterFindings{}
	for host, fs := range st.findings {
		for _, f := range fs {
			if f.Finding.Severity < minSev {
				continue
			}
			if f.Finding.Evidence.Vars["cluster"] != "" {
				clustered.add(f) // one alert for the cluster (cluster.go)
				continue
			}
			key := "finding/" + host + "/" + f.Finding.Key
			seen[key] = true
			al := e.alertAs(key, host, "finding", host+": "+f.Finding.Summary, f.Finding.Severity.String(), f.Finding.Runbook, f.Finding.Summary)
			since := f.Opened
			if f.Finding.Since != nil && f.Finding.Since.Before(since) {
				since = *f.Finding.Since
			}
			sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: true, BadSince: since}, rule: rule})
		}
	}
	sigs = append(sigs, e.clusterSignals(clustered, seen, rule)...)
	for key, al := range st.alerts {
		if al.Kind == "finding" && !seen[key] && (al.State.Status == alerting.Firing || al.State.Status == alerting.Pending) {
			sigs = append(sigs, signal{alert: e.alert(key), obs: alerting.Observation{Bad: false}, rule: rule})
		}
	}
	depthOrder(sigs, cfg)
	heldBefore := heldBy(func(f func(*Alert)) {
		// Nothing was decided yet: the stored alerts hold what is held.
		for _, a := range st.alerts {
			f(a)
		}
	})
	type change struct {
		alert    Alert
		before   Alert
		event    alerting.Event
		out      []outMsg
		incident *Incident
	}
	var changes []change
	for _, s := range sigs {
		// Repeats follow the routes (decide), not the state machine.
		s.rule.RepeatInterval = 0
		next, ev := alerting.Step(s.alert.State, s.obs, now, s.rule)
		changed := !next.Same(s.alert.State)
		if !changed && next.Status != alerting.Firing && !next.Flapping {
			continue
		}
		// Stepped on a copy (s.alert may be the stored alert), kept as this
		// evaluation's when anything changed.
		before := *s.alert
		a := before
		a.State = next
		// The incident first, so that the messages link to it.
		in := e.recordIncidents(&a, ev)
		out := e.decide(&a, ev)
		if in == nil && !changed && len(out) == 0 && before.Notified == a.Notified && before.Suppressed == a.Suppressed {
			if !sameDecided(&a, &before) {
				e.keep(&a)
			}
			continue
		}
		e.keep(&a)
		var snap *Incident
		if in != nil {
			cp := *in
			snap = &cp
		}
		changes = append(changes, change{alert: a, before: before, event: ev, out: out, incident: snap})
	}
	// A silent host's messages name what it holds back, as it stands after
	// every signal was stepped (its dependents are judged after it).
	heldAfter := heldBy(e.eachAlert)
	for _, c := range changes {
		if c.alert.Kind != "heartbeat" {
			continue
		}
		for _, o := range c.out {
			switch o.msg.State {
			case notify.Resolved:
				if keys := appendNew(slices.Clone(heldBefore[c.alert.Host]), heldAfter[c.alert.Host]...); len(keys) > 0 {
					o.msg.Details = append(o.msg.Details, fmt.Sprintf("Held back while %s was silent, and released now (sent if still going on):", c.alert.Host))
					o.msg.Details = append(o.msg.Details, heldList(keys, e.alert)...)
				}
			default:
				if keys := heldAfter[c.alert.Host]; len(keys) > 0 {
					o.msg.Details = append(o.msg.Details, fmt.Sprintf("Held back while %s is silent (its own alerts and those of hosts that depend on it):", c.alert.Host))
					o.msg.Details = append(o.msg.Details, heldList(keys, e.alert)...)
				}
			}
		}
	}
	for _, c := range changes {
		w := AlertChange{Alert: c.alert, Incident: c.incident}
		for _, o := range c.out {
			w.Messages = append(w.Messages, o.enqueue(c.alert.Key, now))
		}
		if text := eventText(&c.alert, c.event, now); text != "" {
			w.Events = append(w.Events, AlertEvent{At: now, Key: c.alert.Key, Host: c.alert.Host, Incident: c.alert.Incident, Event: string(c.event), Text: text})
		}
		if held := c.before.HeldSince; !held.IsZero() && c.alert.HeldSince.IsZero() && c.alert.Notified && !c.before.Notified {
			text := fmt.Sprintf("SENT: %s, held back for %s (%s)", c.alert.Title, finding.HumanDuration(now.Sub(held)), c.before.Suppressed)
			w.Events = append(w.Events, AlertEvent{At: now, Key: c.alert.Key, Host: c.alert.Host, Incident: c.alert.Incident, Event: "released", Text: text})
		}
		e.changes = append(e.changes, alertChange{AlertChange: w, event: c.event})
	}
	return e
}

// alert is the alert of key as this evaluation has it so far (nil: none);
// the caller must not change it (own gives a copy to change).
func (e *evaluation) alert(key string) *Alert {
	if a := e.alerts[key]; a != nil {
		return a
	}
	return e.st.alerts[key]
}

// own is this evaluation's copy of an existing alert, to change.
func (e *evaluation) own(key string) *Alert {
	if a := e.alerts[key]; a != nil {
		return a
	}
	base := e.st.alerts[key]
	if base == nil {
		return nil
	}
	cp := *base
	e.alerts[key] = &cp
	return &cp
}

// eachAlert calls f with every alert as this evaluation has it so far.
func (e *evaluation) eachAlert(f func(*Alert)) {
	for key, a := range e.st.alerts {
		if own := e.alerts[key]; own != nil {
			a = own
		}
		f(a)
	}
	for key, a := range e.alerts {
		if e.st.alerts[key] == nil {
			f(a)
		}
	}
}

// alertFor is this evaluation's copy of the alert of key, made if there
// is none, with its title, severity, runbook and labels set (labels: the
// host, kind and severity, and the extra key and value pairs).
func (e *evaluation) alertFor(key, host, kind, title, severity, runbook string, extra ...string) *Alert {
	a := e.own(key)
	if a == nil {
		a = &Alert{Key: key, Host: host, Kind: kind, State: alerting.State{Status: alerting.OK}}
		e.alerts[key] = a
	}
	a.Title, a.Severity, a.Runbook = title, severity, runbook
	if !hasLabels(a.Labels, host, kind, severity, extra) {
		// The map may be the stored alert's: copy before writing.
		a.Labels = maps.Clone(a.Labels)
		if a.Labels == nil {
			a.Labels = map[string]string{}
		}
		a.Labels["host"], a.Labels["kind"], a.Labels["severity"] = host, kind, severity
		for i := 0; i+1 < len(extra); i += 2 {
			a.Labels[extra[i]] = extra[i+1]
		}
	}
	return a
}

// alertAs is alertFor with the summary too, without a copy when nothing
// changes: then it is the stored alert, which the caller must not change
// (the signal loop copies what it steps). Ten thousand firing findings
// are stepped every 250 ms; copying each would double the cycle.
func (e *evaluation) alertAs(key, host, kind, title, severity, runbook, summary string, extra ...string) *Alert {
	if a := e.alert(key); a != nil && a.Title == title && a.Severity == severity && a.Runbook == runbook && a.Summary == summary &&
		hasLabels(a.Labels, host, kind, severity, extra) {
		return a
	}
	a := e.alertFor(key, host, kind, title, severity, runbook, extra...)
	a.Summary = summary
	return a
}

// hasLabels reports whether labels hold the host, kind and severity and
// the extra key and value pairs.
func hasLabels(labels map[string]string, host, kind, severity string, extra []string) bool {
	if labels == nil || labels["host"] != host || labels["kind"] != kind || labels["severity"] != severity {
		return false
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if v, ok := labels[extra[i]]; !ok || v != extra[i+1] {
			return false
		}
	}
	return true
}

// keep makes a this evaluation's alert of its key.
func (e *evaluation) keep(a *Alert) {
	if own := e.alerts[a.Key]; own != nil {
		*own = *a
		return
	}
	cp := *a
	e.alerts[a.Key] = &cp
}

// sameDecided reports whether decide and recordIncidents left a as they
// found b (its state aside, which the caller compares).
func sameDecided(a, b *Alert) bool {
	return a.Suppressed == b.Suppressed && a.Notified == b.Notified && a.HeldSince.Equal(b.HeldSince) && a.HeldBy == b.HeldBy &&
		a.HeldSilent == b.HeldSilent && a.Ack == b.Ack && a.EscalatedAt.Equal(b.EscalatedAt) && a.LastRepeat.Equal(b.LastRepeat) &&
		a.Incident == b.Incident && a.silGen == b.silGen && a.rtCfg == b.rtCfg && a.rtSev == b.rtSev
}

// judgedSince is the time a heartbeat's silence counts from: the host's
// last report, but no earlier than when this tower began watching (a
// report it could not have received is not missing) unless the alert
// already fires; a report dated after now (the clock went back) counts
// from when the tower resumed.
func (e *evaluation) judgedSince(last time.Time, al *Alert) time.Time {
	if al.State.Status == alerting.Firing {
		return last
	}
	if last.After(e.now) || e.st.watchFrom.After(last) {
		return e.st.watchFrom
	}
	return last
}

// heldBy lists, per host, the alerts its silence holds back, sorted, of
// those each calls f with.
func heldBy(each func(f func(*Alert))) map[string][]string {
	out := map[string][]string{}
	each(func(a *Alert) {
		if a.HeldBy != "" && !a.Notified {
			out[a.HeldBy] = append(out[a.HeldBy], a.Key)
		}
	})
	for _, keys := range out {
		sort.Strings(keys)
	}
	return out
}

func orDefault(d time.Duration, s string) string {
	if d == 0 {
		return s
	}
	return d.String()
}
