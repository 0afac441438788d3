package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// mattermostTextMax is Mattermost's post limit since 5.0 (16383
// characters), with room for the code fence.
const mattermostTextMax = 16000

// chatAttachment is the Slack-style attachment Mattermost and Rocket.Chat
// incoming webhooks both take.
type chatAttachment struct {
	Fallback  string `json:"fallback,omitempty"`
	Color     string `json:"color"`
	Title     string `json:"title"`
	TitleLink string `json:"title_link,omitempty"`
	Text      string `json:"text"`
}

// chatPayload is the body of a Mattermost or Rocket.Chat incoming
// webhook: text (what the notification shows) is the subject, escaped;
// the attachment carries the body in a code block, shown literally.
type chatPayload struct {
	Text        string           `json:"text"`
	Attachments []chatAttachment `json:"attachments"`
}

func chatMessage(m Message, max int) chatPayload {
	r := render(m)
	// A ``` inside the body must not close the fence.
	inner := strings.ReplaceAll(clipRunes(r.body, max), "```", "`\u200b``")
	a := chatAttachment{
		Fallback: r.subject,
		Color:    fmt.Sprintf("#%06X", color(m.State, r.severity)),
		Title:    r.title,
		Text:     "```\n" + inner + "\n```",
	}
	if webURL(r.url) {
		a.TitleLink = r.url
	}
	return chatPayload{Text: escapeMarkdown(r.subject), Attachments: []chatAttachment{a}}
}

// mattermost POSTs to a Mattermost incoming webhook.
type mattermost struct {
	ch     Channel
	client *http.Client
}

var mattermostKind = kind{
	fields:   "url url_file",
	validate: needURL,
	sender:   sends(func(ch Channel, c *http.Client) *mattermost { return &mattermost{ch: ch, client: c} }),
}

func (mm *mattermost) Name() string { return mm.ch.Name }

func (mm *mattermost) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(chatMessage(m, mattermostTextMax))
	if err != nil {
		return &SendError{Channel: mm.ch.Name, Type: TypeMattermost, Err: err}
	}
	h := http.Header{"Content-Type": {"application/json"}}
	return post(ctx, mm.client, mm.ch.Name, TypeMattermost, mm.ch.URL, h, body, nil)
}
