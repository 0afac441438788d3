package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Discord's limits, counted in UTF-16 code units.
const (
	discordContentMax = 2000
	discordTitleMax   = 256
	discordDescMax    = 4096
)

// discord POSTs to a Discord webhook. The content (what a phone's push
// shows) is the subject and the summary; the embed carries the body as a
// code block, so log lines are shown literally and not as markdown.
type discord struct {
	ch     Channel
	client *http.Client
}

func newDiscord(ch Channel, client *http.Client) *discord { return &discord{ch: ch, client: client} }

func (d *discord) Name() string { return d.ch.Name }

type discordPayload struct {
	Content         string          `json:"content"`
	Embeds          []discordEmbed  `json:"embeds"`
	AllowedMentions discordMentions `json:"allowed_mentions"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	URL         string         `json:"url,omitempty"`
	Color       int            `json:"color"`
	Timestamp   string         `json:"timestamp,omitempty"`
	Footer      *discordFooter `json:"footer,omitempty"`
}

type discordFooter struct {
	Text string `json:"text"`
}

// discordMentions with an empty parse list: a log line with @everyone
// must not ping the whole server.
type discordMentions struct {
	Parse []string `json:"parse"`
}

func discordMessage(m Message) discordPayload {
	r := render(m)
	content := escapeMarkdown(r.subject)
	if r.summary != "" {
		content += "\n" + escapeMarkdown(r.summary)
	}
	// The fence must survive the clip, and a ``` inside must not close it.
	inner := strings.ReplaceAll(r.body, "```", "`\u200b``")
	desc := "```\n" + clipUTF16(inner, discordDescMax-8) + "\n```"
	e := discordEmbed{
		Title:       clipUTF16(r.title, discordTitleMax),
		Description: desc,
		Color:       color(m.State, r.severity),
	}
	if webURL(r.url) {
		e.URL = r.url
	}
	if !m.Started.IsZero() {
		// Discord shows this in the reader's own time zone, next to the UTC in the text.
		e.Timestamp = m.Started.UTC().Format(time.RFC3339)
		e.Footer = &discordFooter{Text: "problem started"}
	}
	return discordPayload{
		Content:         clipUTF16(content, discordContentMax),
		Embeds:          []discordEmbed{e},
		AllowedMentions: discordMentions{Parse: []string{}},
	}
}

func (d *discord) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(discordMessage(m))
	if err != nil {
		return &SendError{Channel: d.ch.Name, Type: TypeDiscord, Err: err}
	}
	h := http.Header{"Content-Type": {"application/json"}}
	return post(ctx, d.client, d.ch.Name, TypeDiscord, d.ch.URL, h, body, discordRetryAfter)
}

// discordRetryAfter reads the retry_after (seconds) of Discord's 429 body,
// used when the Retry-After header is missing.
func discordRetryAfter(status int, body []byte) time.Duration {
	var v struct {
		RetryAfter float64 `json:"retry_after"`
	}
	if status != http.StatusTooManyRequests || json.Unmarshal(body, &v) != nil {
		return 0
	}
	return secondsDuration(v.RetryAfter)
}

// escapeMarkdown backslash-escapes the markdown Discord (and Mattermost,
// Rocket.Chat) would act on:
// emphasis, code, spoilers and mentions anywhere, headings, quotes and
// lists at a line's start, and a masked link's "](". Other characters
// stay as they are, so the push preview is not littered with backslashes.
func escapeMarkdown(s string) string {
	var b strings.Builder
	lineStart := true
	for i, r := range s {
		esc := strings.ContainsRune("\\*_~`|<", r) ||
			lineStart && strings.ContainsRune("#>-", r) ||
			r == ']' && strings.HasPrefix(s[i+1:], "(")
		if esc {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
		if r == '\n' {
			lineStart = true
		} else if r != ' ' {
			lineStart = false
		}
	}
	return b.String()
}

// color: red shades by severity while firing, green when resolved.
func color(s State, severity string) int {
	if s == Resolved {
		return 0x2EB67D
	}
	switch strings.ToLower(severity) {
	case "catastrophic":
		return 0x8B0000
	case "high":
		return 0xE01E1E
	case "medium":
		return 0xF08C00
	case "low":
		return 0xF2C744
	}
	return 0x3B82F6
}

// webURL: only a real http(s) link may go where a service makes it
// clickable (Discord rejects the whole message otherwise).
func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
