package tower

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/web"
)

// Web is the tower as the pages see it.
func (t *Tower) Web() web.Backend { return webBackend{t.http} }

// Pages are the further status pages of the configuration in force.
func (t *Tower) Pages() []web.Page { return t.cfg.Load().Console.Pages }

// webBackend is the HTTP side as the pages (internal/web) see it.
type webBackend struct{ a *api }

func (b webBackend) Services(_ context.Context, now time.Time, publicOnly bool) ([]web.Service, error) {
	out := b.a.services.list(now, publicOnly)
	cfg := b.a.cfg.Load()
	b.a.state.read(func(s *memState) { out = append(out, s.pushServices(cfg, now, publicOnly)...) })
	return out, nil
}

// Incidents lists recent incidents; the public view keeps only those that
// touched public services and names nothing but those services.
func (b webBackend) Incidents(ctx context.Context, publicOnly bool) ([]web.Incident, error) {
	list, err := b.a.incidents.list(ctx, 50)
	if err != nil {
		return nil, err
	}
	public := map[string]bool{}
	if publicOnly {
		for name := range b.a.services.publicNames() {
			public["probe/"+name] = true
		}
		for _, p := range b.a.cfg.Load().Pushes {
			if p.Public {
				public["push/"+p.Name] = true
			}
		}
	}
	byIncident, alone, err := b.writtenThreads(ctx)
	if err != nil {
		return nil, err
	}
	keep := publicService(b.a.cfg.Load(), publicOnly, public)
	var out []web.Incident
	for _, in := range list {
		v := web.Incident{ID: in.ID, Title: in.Title, Severity: in.Severity, Opened: in.ImpactStart(), Closed: in.Closed}
		for _, k := range in.Alerts {
			name, ok := strings.CutPrefix(k, "probe/")
			if !ok {
				name, ok = strings.CutPrefix(k, "push/")
			}
			if ok && (!publicOnly || public[k]) {
				v.Services = append(v.Services, name)
			}
		}
		th := byIncident[in.ID]
		delete(byIncident, in.ID)
		if publicOnly {
			if len(v.Services) == 0 && th == nil {
				continue
			}
			// Written for the public: which services, not which hosts.
			v.Title = fmt.Sprintf("%s was unavailable", strings.Join(v.Services, ", "))
			if in.Closed.IsZero() {
				v.Title = fmt.Sprintf("%s not working", strings.Join(v.Services, ", "))
			}
			if len(v.Services) == 0 {
				v.Title = "Incident" // the thread's title, when it has one
			}
		} else {
			v.Hosts = in.Hosts
		}
		if publicOnly && !in.Closed.IsZero() && b.a.now().Sub(in.Closed) > 7*24*time.Hour && (th == nil || th.latest().At.Before(in.Closed)) {
			continue
		}
		if publicOnly {
			v.Updates = b.publicUpdates(ctx, in.ID, public)
		}
		if th != nil {
			applyThread(&v, th, keep, !publicOnly)
		}
		out = append(out, v)
	}
	// Threads about incidents older than the list, and those about none.
	for _, th := range byIncident {
		alone = append(alone, th)
	}
	for _, th := range alone {
		out = append(out, threadIncident(th, keep, !publicOnly))
	}
	newestFirst(out)
	return out, nil
}

func (b webBackend) Timeline(ctx context.Context, id int64) (web.Incident, []web.TimelineEvent, error) {
	in, evs, err := b.a.incidents.timeline(ctx, id)
	if err != nil {
		return web.Incident{}, nil, err
	}
	v := web.Incident{ID: in.ID, Title: in.Title, Severity: in.Severity, Opened: in.ImpactStart(), Closed: in.Closed, Hosts: in.Hosts}
	var out []web.TimelineEvent
	for _, e := range evs {
		out = append(out, web.TimelineEvent{At: e.At, Host: e.Host, Kind: e.Kind, Text: e.Text})
	}
	return v, out, nil
}

func (b webBackend) Postmortem(ctx context.Context, id int64) (string, error) {
	return b.a.incidents.postmortem(ctx, id)
}

func (b webBackend) Hosts(_ context.Context, now time.Time) ([]web.Host, error) {
	cfg := b.a.cfg.Load()
	var out []web.Host
	b.a.state.read(func(t *memState) {
		for _, a := range cfg.Agents {
			h := web.Host{Name: a.Name, Status: "unknown"}
			if hs := t.hosts[a.Name]; hs != nil {
				h.LastSeen, h.Status = hs.LastSeen, "ok"
				if al := t.alerts["heartbeat/"+a.Name]; al != nil && al.State.Status == alerting.Firing {
					h.Status = "silent"
				}
			}
			for _, f := range t.findings[a.Name] {
				since := f.Opened
				if f.Finding.Since != nil {
					since = *f.Finding.Since
				}
				h.Findings = append(h.Findings, web.Finding{Severity: f.Finding.Severity.String(), Summary: f.Finding.Summary, Mode: f.Finding.Runbook, Since: since})
			}
			sort.Slice(h.Findings, func(i, j int) bool { return rank(h.Findings[i].Severity) > rank(h.Findings[j].Severity) })
			out = append(out, h)
		}
	})
	return out, nil
}

