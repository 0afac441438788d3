package notify

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Pushover's limits, in characters.
const (
	pushoverTitleMax   = 250
	pushoverMessageMax = 1024
	pushoverURLMax     = 512
)

// pushover POSTs to Pushover's messages API. A catastrophic alert is an
// emergency (priority 2): the phone repeats it every minute for an hour
// until someone acknowledges it in the app.
type pushover struct {
	ch     Channel
	client *http.Client
}

var pushoverKind = kind{
	fields: "token token_file user device api_url",
	validate: func(ch Channel) error {
		if err := need("token", ch.Token, "user", ch.User); err != nil {
			return err
		}
		if strings.ContainsAny(ch.Token+ch.User, " \t\r\n") {
			return errBlank("token and user")
		}
		return CheckURL("api_url", ch.APIURL, false)
	},
	sender: sends(func(ch Channel, c *http.Client) *pushover { return &pushover{ch: ch, client: c} }),
}

func (p *pushover) Name() string { return p.ch.Name }

// pushoverPriority: info -1 (quiet), low and medium 0, high 1 (bypasses
// quiet hours), catastrophic 2 (emergency); a resolution is 0.
func pushoverPriority(s State, severity string) int {
	if s == Resolved {
		return 0
	}
	switch strings.ToLower(severity) {
	case "info":
		return -1
	case "high":
		return 1
	case "catastrophic":
		return 2
	}
	return 0
}

func pushoverForm(ch Channel, m Message) url.Values {
	r := render(m)
	v := url.Values{}
	v.Set("token", ch.Token)
	v.Set("user", ch.User)
	if ch.Device != "" {
		v.Set("device", ch.Device)
	}
	v.Set("title", clipRunes(r.subject, pushoverTitleMax))
	v.Set("message", clipRunes(r.body, pushoverMessageMax))
	pri := pushoverPriority(m.State, r.severity)
	v.Set("priority", strconv.Itoa(pri))
	if pri == 2 {
		// Emergency: every 60 s until acknowledged, for at most an hour.
		v.Set("retry", "60")
		v.Set("expire", "3600")
	}
	if !m.Now.IsZero() {
		v.Set("timestamp", strconv.FormatInt(m.Now.Unix(), 10))
	}
	if webURL(r.url) && len(r.url) <= pushoverURLMax {
		v.Set("url", r.url)
		v.Set("url_title", "Open in hinomi")
	}
	return v
}

func (p *pushover) Send(ctx context.Context, m Message) error {
	base := p.ch.APIURL
	if base == "" {
		base = DefaultPushoverAPI
	}
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	body := []byte(pushoverForm(p.ch, m).Encode())
	return post(ctx, p.client, p.ch.Name, TypePushover, strings.TrimRight(base, "/")+"/1/messages.json", h, body, nil)
}
