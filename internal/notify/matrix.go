package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// matrixBodyMax bounds the body: an event must stay under 64 KiB, and
// it carries the text twice (plain and HTML-escaped).
const matrixBodyMax = 16000

// matrix sends an m.text event to a room through the client-server API,
// as a bot account that has joined the room. The transaction ID is
// derived from the message, so a retry after a lost answer is one event,
// not two: the homeserver de-duplicates it.
type matrix struct {
	ch     Channel
	client *http.Client
}

var matrixKind = kind{
	fields: "server room token token_file",
	validate: func(ch Channel) error {
		if err := need("server", ch.Server, "room", ch.Room, "token", ch.Token); err != nil {
			return err
		}
		if !strings.HasPrefix(ch.Room, "!") {
			return fmt.Errorf("room must be a room ID (\"!…\", in the room's settings under Advanced), not %q", ch.Room)
		}
		return CheckURL("server", ch.Server, true)
	},
	sender: sends(func(ch Channel, c *http.Client) *matrix { return &matrix{ch: ch, client: c} }),
}

func (m *matrix) Name() string { return m.ch.Name }

type matrixEvent struct {
	MsgType       string `json:"msgtype"`
	Body          string `json:"body"`
	Format        string `json:"format"`
	FormattedBody string `json:"formatted_body"`
}

func matrixMessage(msg Message) matrixEvent {
	r := render(msg)
	body := clipRunes(r.body, matrixBodyMax)
	return matrixEvent{
		MsgType:       "m.text", // m.notice is muted by default push rules
		Body:          r.subject + "\n\n" + body,
		Format:        "org.matrix.custom.html",
		FormattedBody: "<b>" + html.EscapeString(r.subject) + "</b><br><pre><code>" + html.EscapeString(body) + "</code></pre>",
	}
}

// txnID is the same for the same message, whatever the attempt.
func txnID(msg Message) string {
	sum := sha256.Sum256([]byte(msg.Key + "\x00" + msg.State.String() + "\x00" + msg.Now.UTC().Format(time.RFC3339Nano)))
	return "hinomi-" + hex.EncodeToString(sum[:12])
}

func (m *matrix) Send(ctx context.Context, msg Message) error {
	body, err := json.Marshal(matrixMessage(msg))
	if err != nil {
		return &SendError{Channel: m.ch.Name, Type: TypeMatrix, Err: err}
	}
	target := strings.TrimRight(m.ch.Server, "/") + "/_matrix/client/v3/rooms/" +
		url.PathEscape(m.ch.Room) + "/send/m.room.message/" + txnID(msg)
	h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + m.ch.Token}}
	return roundTrip(ctx, m.client, http.MethodPut, m.ch.Name, TypeMatrix, target, h, body, matrixRetryAfter)
}

// matrixRetryAfter reads retry_after_ms of M_LIMIT_EXCEEDED.
func matrixRetryAfter(_ int, body []byte) time.Duration {
	var v struct {
		RetryAfterMS float64 `json:"retry_after_ms"`
	}
	if json.Unmarshal(body, &v) != nil {
		return 0
	}
	return secondsDuration(v.RetryAfterMS / 1000)
}
