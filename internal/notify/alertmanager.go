package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// DefaultEndsAfter is how long Alertmanager keeps a hinomi alert firing
// after its last FIRING or STILL FIRING message when no resolution comes
// (a tower that died): Alertmanager's own resolve_timeout is 5 minutes,
// far shorter than hinomi's reminders.
const DefaultEndsAfter = 24 * time.Hour

// alertmanager posts alerts to an Alertmanager's v2 API, the way
// Prometheus does, so its existing routes, grouping, inhibitions,
// silences and receivers handle hinomi's alerts too.
type alertmanager struct {
	ch     Channel
	client *http.Client
}

var alertmanagerKind = kind{
	fields: "url url_file headers bearer_token bearer_token_file ends_after",
	validate: func(ch Channel) error {
		if err := needURL(ch); err != nil {
			return err
		}
		if ch.EndsAfter < 0 {
			return errNegative("ends_after")
		}
		return checkHeaders(ch.Headers)
	},
	sender: sends(func(ch Channel, c *http.Client) *alertmanager { return &alertmanager{ch: ch, client: c} }),
}

func (a *alertmanager) Name() string { return a.ch.Name }

// amPostable is one alert of POST /api/v2/alerts.
type amPostable struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func alertmanagerAlerts(m Message, endsAfter time.Duration) []amPostable {
	r := render(m)
	labels, annotations := amLabels(r, m)
	clean := make(map[string]string, len(labels))
	for k, v := range labels {
		// Alertmanager refuses the whole post for one label name outside
		// [a-zA-Z_][a-zA-Z0-9_]* or one empty value.
		if k = labelName(k); k != "" && v != "" {
			clean[k] = v
		}
	}
	now := m.Now
	if now.IsZero() {
		now = time.Now()
	}
	if endsAfter <= 0 {
		endsAfter = DefaultEndsAfter
	}
	ends := now.Add(endsAfter)
	if m.State == Resolved {
		ends = m.Ended
		if ends.IsZero() {
			ends = now
		}
	}
	a := amPostable{Labels: clean, Annotations: annotations, StartsAt: m.Started.UTC(), EndsAt: ends.UTC()}
	if webURL(r.url) {
		a.GeneratorURL = r.url
	}
	return []amPostable{a}
}

// labelName maps a label name onto Prometheus's classic character set.
func labelName(k string) string {
	var b strings.Builder
	for i, c := range k {
		switch {
		case c < unicode.MaxASCII && (unicode.IsLetter(c) || c == '_'):
			b.WriteRune(c)
		case c < unicode.MaxASCII && unicode.IsDigit(c) && i > 0:
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// alertmanagerTarget accepts the Alertmanager's base URL, with or
// without the API path.
func alertmanagerTarget(base string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, "/api/v2/alerts") {
		return base
	}
	return base + "/api/v2/alerts"
}

func (a *alertmanager) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(alertmanagerAlerts(m, a.ch.EndsAfter))
	if err != nil {
		return &SendError{Channel: a.ch.Name, Type: TypeAlertmanager, Err: err}
	}
	h := http.Header{}
	for k, v := range a.ch.Headers {
		h.Set(k, v)
	}
	if a.ch.BearerToken != "" {
		h.Set("Authorization", "Bearer "+a.ch.BearerToken)
	}
	h.Set("Content-Type", "application/json")
	return post(ctx, a.client, a.ch.Name, TypeAlertmanager, alertmanagerTarget(a.ch.URL), h, body, nil)
}
