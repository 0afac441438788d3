package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// googleChatTextMax stays under Google Chat's 4,096-character text limit.
const googleChatTextMax = 4000

// googleChat POSTs to a Google Chat space's incoming webhook. Every
// message about one alert goes to one thread (threadKey is the alert's
// key), so its FIRING, reminders and RESOLVED read together.
type googleChat struct {
	ch     Channel
	client *http.Client
}

var googleChatKind = kind{
	fields:   "url url_file",
	validate: needURL,
	sender:   sends(func(ch Channel, c *http.Client) *googleChat { return &googleChat{ch: ch, client: c} }),
}

func (g *googleChat) Name() string { return g.ch.Name }

type googleChatPayload struct {
	Text   string           `json:"text"`
	Thread googleChatThread `json:"thread"`
}

type googleChatThread struct {
	ThreadKey string `json:"threadKey"`
}

func googleChatMessage(m Message) googleChatPayload {
	r := render(m)
	subject := clipRunes(r.subject, 500)
	inner := strings.ReplaceAll(r.body, "```", "`\u200b``")
	inner = clipRunes(inner, googleChatTextMax-len([]rune(subject))-12)
	// Google Chat's *bold* has no escape: a subject with * is left plain.
	head := "*" + subject + "*"
	if strings.Contains(subject, "*") {
		head = subject
	}
	return googleChatPayload{
		Text:   head + "\n```\n" + inner + "\n```",
		Thread: googleChatThread{ThreadKey: dedupKey(m.Key, 128)},
	}
}

// googleChatTarget adds the reply option that makes threadKey work.
func googleChatTarget(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD")
	u.RawQuery = q.Encode()
	return u.String()
}

func (g *googleChat) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(googleChatMessage(m))
	if err != nil {
		return &SendError{Channel: g.ch.Name, Type: TypeGoogleChat, Err: err}
	}
	h := http.Header{"Content-Type": {"application/json; charset=UTF-8"}}
	return post(ctx, g.client, g.ch.Name, TypeGoogleChat, googleChatTarget(g.ch.URL), h, body, nil)
}
