package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SendError is how every Send fails: which channel, what the server
// answered, and whether another attempt may succeed.
type SendError struct {
	Channel string // the channel's name
	Type    string // webhook, discord, ...
	// Status is the HTTP status or SMTP reply code the server answered;
	// 0 when there was no answer (network error, timeout).
	Status int
	// Answer is the start of the server's reply, on one line.
	Answer string
	// Temporary: the same message may go through later (429, 5xx, SMTP
	// 4xx, network trouble). Permanent failures need a config fix.
	Temporary bool
	// After is how long the server asked us to wait (Retry-After); 0 if
	// it did not say.
	After time.Duration
	Err   error // the underlying error, if any
}

func (e *SendError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "notify: %s channel %q: ", e.Type, e.Channel)
	switch {
	case e.Status != 0 && e.Answer != "":
		fmt.Fprintf(&b, "server answered %d: %s", e.Status, e.Answer)
	case e.Status != 0:
		fmt.Fprintf(&b, "server answered %d", e.Status)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("failed")
	}
	if e.Status != 0 && e.Err != nil {
		fmt.Fprintf(&b, " (%v)", e.Err)
	}
	if e.Temporary {
		b.WriteString(" [retryable")
		if e.After > 0 {
			fmt.Fprintf(&b, ", retry after %s", e.After)
		}
		b.WriteString("]")
	} else {
		b.WriteString(" [permanent]")
	}
	return b.String()
}

func (e *SendError) Unwrap() error { return e.Err }

// Retryable reports whether a failed Send may succeed if tried again.
// Errors that are not a *SendError count as retryable: dropping an alert
// is worse than trying it once more.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var se *SendError
	if errors.As(err, &se) {
		return se.Temporary
	}
	return true
}

// RetryAfter is how long the server asked to wait before the next
// attempt (from Retry-After or the service's own field), 0 if it did not.
func RetryAfter(err error) time.Duration {
	var se *SendError
	if errors.As(err, &se) {
		return se.After
	}
	return 0
}

// maxRetryAfter caps a server's wish, so a bogus header cannot park an
// alert for a year.
const maxRetryAfter = 24 * time.Hour

// retryableStatus: rate limits, timeouts and server trouble pass; any
// other non-2xx answer means the request itself is wrong.
func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooEarly ||
		code == http.StatusTooManyRequests || code >= 500
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an
// HTTP-date, the latter measured from the response's own Date header so
// no local clock is needed (falling back to the local clock without one).
func parseRetryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		return secondsDuration(s)
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	ref := time.Now()
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		ref = d
	}
	return min(max(at.Sub(ref), 0), maxRetryAfter)
}

func secondsDuration(s float64) time.Duration {
	if s != s || s <= 0 { // NaN or nothing to wait
		return 0
	}
	if s >= maxRetryAfter.Seconds() {
		return maxRetryAfter
	}
	return time.Duration(s * float64(time.Second))
}

// post is the one HTTP round trip of every HTTP channel. The URL never
// appears in an error: for Discord, Slack and Telegram it holds the secret.
// answer, when not nil, may look into a failed response's body for a
// service-specific retry delay.
func post(ctx context.Context, client *http.Client, name, typ, target string, header http.Header, body []byte,
	answer func(status int, body []byte) time.Duration) error {
	return roundTrip(ctx, client, http.MethodPost, name, typ, target, header, body, answer)
}

// roundTrip is post with another method (Matrix sends with PUT).
func roundTrip(ctx context.Context, client *http.Client, method, name, typ, target string, header http.Header, body []byte,
	answer func(status int, body []byte) time.Duration) error {
	fail := func(err error) *SendError {
		return &SendError{Channel: name, Type: typ, Temporary: true, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		e := fail(fmt.Errorf("build request: %w", redact(err, target)))
		e.Temporary = false
		return e
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "hinomi-notify")
	}
	resp, err := client.Do(req)
	if err != nil {
		e := fail(redact(err, target))
		if ctx.Err() == nil && permanentTransport(err) {
			e.Temporary = false
		}
		return e
	}
	defer resp.Body.Close()
	// Read enough to explain a failure, and drain a little so the
	// connection can be reused.
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	e := &SendError{
		Channel:   name,
		Type:      typ,
		Status:    resp.StatusCode,
		Answer:    oneLine(string(data), 300),
		Temporary: retryableStatus(resp.StatusCode),
		After:     parseRetryAfter(resp.Header),
	}
	if e.Answer == "" {
		e.Answer = http.StatusText(resp.StatusCode)
	}
	if e.After == 0 && answer != nil {
		e.After = answer(resp.StatusCode, data)
	}
	return e
}

// redact replaces a *url.Error's URL (which may hold a token) by its
// scheme and host.
func redact(err error, target string) error {
	short := "the configured URL"
	if u, perr := url.Parse(target); perr == nil && u.Host != "" {
		short = u.Scheme + "://" + u.Host
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, short, ue.Err)
	}
	return errors.New(strings.ReplaceAll(err.Error(), target, short))
}

// permanentTransport: a certificate the system does not trust will not
// become trusted by waiting.
func permanentTransport(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn)
}
