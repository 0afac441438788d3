package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// kind is one channel type: the YAML fields it reads (besides name and
// type), what it requires of them, and its sender. A new channel type is
// one file holding its kind and sender, plus one line in kindOf.
type kind struct {
	fields   string
	validate func(ch Channel) error
	sender   func(ch Channel, client *http.Client) (Sender, error)
}

// kindOf is the registry of channel types.
func kindOf(typ string) (kind, bool) {
	switch typ {
	case TypeWebhook:
		return webhookKind, true
	case TypeDiscord:
		return discordKind, true
	case TypeSlack:
		return slackKind, true
	case TypeTelegram:
		return telegramKind, true
	case TypeNtfy:
		return ntfyKind, true
	case TypeSMTP:
		return smtpKind, true
	case TypeMatrix:
		return matrixKind, true
	case TypeTeams:
		return teamsKind, true
	case TypeGotify:
		return gotifyKind, true
	case TypePushover:
		return pushoverKind, true
	case TypePagerDuty:
		return pagerDutyKind, true
	case TypeOpsgenie:
		return opsgenieKind, true
	case TypeMattermost:
		return mattermostKind, true
	case TypeRocketChat:
		return rocketChatKind, true
	case TypeGoogleChat:
		return googleChatKind, true
	case TypeSignal:
		return signalKind, true
	case TypeAlertmanager:
		return alertmanagerKind, true
	}
	return kind{}, false
}

// Types lists every channel type, sorted.
func Types() []string {
	ts := []string{
		TypeWebhook, TypeDiscord, TypeSlack, TypeTelegram, TypeNtfy, TypeSMTP,
		TypeMatrix, TypeTeams, TypeGotify, TypePushover, TypePagerDuty, TypeOpsgenie,
		TypeMattermost, TypeRocketChat, TypeGoogleChat, TypeSignal, TypeAlertmanager,
	}
	slices.Sort(ts)
	return ts
}

// sends makes a kind's sender from a constructor that cannot fail.
func sends[S Sender](f func(Channel, *http.Client) S) func(Channel, *http.Client) (Sender, error) {
	return func(ch Channel, c *http.Client) (Sender, error) { return f(ch, c), nil }
}

// needURL is the validation of the types that only POST to a URL.
func needURL(ch Channel) error { return CheckURL("url", ch.URL, true) }

// need reports the first of the named required settings that is empty.
func need(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.TrimSpace(pairs[i+1]) == "" {
			return fmt.Errorf("%s is required", pairs[i])
		}
	}
	return nil
}

var (
	webhookKind = kind{
		fields: "url url_file headers bearer_token bearer_token_file",
		validate: func(ch Channel) error {
			if err := needURL(ch); err != nil {
				return err
			}
			return checkHeaders(ch.Headers)
		},
		sender: sends(newWebhook),
	}
	discordKind  = kind{fields: "url url_file", validate: needURL, sender: sends(newDiscord)}
	slackKind    = kind{fields: "url url_file", validate: needURL, sender: sends(newSlack)}
	telegramKind = kind{
		fields: "bot_token bot_token_file chat_id thread_id api_url",
		validate: func(ch Channel) error {
			switch {
			case ch.BotToken == "":
				return fmt.Errorf("bot_token is required")
			case strings.ContainsAny(ch.BotToken, "/?#% \t\r\n"):
				return fmt.Errorf("bot_token has characters a Telegram token never has")
			case strings.TrimSpace(ch.ChatID) == "":
				return fmt.Errorf("chat_id is required")
			}
			return CheckURL("api_url", ch.APIURL, false)
		},
		sender: sends(newTelegram),
	}
	ntfyKind = kind{
		fields: "server topic token token_file",
		validate: func(ch Channel) error {
			switch {
			case ch.Topic == "":
				return fmt.Errorf("topic is required")
			case strings.ContainsAny(ch.Topic, "/?#% \t\r\n"):
				return fmt.Errorf("topic %q must be a single path segment", ch.Topic)
			}
			return CheckURL("server", ch.Server, false)
		},
		sender: sends(newNtfy),
	}
	smtpKind = kind{
		fields:   "host port username password password_file from to tls ca_file",
		validate: Channel.validateSMTP,
		sender: func(ch Channel, _ *http.Client) (Sender, error) {
			s, err := newSMTP(ch)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	}
)

func errBlank(field string) error {
	return fmt.Errorf("%s must not contain spaces, line breaks or URL characters", field)
}

// dedupKey is the alert's key as a service's de-duplication key: the key
// itself when it fits, otherwise a digest of it (the same every time).
func dedupKey(key string, max int) string {
	if key != "" && len(key) <= max {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "hinomi-" + hex.EncodeToString(sum[:16])
}

func errNegative(field string) error { return fmt.Errorf("%s must not be negative", field) }
