package tower

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/notify"
)

// What happens to an alert's state change: who hears of it (routes), who
// hears of it later (escalation), and who hears nothing for now (silences,
// maintenance windows, dependencies). Suppressed alerts keep their state
// and are visible in the API; a firing alert whose suppression ends is
// notified then; a resolution is notified whenever the firing was.

// Match selects alerts. Empty fields match everything; host and key take
// shell patterns (pve*, finding/*/FM-B2*).
type Match struct {
	Host     string            `yaml:"host" json:"host,omitempty"`
	Key      string            `yaml:"key" json:"key,omitempty"`
	Kind     []string          `yaml:"kind" json:"kind,omitempty"`         // heartbeat, finding
	Severity []string          `yaml:"severity" json:"severity,omitempty"` // at least one of
	Labels   map[string]string `yaml:"labels" json:"labels,omitempty"`
}

// Matches reports whether the alert is selected.
func (m Match) Matches(a *Alert) bool {
	if m.Host != "" && !glob(m.Host, a.Host) || m.Key != "" && !glob(m.Key, a.Key) {
		return false
	}
	if len(m.Kind) > 0 && !slices.Contains(m.Kind, a.Kind) {
		return false
	}
	if len(m.Severity) > 0 && !slices.Contains(m.Severity, a.Severity) {
		return false
	}
	for k, v := range m.Labels {
		if a.Labels[k] != v {
			return false
		}
	}
	return true
}

func glob(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

func (m Match) validate() error {
	for _, p := range []string{m.Host, m.Key} {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("bad pattern %q: %w", p, err)
		}
	}
	for _, s := range m.Severity {
		if _, err := finding.ParseSeverity(s); err != nil {
			return err
		}
	}
	for _, k := range m.Kind {
		if k != "heartbeat" && k != "finding" && k != "probe" && k != "peer" && k != "spool" {
			return fmt.Errorf("kind %q: want heartbeat, finding, probe, peer or spool", k)
		}
	}
	return nil
}

// RouteConfig sends matching alerts to channels.
type RouteConfig struct {
	Name           string   `yaml:"name"`
	Match          Match    `yaml:"match"`
	Channels       []string `yaml:"channels"`
	RepeatInterval Duration `yaml:"repeat_interval"`
	// Escalate: still firing and not acknowledged after After, tell these
	// channels too (once per outage).
	Escalate *struct {
		After    Duration `yaml:"after"`
		Channels []string `yaml:"channels"`
	} `yaml:"escalate"`
	// Fallback channels get a message that a route channel could not
	// deliver (failed for good, or still failing after 5 attempts).
	Fallback []string `yaml:"fallback"`
	// GroupWait holds a route's messages about one host this long, so that
	// what happens together arrives as one message listing it all.
	GroupWait Duration `yaml:"group_wait"`
	// Continue: also try the routes after this one.
	Continue bool `yaml:"continue"`
}

// defaultGroupWait applies to finding alerts when no routes are configured;
// a host's silence is never held back.
const defaultGroupWait = 30 * time.Second