func (b webBackend) Alerts(_ context.Context, _ time.Time) ([]web.Alert, error) {
	var out []web.Alert
	b.a.state.read(func(t *memState) {
		for _, a := range t.alerts {
			if a.State.Status != alerting.Firing && !a.State.Flapping {
				continue
			}
			v := web.Alert{Key: a.Key, Title: a.Title, Severity: a.Severity, Status: string(a.State.Status), Suppressed: a.Suppressed, Since: a.State.BadSince}
			if a.State.Flapping {
				v.Status = "flapping"
			}
			if a.Ack != nil {
				v.AckedBy = a.Ack.By
			}
			out = append(out, v)
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if sevRank(out[i].Severity) != sevRank(out[j].Severity) {
			return sevRank(out[i].Severity) > sevRank(out[j].Severity)
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

// Maintenance lists windows in force now or starting within a day, for
// notices on the status page.
func (b webBackend) Maintenance(now time.Time) []web.Notice {
	cfg := b.a.cfg.Load()
	var out []web.Notice
	for i := range cfg.Maintenance {
		w := &cfg.Maintenance[i]
		for step := time.Duration(0); step <= 24*time.Hour; step += 15 * time.Minute {
			if w.Active(now.Add(step)) {
				start := now.Add(step)
				for w.Active(start.Add(-time.Minute)) && now.Sub(start) < time.Duration(w.Duration) {
					start = start.Add(-time.Minute)
				}
				out = append(out, web.Notice{Name: w.Name, Start: start, End: start.Add(time.Duration(w.Duration))})
				break
			}
		}
	}
	return out
}

func (b webBackend) Ack(ctx context.Context, key, by, comment string) error {
	_, err := b.a.changes.Acknowledge(ctx, key, by, comment)
	return err
}

func (b webBackend) Silence(ctx context.Context, host, key string, d time.Duration, by, comment string) error {
	_, err := b.a.changes.AddSilence(ctx, Silence{Match: Match{Host: host, Key: key}, Ends: b.a.now().Add(d), CreatedBy: by, Comment: comment})
	return err
}

// publicUpdates tells a public incident's story from its probe alerts
// only: when each public service stopped and started working again.
func (b webBackend) publicUpdates(ctx context.Context, id int64, public map[string]bool) []web.TimelineEvent {
	evs, err := b.a.store.IncidentEvents(ctx, id)
	if err != nil {
		return nil
	}
	var out []web.TimelineEvent
	down := map[string]time.Time{}
	for _, e := range evs {
		key, ev := e.Key, e.Event
		if !public[key] {
			continue
		}
		when := e.At
		name := strings.TrimPrefix(strings.TrimPrefix(key, "probe/"), "push/")
		switch alerting.Event(ev) {
		case alerting.Fire:
			down[name] = when
			out = append(out, web.TimelineEvent{At: when, Text: name + " stopped working."})
		case alerting.Resolve:
			text := name + " works again."
			if d, ok := down[name]; ok {
				text = fmt.Sprintf("%s works again after %s.", name, when.Sub(d).Round(time.Minute))
			}
			out = append(out, web.TimelineEvent{At: when, Text: text})
		case alerting.FlapStart:
			out = append(out, web.TimelineEvent{At: when, Text: name + " keeps failing and recovering."})
		}
	}
	return out
}

// Degraded says why the tower is degraded, for the status page's banner.
// The log store's trouble shows there too (bannerReason), though it does
// not make /healthz fail.
func (b webBackend) Degraded() (string, time.Time) { return b.a.banner() }

// Channels lists the configured notification channels for the console.
func (b webBackend) Channels() []web.Channel {
	var out []web.Channel
	for _, ch := range b.a.cfg.Load().Channels {
		out = append(out, web.Channel{Name: ch.Name, Type: ch.Type})
	}
	return out
}

// TestChannel sends the console's test message through a channel: one
// attempt, then its resolution to a channel that keeps alerts open
// (notify.Stateful), so the test leaves nothing behind.
func (b webBackend) TestChannel(ctx context.Context, name, by string) error {
	senders := b.a.senders.Load()
	var s notify.Sender
	if senders != nil {
		s = (*senders)[name]
	}
	if s == nil {
		return fmt.Errorf("no channel named %q", name)
	}
	typ := ""
	for _, ch := range b.a.cfg.Load().Channels {
		if ch.Name == name {
			typ = ch.Type
		}
	}
	from := b.a.cfg.Load().Name
	if from == "" {
		from, _ = os.Hostname()
	}
	now := b.a.now().UTC()
	m := notify.TestMessage(name, from, now)
	m.Summary += " Sent from the console by " + by + "."
	send := func(m notify.Message) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return s.Send(ctx, m)
	}
	if err := send(m); err != nil {
		return err
	}
	b.a.log.Info("test message sent", "channel", name, "by", by)
	if notify.Stateful(typ) {
		m.State, m.Ended, m.Now = notify.Resolved, b.a.now().UTC(), b.a.now().UTC()
		return send(m)
	}
	return nil
}
