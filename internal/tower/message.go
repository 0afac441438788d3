package tower

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/notify"
)

// eventText is an alert event as a timeline line.
func eventText(a *Alert, ev alerting.Event, now time.Time) string {
	note := ""
	if a.Suppressed != "" {
		note = " (not sent: " + a.Suppressed + ")"
	}
	switch ev {
	case alerting.Fire:
		return fmt.Sprintf("FIRING: %s, bad since %s%s", a.Title, a.State.BadSince.UTC().Format("15:04:05"), note)
	case alerting.Resolve:
		return resolutionText(a, finding.HumanDuration(a.State.Downtime(now)))
	case alerting.FlapStart:
		return fmt.Sprintf("FLAPPING: %s (%d bad spells)%s", a.Title, len(a.State.Spells), note)
	case alerting.FlapEnd:
		if e, ok := a.State.FlapEpisode(); ok {
			return fmt.Sprintf("%s: flapped %d times between %s and %s, down %s in total; up and stable since %s",
				recoveryTitle(a, true), e.Spells, e.First.UTC().Format("15:04:05"), e.Last.UTC().Format("15:04:05"),
				finding.HumanDuration(e.Down), e.StableSince.UTC().Format("15:04:05"))
		}
		return recoveryTitle(a, true)
	}
	return ""
}

// message builds the notification for an event (nil: none).
func (e *evaluation) message(a *Alert, ev alerting.Event) *notify.Message {
	now, cfg := e.now, e.cfg
	m := &notify.Message{
		Key: a.Key, Host: a.Host, Title: a.Title, Severity: a.Severity, Started: a.State.BadSince,
		Now: now, Summary: a.Summary, Runbook: a.Runbook, Labels: map[string]string{"kind": a.Kind},
		Condition: a.Kind == "finding",
	}
	if cfg.URL != "" {
		// A person follows the link: to the console when it has users
		// (the incident's timeline when there is one), else to the API.
		base := strings.TrimRight(cfg.URL, "/")
		switch {
		case len(cfg.Console.Users) > 0 && a.Incident != 0:
			m.URL = base + "/console/incidents/" + strconv.FormatInt(a.Incident, 10)
		case len(cfg.Console.Users) > 0:
			m.URL = base + "/console/#alerts-h"
		default:
			m.URL = base + "/api/v1/alerts?key=" + url.QueryEscape(a.Key)
		}
	}
	if strings.HasPrefix(m.Host, "service:") {
		m.Host = "" // a probe of a service with no host declared
	}
	switch ev {
	case alerting.Fire:
		m.State = notify.Firing
		if b := a.State.BlipSummary(); b != "" {
			m.Details = append(m.Details, "Before this: "+b+". This one is still going on.")
		}
	case alerting.FlapStart:
		m.State = notify.Firing
		m.Title = a.Title + " (flapping)"
		m.Started = a.State.Spells[0]
		m.Labels["flapping"] = "true"
		m.Summary = fmt.Sprintf("It went bad %d times in the last %s; instead of a message each time, the next one comes when it has been stable for %s or a spell lasts that long.",
			len(a.State.Spells), time.Duration(cfg.Alerts.Flap.Window), time.Duration(cfg.Alerts.Flap.Stable))
		if b := a.State.BlipSummary(); b != "" {
			m.Details = append(m.Details, b+".")
		}
	case alerting.FlapEnd:
		m.State = notify.Resolved
		m.Title = recoveryTitle(a, true)
		m.Started, m.Ended = a.State.FlapSince, now
		m.Labels["flapping"] = "false"
		m.Summary = "It has been stable for " + time.Duration(cfg.Alerts.Flap.Stable).String() + " after flapping."
		if e, ok := a.State.FlapEpisode(); ok {
			m.Flap = &notify.Flap{Spells: e.Spells, First: e.First, Last: e.Last, Down: e.Down, StableSince: e.StableSince}
			m.Started, m.Ended = e.First, e.StableSince
		}
		if b := a.State.BlipSummary(); b != "" {
			m.Details = append(m.Details, b+".")
		}
	case alerting.Repeat:
		m.State = notify.Repeat
	case alerting.Resolve:
		m.State, m.Ended = notify.Resolved, a.State.ResolvedAt
		m.Title = recoveryTitle(a, false)
		if a.Kind == "probe" {
			m.Summary = "The probe of " + strings.TrimPrefix(a.Key, "probe/") + " passes again."
		}
		if a.Kind == "peer" {
			m.Summary = "Tower " + cfg.Name + " has an answer from its peer " + a.Host + " again."
		}
		if a.Kind == "heartbeat" {
			m.Details = e.lastWords(a.Host)
			if len(m.Details) > 0 {
				m.Summary = fmt.Sprintf("%s reports again. Last words before it went silent: %s", a.Host, m.Details[0])
			} else {
				m.Summary = a.Host + " reports again."
			}
		}
	default:
		return nil
	}
	if a.Kind == "push" && ev != alerting.Resolve {
		m.Details = append(m.Details, e.pushMessageDetail(a.Key)...)
	}
	if a.Kind == "finding" && strings.HasPrefix(a.Key, "finding/cluster ") {
		m.Details = append(m.Details, e.clusterDetail(a.Key)...)
	}
	if a.Kind == "finding" {
		if fs := e.st.findings[a.Host]; fs != nil {
			for _, f := range fs {
				if "finding/"+a.Host+"/"+f.Finding.Key == a.Key {
					for _, l := range f.Finding.Evidence.Lines {
						m.Details = append(m.Details, l.Text)
					}
				}
			}
		}
	}
	return m
}

// resolutionText is a resolution as a timeline line.
func resolutionText(a *Alert, after string) string {
	if a.Kind == "finding" {
		return "Cleared after " + after + ": " + a.Title
	}
	return recoveryTitle(a, false) + " after " + after
}

// recoveryTitle is the title of an alert's resolution, or with stable of
// the end of its flapping: what is well again ("Host pve1 is back",
// "Host pve1 is stable again"), never the problem's words ("is silent").
// A finding's resolution keeps its title, which names what was wrong, and
// is marked as one.
func recoveryTitle(a *Alert, stable bool) string {
	well := map[string]string{"heartbeat": "is back", "probe": "is up again", "peer": "answers again"}[a.Kind]
	if stable {
		well = "is stable again"
	}
	switch a.Kind {
	case "heartbeat":
		return "Host " + a.Host + " " + well
	case "probe":
		return "Service " + strings.TrimPrefix(a.Key, "probe/") + " " + well
	case "peer":
		return "Tower " + a.Host + " " + well
	}
	if stable {
		return "No longer flapping: " + a.Title
	}
	return a.Title
}

// lastWords are the distress lines a host's agent backfilled from the
// boot that ended in silence (findings about the previous boot).
func (e *evaluation) lastWords(host string) []string {
	var out []string
	var fs []*Finding
	for _, f := range e.st.findings[host] {
		if strings.HasPrefix(f.Finding.Subject, "previous boot") {
			fs = append(fs, f)
		}
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].Finding.Severity > fs[j].Finding.Severity })
	for _, f := range fs {
		if len(f.Finding.Evidence.Lines) == 0 {
			continue
		}
		l := f.Finding.Evidence.Lines[0] // the first distress line of each
		text := l.Text
		if l.Time != nil {
			text += " (at " + l.Time.UTC().Format("15:04:05 MST") + ")"
		}
		out = append(out, text)
	}
	return out
}
