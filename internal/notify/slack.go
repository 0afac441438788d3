package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// Slack's limits: a header block's text, a section's text.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
)

// slack POSTs to a Slack incoming webhook: text (what the push shows) is
// the subject; the blocks repeat it as a header and carry the body as
// plain text, which Slack shows literally.
type slack struct {
	ch     Channel
	client *http.Client
}

func newSlack(ch Channel, client *http.Client) *slack { return &slack{ch: ch, client: client} }

func (s *slack) Name() string { return s.ch.Name }

type slackPayload struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type string     `json:"type"`
	Text *slackText `json:"text,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func slackMessage(m Message) slackPayload {
	r := render(m)
	return slackPayload{
		// text is mrkdwn: Slack wants &, < and > escaped there, and only there.
		Text: escapeSlack(r.subject),
		Blocks: []slackBlock{
			{Type: "header", Text: &slackText{Type: "plain_text", Text: clipUTF16(r.subject, slackHeaderMax)}},
			{Type: "section", Text: &slackText{Type: "plain_text", Text: clipUTF16(r.body, slackSectionMax)}},
		},
	}
}

func (s *slack) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(slackMessage(m))
	if err != nil {
		return &SendError{Channel: s.ch.Name, Type: TypeSlack, Err: err}
	}
	h := http.Header{"Content-Type": {"application/json"}}
	return post(ctx, s.client, s.ch.Name, TypeSlack, s.ch.URL, h, body, nil)
}

func escapeSlack(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