// MaintenanceConfig is a recurring window in which matching alerts are
// recorded but not notified.
type MaintenanceConfig struct {
	Name     string   `yaml:"name"`
	Match    Match    `yaml:"match"`
	Days     []string `yaml:"days"`  // mon … sun; empty: every day
	Start    string   `yaml:"start"` // HH:MM in TimeZone
	Duration Duration `yaml:"duration"`
	TimeZone string   `yaml:"time_zone"`
	loc      *time.Location
	startMin int
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

func (w *MaintenanceConfig) compile() error {
	loc := time.Local
	if w.TimeZone != "" {
		l, err := time.LoadLocation(w.TimeZone)
		if err != nil {
			return fmt.Errorf("time_zone: %w", err)
		}
		loc = l
	}
	w.loc = loc
	var h, m int
	if _, err := fmt.Sscanf(w.Start, "%d:%d", &h, &m); err != nil || h < 0 || h > 23 || m < 0 || m > 59 {
		return fmt.Errorf("start %q: want HH:MM", w.Start)
	}
	w.startMin = h*60 + m
	if w.Duration <= 0 || w.Duration > Duration(7*24*time.Hour) {
		return fmt.Errorf("duration must be between 1s and 168h")
	}
	for _, d := range w.Days {
		if _, ok := weekdays[strings.ToLower(d)]; !ok {
			return fmt.Errorf("day %q: want mon, tue, wed, thu, fri, sat or sun", d)
		}
	}
	return w.Match.validate()
}

// Active reports whether the window covers t. Start times are wall-clock
// times in the window's zone, so a window at 02:00 stays at 02:00 across
// daylight-saving changes (on the day a 02:30 start does not exist, the
// window starts at 03:30, as time.Date normalises it).
func (w *MaintenanceConfig) Active(t time.Time) bool {
	lt := t.In(w.loc)
	for back := 0; back <= 7; back++ {
		day := lt.AddDate(0, 0, -back)
		start := time.Date(day.Year(), day.Month(), day.Day(), w.startMin/60, w.startMin%60, 0, 0, w.loc)
		if start.After(t) || !t.Before(start.Add(time.Duration(w.Duration))) {
			continue
		}
		if len(w.Days) == 0 {
			return true
		}
		for _, d := range w.Days {
			if weekdays[strings.ToLower(d)] == start.Weekday() {
				return true
			}
		}
	}
	return false
}

// DependencyConfig: while Host is silent, alerts of the dependents do not
// open (their resolutions still go out).
type DependencyConfig struct {
	Host       string   `yaml:"host"`
	Dependents []string `yaml:"dependents"` // host names or patterns
}

// Silence is a temporary mute made through the API.
type Silence struct {
	ID        string    `json:"id"`
	Match     Match     `json:"match"`
	Starts    time.Time `json:"starts"`
	Ends      time.Time `json:"ends"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment,omitempty"`
}

// Active reports whether the silence is in force at t.
func (s Silence) Active(t time.Time) bool { return !t.Before(s.Starts) && t.Before(s.Ends) }

// Ack is an acknowledgement of a firing alert.
type Ack struct {
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
}

// suppression says why an alert must not be notified now ("" if it may)
// and, when a host's silence is why, that host. a is the evaluation's
// copy: its caches of matching silences may be refreshed.
func (e *evaluation) suppression(a *Alert) (why, holder string) {
	now, cfg := e.now, e.cfg
	if a.Kind != "peer" {
		if p := senderPeer(e.peers, now, cfg); p != "" {
			return "peer " + p + " sends the messages", ""
		}
	}
	if a.silGen != e.st.silGen+1 || a.rtSev != a.Severity {
		// A new slice: the one a.silMatch holds may be the stored alert's.
		a.silMatch = nil
		for i := range e.st.silences {
			if e.st.silences[i].Match.Matches(a) {
				a.silMatch = append(a.silMatch, i)
			}
		}
		a.silGen = e.st.silGen + 1
	}
	for _, i := range a.silMatch {
		if s := e.st.silences[i]; s.Active(now) {
			return "silence " + s.ID, ""
		}
	}
	for i := range cfg.Maintenance {
		w := &cfg.Maintenance[i]
		if w.Match.Matches(a) && w.Active(now) {
			return "maintenance " + w.Name, ""
		}
	}
	if a.Kind != "heartbeat" {
		// Inferred: what a silent host's agent reported cannot be trusted
		// to open anew; declared: its dependents.
		if hb := e.alert("heartbeat/" + a.Host); hb != nil && hb.State.Status == alerting.Firing {
			return "host " + a.Host + " is silent", a.Host
		}
	}
	waiting := ""
	for _, d := range cfg.Dependencies {
		if d.Host == a.Host || !dependsOn(d, a.Host) {
			continue
		}
		switch e.parentState(d.Host, a) {
		case parentSilent:
			return "depends on " + d.Host + ", which is silent", d.Host
		case parentUnknown:
			if waiting == "" {
				waiting = d.Host
			}
		}
	}
	if waiting != "" {
		return "depends on " + waiting + ", whose state is not known yet", waiting
	}
	return "", ""
}

func dependsOn(d DependencyConfig, host string) bool {
	for _, dep := range d.Dependents {
		if glob(dep, host) {
			return true
		}
	}
	return false
}

type parentVerdict int

const (
	parentUp parentVerdict = iota
	parentSilent
	parentUnknown
)

// parentState is what is known of a dependent alert's parent host. A
// dependent's opening waits until it is known: the parent fires (the
// shared failure pages once, for the parent), reports after the dependent
// opened (the dependent's problem is its own), or its grace passes. Hosts
// and their dependents often die together, the dependent's last report a
// moment older; without the wait the dependent would page first.
func (e *evaluation) parentState(parent string, a *Alert) parentVerdict {
	now, cfg := e.now, e.cfg
	hb := e.alert("heartbeat/" + parent)
	if hb != nil && hb.State.Status == alerting.Firing {
		return parentSilent
	}
	if a.Notified {
		return parentUp // already told: only openings wait
	}
	h := e.st.hosts[parent]
	var grace time.Duration
	for _, ag := range cfg.Agents {
		if ag.Name == parent {
			grace = time.Duration(ag.Grace)
		}
	}
	if h == nil || grace == 0 {
		return parentUp // never reported, or not an agent: its state will not become known
	}
	opened := a.State.FiredAt
	if opened.IsZero() {
		opened = now
	}
	if h.LastSeen.After(opened) {
		return parentUp
	}
	probe := hb
	if probe == nil {
		probe = &Alert{}
	}
	if now.Sub(e.judgedSince(h.LastSeen, probe)) > grace {
		return parentSilent
	}
	return parentUnknown
}

// depthOrder orders heartbeat signals parents first, so that a parent's
// state is stepped before its dependents are judged in the same
// evaluation; other signals come after. cycles are cut at len(agents).
func depthOrder(sigs []signal, cfg *Config) {
	if len(cfg.Dependencies) == 0 {
		return
	}
	depth := map[string]int{}
	for range cfg.Agents {
		changed := false
		for _, d := range cfg.Dependencies {
			for _, ag := range cfg.Agents {
				if ag.Name != d.Host && dependsOn(d, ag.Name) && depth[ag.Name] < depth[d.Host]+1 && depth[d.Host] < len(cfg.Agents) {
					depth[ag.Name] = depth[d.Host] + 1
					changed = true
				}
			}
		}
		if !changed {
			break
		}
	}
	rank := func(s signal) int {
		if s.alert.Kind != "heartbeat" {
			return len(cfg.Agents) + 1
		}
		return depth[s.alert.Host]
	}
	slices.SortStableFunc(sigs, func(x, y signal) int { return rank(x) - rank(y) })
}

// route is where one alert's messages go.
type route struct {
	channels, fallback []string
	repeat             time.Duration
	groupWait          time.Duration
	escalateAfter      time.Duration
	escalate           []string
}

// routeFor collects the routes matching an alert; with no routes
// configured, every channel gets everything.
func routeFor(a *Alert, cfg *Config) route {
	var r route
	r.repeat = time.Duration(cfg.Alerts.RepeatInterval)
	if len(cfg.Routes) == 0 {
		for _, ch := range cfg.Channels {
			r.channels = append(r.channels, ch.Name)
		}
		if a.Kind == "finding" {
			r.groupWait = defaultGroupWait
		}
		return r
	}
	matched := false
	for _, rc := range cfg.Routes {
		if !rc.Match.Matches(a) {
			continue
		}
		if !matched && rc.RepeatInterval > 0 {
			r.repeat = time.Duration(rc.RepeatInterval)
		} else if rc.RepeatInterval > 0 {
			r.repeat = min(r.repeat, time.Duration(rc.RepeatInterval))
		}
		matched = true
		r.groupWait = max(r.groupWait, time.Duration(rc.GroupWait))
		r.channels = appendNew(r.channels, rc.Channels...)
		r.fallback = appendNew(r.fallback, rc.Fallback...)
		if rc.Escalate != nil && (r.escalateAfter == 0 || time.Duration(rc.Escalate.After) < r.escalateAfter) {
			r.escalateAfter = time.Duration(rc.Escalate.After)
			r.escalate = appendNew(r.escalate, rc.Escalate.Channels...)
		}
		if !rc.Continue {
			break
		}
	}
	return r
}

func appendNew(list []string, more ...string) []string {
	for _, m := range more {
		if !slices.Contains(list, m) {
			list = append(list, m)
		}
	}
	return list
}

// outMsg is a message for some channels.
type outMsg struct {
	msg       *notify.Message
	channels  []string
	fallback  []string
	groupWait time.Duration
}

// decide turns a step's event into messages, applying suppression, acks,
// escalation and late notification, to a, the evaluation's copy.
func (e *evaluation) decide(a *Alert, ev alerting.Event) []outMsg {
	now, cfg := e.now, e.cfg
	sup, holder := e.suppression(a)
	a.Suppressed = sup
	firingNow := a.State.Status == alerting.Firing || a.State.Flapping
	if !firingNow {
		a.HeldSince, a.HeldBy, a.HeldSilent = time.Time{}, "", false
	}
	if holder != "" && !a.Notified && firingNow {
		if a.HeldSince.IsZero() {
			a.HeldSince = now
		}
		if a.HeldBy != holder {
			a.HeldBy = holder
		}
		if strings.HasSuffix(sup, "which is silent") || strings.HasSuffix(sup, " is silent") {
			a.HeldSilent = true
		}
	}
	if a.rtCfg != cfg || a.rtSev != a.Severity {
		a.rt, a.rtCfg, a.rtSev = routeFor(a, cfg), cfg, a.Severity
	}
	r := a.rt
	send := func(ev alerting.Event, channels []string) []outMsg {
		m := e.message(a, ev)
		if m == nil || len(channels) == 0 {
			return nil
		}
		if ev == alerting.Fire && !a.HeldSince.IsZero() {
			m.Details = append([]string{heldText(a, now)}, m.Details...)
			a.HeldSince, a.HeldBy, a.HeldSilent = time.Time{}, "", false
		}
		if a.Ack != nil {
			m.Details = append([]string{fmt.Sprintf("Acknowledged by %s at %s%s", a.Ack.By,
				a.Ack.At.UTC().Format("2006-01-02 15:04:05 MST"), commentSuffix(a.Ack.Comment))}, m.Details...)
		}
		wait := r.groupWait
		if a.Kind == "heartbeat" {
			wait = 0
		}
		return []outMsg{{msg: m, channels: channels, fallback: r.fallback, groupWait: wait}}
	}
	firing := a.State.Status == alerting.Firing || a.State.Flapping
	switch ev {
	case alerting.Fire, alerting.FlapStart:
		if sup != "" {
			a.Notified = false
			return nil
		}
		a.Notified = true
		return send(ev, r.channels)
	case alerting.Resolve, alerting.FlapEnd:
		out := []outMsg(nil)
		if a.Notified {
			out = send(ev, appendNew(slices.Clone(r.channels), escalatedChannels(a, r)...))
		}
		a.Notified, a.Ack, a.EscalatedAt = false, nil, time.Time{}
		a.HeldSince, a.HeldBy, a.HeldSilent = time.Time{}, "", false
		return out
	case alerting.Repeat:
		if sup != "" || a.Ack != nil || !a.Notified {
			return nil
		}
		if r.repeat > 0 && now.Sub(a.LastRepeat) < r.repeat {
			return nil
		}
		a.LastRepeat = now
		return send(ev, r.channels)
	}
	if !firing {
		return nil
	}
	// No event: a firing alert whose suppression ended is announced now;
	// an unacknowledged one escalates once.
	var out []outMsg
	if !a.Notified && sup == "" && a.State.Status == alerting.Firing {
		a.Notified = true
		out = append(out, send(alerting.Fire, r.channels)...)
	}
	if a.Notified && sup == "" && a.Ack == nil && r.escalateAfter > 0 && a.EscalatedAt.IsZero() &&
		now.Sub(a.State.FiredAt) >= r.escalateAfter {
		a.EscalatedAt = now
		esc := send(alerting.Repeat, r.escalate)
		for i := range esc {
			esc[i].msg.Title = "ESCALATED: " + esc[i].msg.Title
			esc[i].msg.Labels["escalated"] = "true"
		}
		out = append(out, esc...)
	}
	if a.Notified && sup == "" && a.Ack == nil && r.repeat > 0 && a.State.Status == alerting.Firing &&
		now.Sub(maxTime(a.LastRepeat, a.State.FiredAt)) >= r.repeat {
		a.LastRepeat = now
		out = append(out, send(alerting.Repeat, r.channels)...)
	}
	return out
}

// heldText says, in a message released late, how long and why it was
// held back.
func heldText(a *Alert, now time.Time) string {
	held := finding.HumanDuration(now.Sub(a.HeldSince))
	from := a.HeldSince.UTC().Format("15:04:05 MST")
	switch {
	case a.HeldBy == a.Host:
		return fmt.Sprintf("Held back for %s (from %s) while %s was silent; it reports again and this is still going on.", held, from, a.Host)
	case a.HeldSilent:
		return fmt.Sprintf("Held back for %s (from %s) while %s, which %s depends on, was silent; %s is back and this is still going on.", held, from, a.HeldBy, a.Host, a.HeldBy)
	default:
		return fmt.Sprintf("Held back for %s (from %s) until %s, which %s depends on, was known to be up: this is %s's own problem.", held, from, a.HeldBy, a.Host, a.Host)
	}
}

// heldList names the alerts a silent host holds back, for its messages;
// alert looks an alert up by its key.
func heldList(keys []string, alert func(string) *Alert) []string {
	const most = 10
	var out []string
	for i, k := range keys {
		if i == most {
			out = append(out, fmt.Sprintf("… and %d more", len(keys)-most))
			break
		}
		title := k
		if o := alert(k); o != nil {
			title = o.Title + " (" + k + ")"
		}
		out = append(out, title)
	}
	return out
}

func escalatedChannels(a *Alert, r route) []string {
	if a.EscalatedAt.IsZero() {
		return nil
	}
	return r.escalate
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func commentSuffix(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}
