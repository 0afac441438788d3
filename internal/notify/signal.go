package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// signalTextMax keeps a message readable on a phone; Signal itself takes
// longer ones as an attachment.
const signalTextMax = 2000

// signal sends through signal-cli-rest-api (bbernhard/signal-cli-rest-api),
// the usual way to script Signal: POST /v2/send from a registered number.
type signal struct {
	ch     Channel
	client *http.Client
}

var signalKind = kind{
	fields: "server number recipients",
	validate: func(ch Channel) error {
		if err := need("server", ch.Server, "number", ch.Number); err != nil {
			return err
		}
		if !strings.HasPrefix(ch.Number, "+") {
			return fmt.Errorf("number must be the sender's number in international form (+4912345…)")
		}
		if len(ch.Recipients) == 0 {
			return fmt.Errorf("recipients is required (numbers or group IDs)")
		}
		for i, r := range ch.Recipients {
			if strings.TrimSpace(r) == "" {
				return fmt.Errorf("recipients[%d] is empty", i)
			}
		}
		return CheckURL("server", ch.Server, true)
	},
	sender: sends(func(ch Channel, c *http.Client) *signal { return &signal{ch: ch, client: c} }),
}

func (s *signal) Name() string { return s.ch.Name }

type signalPayload struct {
	Message    string   `json:"message"`
	Number     string   `json:"number"`
	Recipients []string `json:"recipients"`
	TextMode   string   `json:"text_mode"`
}

func signalMessage(ch Channel, m Message) signalPayload {
	r := render(m)
	return signalPayload{
		Message:    clipRunes(r.subject+"\n\n"+r.body, signalTextMax),
		Number:     ch.Number,
		Recipients: ch.Recipients,
		TextMode:   "normal", // "styled" would read *…* in log lines as bold
	}
}

func (s *signal) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(signalMessage(s.ch, m))
	if err != nil {
		return &SendError{Channel: s.ch.Name, Type: TypeSignal, Err: err}
	}
	h := http.Header{"Content-Type": {"application/json"}}
	return post(ctx, s.client, s.ch.Name, TypeSignal, strings.TrimRight(s.ch.Server, "/")+"/v2/send", h, body, nil)
}
