// Package notify sends hinomi's alert notifications: one Message about one
// alert, rendered by Text into words a tired operator believes (when it
// started, how long it has lasted, how long it was down: FM-A2), and
// delivered by a Sender to a webhook, Discord, Slack, Telegram, ntfy or
// e-mail. A Send is one attempt: it never retries, and its error says
// whether the tower's outbox should try again (Retryable, RetryAfter).
package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// State is where an alert stands when a message about it is sent.
type State int

// The states. Repeat is a reminder that an alert is still firing; it is
// rendered so that nobody takes it for a new blip.
const (
	Firing State = iota + 1
	Repeat
	Resolved
)

func (s State) String() string {
	switch s {
	case Firing:
		return "firing"
	case Repeat:
		return "repeat"
	case Resolved:
		return "resolved"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText encodes the state by name, so a queued message reads "firing".
func (s State) MarshalText() ([]byte, error) {
	if s < Firing || s > Resolved {
		return nil, fmt.Errorf("unknown notification state %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (s *State) UnmarshalText(b []byte) error {
	for v := Firing; v <= Resolved; v++ {
		if strings.EqualFold(string(b), v.String()) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("unknown notification state %q (want firing, repeat or resolved)", b)
}

// Message is one notification about one alert.
type Message struct {
	Key      string    // stable alert key, e.g. "heartbeat/pve1"
	Host     string    // the host the alert is about
	Title    string    // e.g. "Host pve1 is silent"
	State    State     // Firing, Repeat (still firing) or Resolved
	Severity string    // info|low|medium|high|catastrophic
	Started  time.Time // when the problem started, not when it was noticed
	Now      time.Time // when this message is sent; firing duration = Now-Started
	Ended    time.Time // resolved: when it ended; downtime = Ended-Started
	Summary  string    // one sentence
	Details  []string  // evidence lines, e.g. the host's last log lines
	Runbook  string    // failure mode ID, e.g. "FM-A1"
	URL      string    // the tower's page about the alert; may be empty
	Labels   map[string]string
	// Condition marks an alert about a condition (a finding: a filling
	// disk, a hung mount) rather than something being down: its
	// resolution says how long it lasted, not how long it "was down".
	Condition bool `json:",omitempty"`
	// Flap, on a Resolved message, says the alert was flapping and is
	// stable again: the message tells the episode instead of one downtime.
	Flap *Flap `json:",omitempty"`
	// Delayed is how much later than meant the message goes out (a
	// receiver that failed, a channel held up); the message says so.
	Delayed time.Duration `json:",omitempty"`
	// Overtook, on a Resolved message, says the alert's FIRING message
	// was never delivered: this one tells both.
	Overtook bool `json:",omitempty"`
}

// Flap is a flapping episode that ended.
type Flap struct {
	Spells      int           // bad spells in the episode
	First, Last time.Time     // when the first and the last began
	Down        time.Duration // their total length
	StableSince time.Time     // when the last one ended
}

// Sender delivers messages to one configured channel. Send makes exactly
// one attempt and honours ctx; a failure is a *SendError.
type Sender interface {
	Name() string
	Send(ctx context.Context, m Message) error
}

// The channel types.
const (
	TypeWebhook  = "webhook"
	TypeDiscord  = "discord"
	TypeSlack    = "slack"
	TypeTelegram = "telegram"
	TypeNtfy     = "ntfy"
	TypeSMTP     = "smtp"

	TypeMatrix       = "matrix"
	TypeTeams        = "teams"
	TypeGotify       = "gotify"
	TypePushover     = "pushover"
	TypePagerDuty    = "pagerduty"
	TypeOpsgenie     = "opsgenie"
	TypeMattermost   = "mattermost"
	TypeRocketChat   = "rocketchat"
	TypeGoogleChat   = "googlechat"
	TypeSignal       = "signal"
	TypeAlertmanager = "alertmanager"
)

// Default service addresses, used when a channel leaves its base URL empty.
const (
	DefaultTelegramAPI = "https://api.telegram.org"
	DefaultNtfyServer  = "https://ntfy.sh"
	DefaultPushoverAPI = "https://api.pushover.net"
	DefaultPagerDuty   = "https://events.pagerduty.com"
	DefaultOpsgenieAPI = "https://api.opsgenie.com"
)

// The SMTP transport security modes.
const (
	SMTPStartTLS = "starttls" // plain connection upgraded with STARTTLS, which must succeed
	SMTPTLS      = "tls"      // implicit TLS from the first byte (usually port 465)
	SMTPNone     = "none"     // no encryption at all; only for a local relay
)

// Channel is one notification channel as written in the tower's YAML.
// Which fields apply depends on Type; New rejects a field that the type
// does not use, so a typo cannot silently drop alerts.
type Channel struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`

	// URL is where webhook, discord and slack POST (for discord and slack
	// the webhook URL the service gave you; it is a secret).
	URL string `yaml:"url,omitempty"`
	// URLFile holds URL instead (the secret stays out of the YAML); so do
	// the other *File fields for theirs. ${NAME} in a secret or a path
	// is the environment variable NAME (ReadSecrets).
	URLFile string `yaml:"url_file,omitempty"`
	// Headers are extra HTTP headers for a webhook.
	Headers map[string]string `yaml:"headers,omitempty"`
	// BearerToken is sent as "Authorization: Bearer ..." by webhook.
	BearerToken     string `yaml:"bearer_token,omitempty"`
	BearerTokenFile string `yaml:"bearer_token_file,omitempty"`

	// Telegram: the bot's token, the chat to write to (numeric id or
	// @channelname), an optional forum topic, and the Bot API base URL.
	BotToken     string `yaml:"bot_token,omitempty"`
	BotTokenFile string `yaml:"bot_token_file,omitempty"`
	ChatID       string `yaml:"chat_id,omitempty"`
	ThreadID     int64  `yaml:"thread_id,omitempty"`
	APIURL       string `yaml:"api_url,omitempty"`

	// ntfy: the server (default https://ntfy.sh), the topic, and an
	// optional access token.
	Server    string `yaml:"server,omitempty"`
	Topic     string `yaml:"topic,omitempty"`
	Token     string `yaml:"token,omitempty"`
	TokenFile string `yaml:"token_file,omitempty"`

	// SMTP.
	Host         string   `yaml:"host,omitempty"`
	Port         int      `yaml:"port,omitempty"` // default 587 (starttls), 465 (tls), 25 (none)
	Username     string   `yaml:"username,omitempty"`
	Password     string   `yaml:"password,omitempty"`
	PasswordFile string   `yaml:"password_file,omitempty"`
	From         string   `yaml:"from,omitempty"`
	To           []string `yaml:"to,omitempty"`
	TLS          string   `yaml:"tls,omitempty"`     // starttls (default), tls or none
	CAFile       string   `yaml:"ca_file,omitempty"` // PEM roots for a private mail server

	// Matrix: the homeserver is Server, the access token Token, and Room
	// the room ID ("!abc:example.org") the bot has joined.
	Room string `yaml:"room,omitempty"`

	// Pushover: the application's token is Token; User is the user or
	// group key, Device optionally one device of theirs.
	User   string `yaml:"user,omitempty"`
	Device string `yaml:"device,omitempty"`

	// PagerDuty Events API v2: the service's integration (routing) key.
	RoutingKey     string `yaml:"routing_key,omitempty"`
	RoutingKeyFile string `yaml:"routing_key_file,omitempty"`

	// Opsgenie: an API integration's key (api_url for the EU instance,
	// https://api.eu.opsgenie.com).
	APIKey     string `yaml:"api_key,omitempty"`
	APIKeyFile string `yaml:"api_key_file,omitempty"`

	// Signal through signal-cli-rest-api: Server is its address, Number
	// the registered sender, Recipients the numbers or group IDs.
	Number     string   `yaml:"number,omitempty"`
	Recipients []string `yaml:"recipients,omitempty"`

	// Alertmanager: how long after the last firing message an alert is
	// kept firing there without news (endsAt); default 24h. hinomi sends
	// the resolution itself, this only bounds an alert whose tower died.
	EndsAfter time.Duration `yaml:"ends_after,omitempty"`
}

// New reads ch's secret files (ReadSecrets), checks ch and returns its
// sender. client carries the HTTP channels'
// requests (nil: a client with a 30 s timeout); it is not used by smtp.
// Errors name the channel and the offending YAML field.
func New(ch Channel, client *http.Client) (Sender, error) {
	if _, err := ch.ReadSecrets(os.LookupEnv); err != nil {
		return nil, err
	}
	if err := ch.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	k, _ := kindOf(ch.Type)
	s, err := k.sender(ch, client)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return s, nil
}

// String names the channel without its secrets, so logging a Channel
// with %v or %+v cannot leak a token, password or webhook URL.
func (ch Channel) String() string {
	return fmt.Sprintf("notify channel %q (%s)", ch.Name, ch.Type)
}

// Validate reports the first thing wrong with ch, naming the field.
func (ch Channel) Validate() error {
	if strings.TrimSpace(ch.Name) == "" {
		return fmt.Errorf("notify channel (type %q): name is required", ch.Type)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("notify channel %q (%s): %s", ch.Name, ch.Type, fmt.Sprintf(format, args...))
	}
	k, ok := kindOf(ch.Type)
	if !ok {
		return fail("type must be one of %s", strings.Join(Types(), ", "))
	}
	for _, f := range ch.setFields() {
		if !strings.Contains(" "+k.fields+" ", " "+f+" ") {
			return fail("field %s is not used by type %s (its fields: %s)", f, ch.Type, k.fields)
		}
	}
	if err := k.validate(ch); err != nil {
		return fail("%v", err)
	}
	return nil
}

// setFields returns the YAML names of the per-type fields that are set.
func (ch Channel) setFields() []string {
	var out []string
	add := func(name string, set bool) {
		if set {
			out = append(out, name)
		}
	}
	for _, k := range secretKeys {
		v, file := ch.secret(k)
		add(k, *v != "")
		add(k+"_file", *file != "")
	}
	add("headers", len(ch.Headers) > 0)
	add("chat_id", ch.ChatID != "")
	add("thread_id", ch.ThreadID != 0)
	add("api_url", ch.APIURL != "")
	add("server", ch.Server != "")
	add("topic", ch.Topic != "")
	add("host", ch.Host != "")
	add("port", ch.Port != 0)
	add("username", ch.Username != "")
	add("from", ch.From != "")
	add("to", len(ch.To) > 0)
	add("tls", ch.TLS != "")
	add("ca_file", ch.CAFile != "")
	add("room", ch.Room != "")
	add("user", ch.User != "")
	add("device", ch.Device != "")
	add("number", ch.Number != "")
	add("recipients", len(ch.Recipients) > 0)
	add("ends_after", ch.EndsAfter != 0)
	return out
}

// CheckURL requires an absolute http(s) URL with a host and, if it has
// one, a port of 1-65535; an empty one is fine when the field has a
// default. Errors name the field, never the URL (it may hold a secret).
func CheckURL(field, raw string, required bool) error {
	if raw == "" {
		if required {
			return fmt.Errorf("%s is required", field)
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s is not a URL", field) // the parse error would echo a secret
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%s must start with https:// or http://", field)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s has no host", field)
	}
	// url.Parse takes "host:" as a host with no port; a request to it
	// would go to the scheme's default port, not the one meant.
	if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%s has an empty port after %q: give the port or drop the colon", field, u.Hostname()+":")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s: port %s is not a TCP port (1-65535)", field, p)
		}
	}
	return nil
}

func checkHeaders(h map[string]string) error {
	for k, v := range h {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return fmt.Errorf("headers: %q is not a valid header name", k)
		}
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("headers: the value of %s has a line break", k)
		}
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Length", "Host":
			return fmt.Errorf("headers: %s is set by hinomi and cannot be overridden", k)
		}
	}
	return nil
}
