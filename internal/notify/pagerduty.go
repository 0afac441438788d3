package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// PagerDuty Events API v2 limits.
const (
	pagerDutySummaryMax = 1024
	pagerDutyDedupMax   = 255
)

// pagerDuty sends to PagerDuty's Events API v2: FIRING and STILL FIRING
// trigger with the alert's key as dedup_key (a repeat updates the same
// incident), RESOLVED resolves it.
type pagerDuty struct {
	ch     Channel
	client *http.Client
}

var pagerDutyKind = kind{
	fields: "routing_key routing_key_file api_url",
	validate: func(ch Channel) error {
		if err := need("routing_key", ch.RoutingKey); err != nil {
			return err
		}
		if strings.ContainsAny(ch.RoutingKey, " \t\r\n/?#") {
			return errBlank("routing_key")
		}
		return CheckURL("api_url", ch.APIURL, false)
	},
	sender: sends(func(ch Channel, c *http.Client) *pagerDuty { return &pagerDuty{ch: ch, client: c} }),
}

func (p *pagerDuty) Name() string { return p.ch.Name }

type pagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *pagerDutyPayload `json:"payload,omitempty"`
	Client      string            `json:"client,omitempty"`
	ClientURL   string            `json:"client_url,omitempty"`
	Links       []pagerDutyLink   `json:"links,omitempty"`
}

type pagerDutyPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

type pagerDutyLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// pagerDutySeverity: catastrophic is critical, high error (both high
// urgency where the service takes urgency from severity), medium and low
// warning, info info.
func pagerDutySeverity(severity string) string {
	switch strings.ToLower(severity) {
	case "catastrophic":
		return "critical"
	case "high":
		return "error"
	case "medium", "low":
		return "warning"
	}
	return "info"
}

func pagerDutyMessage(routingKey string, m Message) pagerDutyEvent {
	r := render(m)
	ev := pagerDutyEvent{RoutingKey: routingKey, EventAction: "trigger", DedupKey: dedupKey(m.Key, pagerDutyDedupMax)}
	if m.State == Resolved {
		ev.EventAction = "resolve"
		return ev
	}
	source := r.host
	if source == "" {
		source = "hinomi"
	}
	details := map[string]any{"details": r.body}
	if r.runbook != "" {
		details["runbook"] = "hinomi runbook " + r.runbook
	}
	for k, v := range m.Labels {
		details["label "+k] = v
	}
	ev.Payload = &pagerDutyPayload{
		Summary:       clipRunes(r.subject, pagerDutySummaryMax),
		Source:        source,
		Severity:      pagerDutySeverity(r.severity),
		Class:         r.runbook,
		CustomDetails: details,
	}
	if !m.Started.IsZero() {
		ev.Payload.Timestamp = m.Started.UTC().Format("2006-01-02T15:04:05Z")
	}
	ev.Client = "hinomi"
	if webURL(r.url) {
		ev.ClientURL = r.url
		ev.Links = []pagerDutyLink{{Href: r.url, Text: "Open in hinomi"}}
	}
	return ev
}

func (p *pagerDuty) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(pagerDutyMessage(p.ch.RoutingKey, m))
	if err != nil {
		return &SendError{Channel: p.ch.Name, Type: TypePagerDuty, Err: err}
	}
	base := p.ch.APIURL
	if base == "" {
		base = DefaultPagerDuty
	}
	h := http.Header{"Content-Type": {"application/json"}}
	return post(ctx, p.client, p.ch.Name, TypePagerDuty, strings.TrimRight(base, "/")+"/v2/enqueue", h, body, nil)
}
