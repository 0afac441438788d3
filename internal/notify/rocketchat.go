package notify

import (
	"context"
	"encoding/json"
	"net/http"
)

// rocketChatTextMax stays under Rocket.Chat's default message size
// (Message_MaxAllowedSize, 5000 characters).
const rocketChatTextMax = 4500

// rocketChat POSTs to a Rocket.Chat incoming webhook integration.
type rocketChat struct {
	ch     Channel
	client *http.Client
}

var rocketChatKind = kind{
	fields:   "url url_file",
	validate: needURL,
	sender:   sends(func(ch Channel, c *http.Client) *rocketChat { return &rocketChat{ch: ch, client: c} }),
}

func (rc *rocketChat) Name() string { return rc.ch.Name }

func (rc *rocketChat) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(chatMessage(m, rocketChatTextMax))
	if err != nil {
		return &SendError{Channel: rc.ch.Name, Type: TypeRocketChat, Err: err}
	}
	h := http.Header{"Content-Type": {"application/json"}}
	return post(ctx, rc.client, rc.ch.Name, TypeRocketChat, rc.ch.URL, h, body, nil)
}
