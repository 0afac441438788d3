package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// teamsBodyMax keeps a card well under Teams' 28 KB message limit.
const teamsBodyMax = 12000

// teams POSTs an Adaptive Card to a Microsoft Teams Workflows webhook
// ("Post to a channel when a webhook request is received"), the
// replacement of the retired Office 365 connectors.
type teams struct {
	ch     Channel
	client *http.Client
}

var teamsKind = kind{
	fields:   "url url_file",
	validate: needURL,
	sender:   sends(func(ch Channel, c *http.Client) *teams { return &teams{ch: ch, client: c} }),
}

func (t *teams) Name() string { return t.ch.Name }

type teamsPayload struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	ContentURL  *string   `json:"contentUrl"`
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string        `json:"$schema"`
	Type    string        `json:"type"`
	Version string        `json:"version"`
	MSTeams teamsWidth    `json:"msteams"`
	Body    []teamsBlock  `json:"body"`
	Actions []teamsAction `json:"actions,omitempty"`
}

type teamsWidth struct {
	Width string `json:"width"`
}

type teamsBlock struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Wrap     bool   `json:"wrap"`
	Weight   string `json:"weight,omitempty"`
	Size     string `json:"size,omitempty"`
	Color    string `json:"color,omitempty"`
	FontType string `json:"fontType,omitempty"`
	Spacing  string `json:"spacing,omitempty"`
}

type teamsAction struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

func teamsMessage(m Message) teamsPayload {
	r := render(m)
	colour := "Attention"
	if m.State == Resolved {
		colour = "Good"
	}
	card := teamsCard{
		Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
		Type:    "AdaptiveCard",
		Version: "1.4",
		MSTeams: teamsWidth{Width: "Full"},
		Body: []teamsBlock{
			{Type: "TextBlock", Text: r.subject, Wrap: true, Weight: "Bolder", Size: "Medium", Color: colour},
		},
	}
	// One block per line: Teams joins a TextBlock's single line breaks,
	// which would run the evidence lines together. A blank line becomes
	// space above the next block.
	gap := "Medium"
	for _, line := range strings.Split(clipRunes(r.body, teamsBodyMax), "\n") {
		if strings.TrimSpace(line) == "" {
			gap = "Medium"
			continue
		}
		card.Body = append(card.Body, teamsBlock{Type: "TextBlock", Text: line, Wrap: true, FontType: "Monospace", Spacing: gap})
		gap = "None"
	}
	if webURL(r.url) {
		card.Actions = []teamsAction{{Type: "Action.OpenUrl", Title: "Open in hinomi", URL: r.url}}
	}
	return teamsPayload{Type: "message", Attachments: []teamsAttachment{{
		ContentType: "application/vnd.microsoft.card.adaptive",
		Content:     card,
	}}}
}

func (t *teams) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(teamsMessage(m))
	if err != nil {
		return &SendError{Channel: t.ch.Name, Type: TypeTeams, Err: err}
	}
	h := http.Header{"Content-Type": {"application/json"}}
	return post(ctx, t.client, t.ch.Name, TypeTeams, t.ch.URL, h, body, nil)
}
