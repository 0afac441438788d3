package notify

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"strings"
	"time"
)

// telegramMax is the Bot API's limit on a message's text after entity
// parsing, in UTF-16 code units.
const telegramMax = 4096

// telegram calls the Bot API's sendMessage with parse_mode HTML: the
// subject in bold, everything else escaped, so log lines cannot break
// the markup.
type telegram struct {
	ch     Channel
	client *http.Client
}

func newTelegram(ch Channel, client *http.Client) *telegram {
	return &telegram{ch: ch, client: client}
}

func (t *telegram) Name() string { return t.ch.Name }

type telegramPayload struct {
	ChatID             string          `json:"chat_id"`
	MessageThreadID    int64           `json:"message_thread_id,omitempty"`
	Text               string          `json:"text"`
	ParseMode          string          `json:"parse_mode"`
	LinkPreviewOptions telegramPreview `json:"link_preview_options"`
}

type telegramPreview struct {
	IsDisabled bool `json:"is_disabled"`
}

func telegramMessage(chatID string, thread int64, m Message) telegramPayload {
	r := render(m)
	subject := clipUTF16(r.subject, 512)
	// Clip the plain text before escaping, so an entity is never cut.
	rest := clipUTF16(r.body, telegramMax-utf16Count(subject)-2)
	return telegramPayload{
		ChatID:             strings.TrimSpace(chatID),
		MessageThreadID:    thread,
		Text:               "<b>" + html.EscapeString(subject) + "</b>\n\n" + html.EscapeString(rest),
		ParseMode:          "HTML",
		LinkPreviewOptions: telegramPreview{IsDisabled: true},
	}
}

func (t *telegram) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(telegramMessage(t.ch.ChatID, t.ch.ThreadID, m))
	if err != nil {
		return &SendError{Channel: t.ch.Name, Type: TypeTelegram, Err: err}
	}
	base := t.ch.APIURL
	if base == "" {
		base = DefaultTelegramAPI
	}
	target := strings.TrimRight(base, "/") + "/bot" + t.ch.BotToken + "/sendMessage"
	h := http.Header{"Content-Type": {"application/json"}}
	return post(ctx, t.client, t.ch.Name, TypeTelegram, target, h, body, telegramRetryAfter)
}

// telegramRetryAfter reads parameters.retry_after (seconds) of a 429.
func telegramRetryAfter(_ int, body []byte) time.Duration {
	var v struct {
		Parameters struct {
			RetryAfter float64 `json:"retry_after"`
		} `json:"parameters"`
	}
	if json.Unmarshal(body, &v) != nil {
		return 0
	}
	return secondsDuration(v.Parameters.RetryAfter)
}

func utf16Count(s string) int {
	n := 0
	for _, r := range s {
		n += utf16Len(r)
	}
	return n
}
