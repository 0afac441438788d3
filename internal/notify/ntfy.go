package notify

import (
	"context"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ntfyMax is ntfy's default message size limit in bytes; a longer body
// would be turned into an attachment.
const ntfyMax = 4096

// ntfy publishes to a topic with the Title, Priority, Tags and Click
// headers and the body as the message.
type ntfy struct {
	ch     Channel
	client *http.Client
}

func newNtfy(ch Channel, client *http.Client) *ntfy { return &ntfy{ch: ch, client: client} }

func (n *ntfy) Name() string { return n.ch.Name }

// ntfyRequest returns the headers and body of a publish.
func ntfyRequest(m Message) (http.Header, []byte) {
	r := render(m)
	tag := "rotating_light"
	switch m.State {
	case Repeat:
		tag = "rotating_light,repeat"
	case Resolved:
		tag = "white_check_mark"
	}
	tags := []string{tag}
	for _, t := range []string{strings.ToLower(r.severity), r.host} {
		if t = strings.ReplaceAll(t, ",", " "); t != "" {
			tags = append(tags, t)
		}
	}
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	// Header values are bytes; ntfy decodes RFC 2047 words (since 2.4.0),
	// which is how the title's "—" and "→" arrive intact.
	h.Set("Title", mime.BEncoding.Encode("utf-8", r.subject))
	h.Set("Tags", mime.BEncoding.Encode("utf-8", strings.Join(tags, ",")))
	h.Set("Priority", strconv.Itoa(ntfyPriority(m.State, r.severity)))
	if webURL(r.url) {
		h.Set("Click", r.url)
	}
	return h, []byte(clipBytes(r.body, ntfyMax))
}

// ntfyPriority maps severity onto ntfy's 1..5: info 2, low and medium 3,
// high 4 (pop-over), catastrophic 5 (urgent). A resolution is 3: news,
// not an emergency.
func ntfyPriority(s State, severity string) int {
	if s == Resolved {
		return 3
	}
	switch strings.ToLower(severity) {
	case "info":
		return 2
	case "high":
		return 4
	case "catastrophic":
		return 5
	}
	return 3
}

func (n *ntfy) Send(ctx context.Context, m Message) error {
	h, body := ntfyRequest(m)
	if n.ch.Token != "" {
		h.Set("Authorization", "Bearer "+n.ch.Token)
	}
	base := n.ch.Server
	if base == "" {
		base = DefaultNtfyServer
	}
	target := strings.TrimRight(base, "/") + "/" + url.PathEscape(n.ch.Topic)
	return post(ctx, n.client, n.ch.Name, TypeNtfy, target, h, body, nil)
}

// clipBytes keeps s within n bytes without splitting a rune.
func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	i := n - len(ell)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + ell
}
