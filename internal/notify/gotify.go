package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// gotify POSTs to a Gotify server's /message with an application token.
type gotify struct {
	ch     Channel
	client *http.Client
}

var gotifyKind = kind{
	fields: "server token token_file",
	validate: func(ch Channel) error {
		if err := need("server", ch.Server, "token", ch.Token); err != nil {
			return err
		}
		return CheckURL("server", ch.Server, true)
	},
	sender: sends(func(ch Channel, c *http.Client) *gotify { return &gotify{ch: ch, client: c} }),
}

func (g *gotify) Name() string { return g.ch.Name }

type gotifyPayload struct {
	Title    string         `json:"title"`
	Message  string         `json:"message"`
	Priority int            `json:"priority"`
	Extras   map[string]any `json:"extras"`
}

// gotifyPriority maps severity onto Gotify's scale, where the Android
// app is silent below 4 and pops up from 8: info 2, low 4, medium 5,
// high 8, catastrophic 10; a resolution is 4.
func gotifyPriority(s State, severity string) int {
	if s == Resolved {
		return 4
	}
	switch strings.ToLower(severity) {
	case "info":
		return 2
	case "low":
		return 4
	case "high":
		return 8
	case "catastrophic":
		return 10
	}
	return 5
}

func gotifyMessage(m Message) gotifyPayload {
	r := render(m)
	extras := map[string]any{
		"client::display": map[string]string{"contentType": "text/plain"},
	}
	if webURL(r.url) {
		extras["client::notification"] = map[string]any{"click": map[string]string{"url": r.url}}
	}
	return gotifyPayload{Title: r.subject, Message: r.body, Priority: gotifyPriority(m.State, r.severity), Extras: extras}
}

func (g *gotify) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(gotifyMessage(m))
	if err != nil {
		return &SendError{Channel: g.ch.Name, Type: TypeGotify, Err: err}
	}
	h := http.Header{"Content-Type": {"application/json"}, "X-Gotify-Key": {g.ch.Token}}
	return post(ctx, g.client, g.ch.Name, TypeGotify, strings.TrimRight(g.ch.Server, "/")+"/message", h, body, nil)
}
