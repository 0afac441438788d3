package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// Opsgenie's limits on an alert, in characters.
const (
	opsgenieMessageMax     = 130
	opsgenieAliasMax       = 512
	opsgenieDescriptionMax = 15000
)

// opsgenie creates an Opsgenie alert per hinomi alert, with the alert's
// key as alias (a repeat adds to the open alert's count instead of
// opening another), and closes it by alias on RESOLVED.
type opsgenie struct {
	ch     Channel
	client *http.Client
}

var opsgenieKind = kind{
	fields: "api_key api_key_file api_url",
	validate: func(ch Channel) error {
		if err := need("api_key", ch.APIKey); err != nil {
			return err
		}
		if strings.ContainsAny(ch.APIKey, " \t\r\n") {
			return errBlank("api_key")
		}
		return CheckURL("api_url", ch.APIURL, false)
	},
	sender: sends(func(ch Channel, c *http.Client) *opsgenie { return &opsgenie{ch: ch, client: c} }),
}

func (o *opsgenie) Name() string { return o.ch.Name }

type opsgenieAlert struct {
	Message     string            `json:"message"`
	Alias       string            `json:"alias"`
	Description string            `json:"description"`
	Priority    string            `json:"priority"`
	Source      string            `json:"source"`
	Entity      string            `json:"entity,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Details     map[string]string `json:"details,omitempty"`
}

type opsgenieClose struct {
	Source string `json:"source"`
	Note   string `json:"note"`
}

// opsgeniePriority: catastrophic P1 … info P5.
func opsgeniePriority(severity string) string {
	switch strings.ToLower(severity) {
	case "catastrophic":
		return "P1"
	case "high":
		return "P2"
	case "medium":
		return "P3"
	case "low":
		return "P4"
	}
	return "P5"
}

func opsgenieMessage(m Message) opsgenieAlert {
	r := render(m)
	a := opsgenieAlert{
		// The message is what the phone shows: the subject, which says
		// since when, clipped to Opsgenie's 130 characters.
		Message:     clipRunes(r.subject, opsgenieMessageMax),
		Alias:       dedupKey(m.Key, opsgenieAliasMax),
		Description: clipRunes(r.body, opsgenieDescriptionMax),
		Priority:    opsgeniePriority(r.severity),
		Source:      "hinomi",
		Entity:      r.host,
		Details:     map[string]string{},
	}
	for _, t := range []string{strings.ToLower(r.severity), r.host, r.runbook} {
		if t != "" {
			a.Tags = append(a.Tags, t)
		}
	}
	for k, v := range m.Labels {
		a.Details[k] = v
	}
	if webURL(r.url) {
		a.Details["url"] = r.url
	}
	return a
}

func (o *opsgenie) Send(ctx context.Context, m Message) error {
	base := o.ch.APIURL
	if base == "" {
		base = DefaultOpsgenieAPI
	}
	base = strings.TrimRight(base, "/")
	var v any = opsgenieMessage(m)
	target := base + "/v2/alerts"
	if m.State == Resolved {
		subject, _ := Text(m)
		v = opsgenieClose{Source: "hinomi", Note: subject}
		target = base + "/v2/alerts/" + url.PathEscape(dedupKey(m.Key, opsgenieAliasMax)) + "/close?identifierType=alias"
	}
	body, err := json.Marshal(v)
	if err != nil {
		return &SendError{Channel: o.ch.Name, Type: TypeOpsgenie, Err: err}
	}
	h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"GenieKey " + o.ch.APIKey}}
	return post(ctx, o.client, o.ch.Name, TypeOpsgenie, target, h, body, nil)
}
