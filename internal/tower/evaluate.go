package tower

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/notify"
)

// judgedSince is the time a heartbeat's silence counts from: the host's
// last report, but no earlier than when this tower began watching (a
// report it could not have received is not missing) unless the alert
// already fires; a report dated after now (the clock went back) counts
// from when the tower resumed. t.mu is held.
func (t *Tower) judgedSince(last, now time.Time, al *Alert) time.Time {
	if al.State.Status == alerting.Firing {
		return last
	}
	if last.After(now) || t.watchFrom.After(last) {
		return t.watchFrom
	}
	return last
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
	minSev, _ := finding.ParseSeverity(cfg.Alerts.MinSeverity)
	flap := alerting.FlapRule{Window: time.Duration(cfg.Alerts.Flap.Window), Spells: cfg.Alerts.Flap.Spells, Stable: time.Duration(cfg.Alerts.Flap.Stable)}
	rule := alerting.Rule{For: time.Duration(cfg.Alerts.For), RepeatInterval: time.Duration(cfg.Alerts.RepeatInterval), Flap: flap}

	t.mu.Lock()
	var sigs []signal
	if t.expecting == nil {
		t.expecting = map[string]time.Time{}
	}
	for _, a := range cfg.Agents {
		key := "heartbeat/" + a.Name
		h := t.hosts[a.Name]
		if h == nil {
			// Configured but never heard from since this tower began
			// expecting it (start or reload): after a grace that is a
			// silent host too, or a host nobody watches goes unnoticed.
			since, ok := t.expecting[a.Name]
			if !ok || (cfg.Alerts.NeverReported != nil && !*cfg.Alerts.NeverReported) {
				if !ok {
					t.expecting[a.Name] = now
				}
				continue
			}
			if old := t.alerts[key]; (old == nil || old.State.Status != alerting.Firing) && now.Sub(since) <= time.Duration(a.Grace) {
				continue
			}
			al := t.alertFor(key, a.Name, "heartbeat", "Host "+a.Name+" is silent", "catastrophic", "FM-A1")
			al.Summary = fmt.Sprintf("%s has never reported since this tower began expecting it at %s (grace %s): is its agent running, with --name %s and its token?",
				a.Name, since.UTC().Format("2006-01-02 15:04:05 MST"), time.Duration(a.Grace), a.Name)
			sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: true, BadSince: since},
				rule: alerting.Rule{RepeatInterval: rule.RepeatInterval, Flap: flap}})
			continue
		}
		al := t.alertFor(key, a.Name, "heartbeat", "Host "+a.Name+" is silent", "catastrophic", "FM-A1")
		judged := t.judgedSince(h.LastSeen, now, al)
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
	sigs = append(sigs, t.peerSignals(now, cfg, flap)...)
	sigs = append(sigs, t.lossSignals(now, rule)...)
	sigs = append(sigs, t.pushSignals(now, cfg, rule)...)
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
	for name := range t.probes {
		if !configured["probe/"+name] {
			delete(t.probes, name) // removed by a reload
		}
	}
	for key, al := range t.alerts {
		// Removed by a reload: what still fires resolves.
		if (al.Kind == "heartbeat" || al.Kind == "probe" || al.Kind == "peer" || al.Kind == "push") && !configured[key] &&
			(al.State.Status == alerting.Firing || al.State.Status == alerting.Pending) {
			sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: false}, rule: rule})
		}
	}
	thresholds := map[string]ProbeConfig{}
	for _, p := range cfg.Probes {
		thresholds[p.Name] = p
	}
	for name, r := range t.probes {
		host := r.Host
		if host == "" {
			host = "service:" + name
		}
		sev := "high"
		al := t.alertFor("probe/"+name, host, "probe", "Service "+name+" is down", sev, "FM-A3")
		al.Labels["group"] = r.Group
		al.Summary = "The probe of " + name + " fails."
		if r.Message != "" {
			al.Summary = "The probe of " + name + " fails: " + r.Message
		}
		// Opens after failure_threshold failed runs in a row, from the
		// first of them; resolves after success_threshold good ones.
		st, pc := t.probeStreaks[name], thresholds[name]
		wasBad := al.State.Status == alerting.Firing || al.State.Status == alerting.Pending
		bad := st.down >= max(pc.FailureThreshold, 1) || wasBad && st.good < max(pc.SuccessThreshold, 1)
		since := st.downSince
		if since.IsZero() {
			since = t.probeDownSince(name, r)
		}
		sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: bad, BadSince: since}, rule: rule})
	}
	seen := map[string]bool{}
	clustered := clusterFindings{}
	for host, fs := range t.findings {
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
			al := t.alertFor(key, host, "finding", host+": "+f.Finding.Summary, f.Finding.Severity.String(), f.Finding.Runbook)
			al.Summary = f.Finding.Summary
			since := f.Opened
			if f.Finding.Since != nil && f.Finding.Since.Before(since) {
				since = *f.Finding.Since
			}
			sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: true, BadSince: since}, rule: rule})
		}
	}
	sigs = append(sigs, t.clusterSignals(clustered, seen, rule)...)
	for key, al := range t.alerts {
		if al.Kind == "finding" && !seen[key] && (al.State.Status == alerting.Firing || al.State.Status == alerting.Pending) {
			sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: false}, rule: rule})
		}
	}
	depthOrder(sigs, cfg)
	heldBefore := t.heldBy()
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
		before := *s.alert
		s.alert.State = next
		// The incident first, so that the messages link to it.
		in := t.recordIncidents(s.alert, ev, now, cfg)
		out := t.decide(s.alert, ev, now, cfg)
		if in == nil && !changed && len(out) == 0 && before.Notified == s.alert.Notified && before.Suppressed == s.alert.Suppressed {
			continue
		}
		var snap *Incident
		if in != nil {
			cp := *in
			snap = &cp
		}
		changes = append(changes, change{alert: *s.alert, before: before, event: ev, out: out, incident: snap})
	}
	// A silent host's messages name what it holds back, as it stands after
	// every signal was stepped (its dependents are judged after it).
	heldAfter := t.heldBy()
	for _, c := range changes {
		if c.alert.Kind != "heartbeat" {
			continue
		}
		for _, o := range c.out {
			switch o.msg.State {
			case notify.Resolved:
				if keys := appendNew(slices.Clone(heldBefore[c.alert.Host]), heldAfter[c.alert.Host]...); len(keys) > 0 {
					o.msg.Details = append(o.msg.Details, fmt.Sprintf("Held back while %s was silent, and released now (sent if still going on):", c.alert.Host))
					o.msg.Details = append(o.msg.Details, heldList(keys, t.alerts)...)
				}
			default:
				if keys := heldAfter[c.alert.Host]; len(keys) > 0 {
					o.msg.Details = append(o.msg.Details, fmt.Sprintf("Held back while %s is silent (its own alerts and those of hosts that depend on it):", c.alert.Host))
					o.msg.Details = append(o.msg.Details, heldList(keys, t.alerts)...)
				}
			}
		}
	}
	t.mu.Unlock()
	t.lastEval.Store(now.UnixNano())
	if len(changes) == 0 {
		t.noteUnwritten(nil)
		return nil
	}
	writes := make([]AlertChange, 0, len(changes))
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
		writes = append(writes, w)
	}
	err := t.store.SaveAlerts(ctx, now, writes)
	if err != nil {
		// Nothing was written: put the alerts back as they were, so that the
		// next evaluation decides (and notifies) again.
		t.mu.Lock()
		for _, c := range changes {
			if a := t.alerts[c.alert.Key]; a != nil {
				*a = c.before
			}
		}
		t.mu.Unlock()
		if t.store.StorageError(err) {
			// Judged all the same: the degraded page names them.
			var judged []Alert
			for _, c := range changes {
				judged = append(judged, c.alert)
			}
			t.noteUnwritten(judged)
		}
		return err
	}
	t.noteUnwritten(nil)
	for _, c := range changes {
		if c.event != alerting.None {
			t.log.Info("alert", "key", c.alert.Key, "event", string(c.event), "status", string(c.alert.State.Status), "suppressed", c.alert.Suppressed)
			t.metrics.transitions.WithLabelValues(c.alert.Kind, string(c.event)).Inc()
		}
	}
	t.out.wake()
	return nil
}

// heldBy lists, per host, the alerts its silence holds back, sorted.
// t.mu is held.
func (t *Tower) heldBy() map[string][]string {
	out := map[string][]string{}
	for _, a := range t.alerts {
		if a.HeldBy != "" && !a.Notified {
			out[a.HeldBy] = append(out[a.HeldBy], a.Key)
		}
	}
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

func (t *Tower) alertFor(key, host, kind, title, severity, runbook string) *Alert {
	a := t.alerts[key]
	if a == nil {
		a = &Alert{Key: key, Host: host, Kind: kind, State: alerting.State{Status: alerting.OK}}
		t.alerts[key] = a
	}
	a.Title, a.Severity, a.Runbook = title, severity, runbook
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	a.Labels["host"], a.Labels["kind"], a.Labels["severity"] = host, kind, severity
	return a
}
