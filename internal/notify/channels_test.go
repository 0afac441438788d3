package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// captured is one request as the server saw it.
type captured struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// recorder is a real HTTP server on 127.0.0.1 that keeps every request
// and answers with status, header and body.
func recorder(t *testing.T, status int, header http.Header, body string) (*httptest.Server, <-chan captured) {
	t.Helper()
	reqs := make(chan captured, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- captured{Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: b}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, reqs
}

// channelAt returns a valid channel of typ whose service is srvURL.
func channelAt(typ, srvURL string) Channel {
	ch := Channel{Name: "ops-" + typ, Type: typ}
	switch typ {
	case TypeWebhook:
		ch.URL = srvURL + "/hooks/hinomi"
		ch.Headers = map[string]string{"X-Scope-OrgID": "home"}
		ch.BearerToken = "s3cret"
	case TypeDiscord:
		ch.URL = srvURL + "/api/webhooks/1234/SECRET-discord"
	case TypeSlack:
		ch.URL = srvURL + "/services/T000/B000/SECRET-slack"
	case TypeTelegram:
		ch.APIURL = srvURL
		ch.BotToken = "123456:SECRET-telegram"
		ch.ChatID = "-1001234567890"
		ch.ThreadID = 42
	case TypeNtfy:
		ch.Server = srvURL
		ch.Topic = "hinomi-alerts"
		ch.Token = "tk_SECRET"
	default:
		moreChannelAt(&ch, srvURL)
	}
	return ch
}

var httpTypes = []string{TypeWebhook, TypeDiscord, TypeSlack, TypeTelegram, TypeNtfy,
	TypeMatrix, TypeTeams, TypeGotify, TypePushover, TypePagerDuty, TypeOpsgenie,
	TypeMattermost, TypeRocketChat, TypeGoogleChat, TypeSignal, TypeAlertmanager}

// outage is the message every payload test sends: a still-open long
// outage whose evidence tries to break each channel's markup.
func outage() Message {
	m := pve1(Repeat, at("03:00:12"), at("08:12:52"), time.Time{})
	m.Details = append(m.Details,
		`app: <b>bold</b> & "quotes" @everyone`,
		"```not a fence```",
	)
	m.Labels = map[string]string{"site": "home-lab"}
	return m
}

func sendOnce(t *testing.T, ch Channel, m Message) error {
	t.Helper()
	s, err := New(ch, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if s.Name() != ch.Name {
		t.Errorf("Name() = %q; want %q", s.Name(), ch.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Send(ctx, m)
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, b)
	}
	return v
}

// get walks a decoded JSON value: get(v, "alerts", 0, "labels", "host").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func TestPayloads(t *testing.T) {
	m := outage()
	subject, body := Text(m)
	checks := map[string]func(t *testing.T, r captured){
		TypeWebhook: func(t *testing.T, r captured) {
			p := decodeJSON(t, r.Body)
			alert := []any{"alerts", 0}
			for _, c := range []struct {
				path []any
				want any
			}{
				{[]any{"version"}, "4"},
				{[]any{"status"}, "firing"},
				{[]any{"receiver"}, "ops-webhook"},
				{[]any{"groupKey"}, `{}:{key="heartbeat/pve1"}`},
				{[]any{"groupLabels", "key"}, "heartbeat/pve1"},
				{[]any{"truncatedAlerts"}, float64(0)},
				{[]any{"commonLabels", "alertname"}, "FM-A1"},
				{[]any{"commonAnnotations", "summary"}, subject},
				{append(alert, "status"), "firing"},
				{append(alert, "startsAt"), "2025-03-15T03:00:12Z"},
				{append(alert, "endsAt"), "0001-01-01T00:00:00Z"},
				{append(alert, "generatorURL"), m.URL},
				{append(alert, "labels", "alertname"), "FM-A1"},
				{append(alert, "labels", "host"), "pve1"},
				{append(alert, "labels", "severity"), "high"},
				{append(alert, "labels", "key"), "heartbeat/pve1"},
				{append(alert, "labels", "site"), "home-lab"},
				{append(alert, "annotations", "summary"), subject},
				{append(alert, "annotations", "description"), body},
				{append(alert, "annotations", "runbook"), "FM-A1"},
				{append(alert, "annotations", "title"), "Host pve1 is silent"},
				{append(alert, "annotations", "state"), "repeat"},
			} {
				if got := get(p, c.path...); got != c.want {
					t.Errorf("%v = %#v; want %#v", c.path, got, c.want)
				}
			}
			if fp, _ := get(p, "alerts", 0, "fingerprint").(string); len(fp) != 16 {
				t.Errorf("fingerprint = %q; want 16 hex digits", fp)
			}
			if got := r.Header.Get("Authorization"); got != "Bearer s3cret" {
				t.Errorf("Authorization = %q", got)
			}
			if got := r.Header.Get("X-Scope-OrgID"); got != "home" {
				t.Errorf("custom header = %q", got)
			}
		},
		TypeDiscord: func(t *testing.T, r captured) {
			p := decodeJSON(t, r.Body)
			if got, want := get(p, "content"), subject+"\n"+m.Summary; got != want {
				t.Errorf("content = %q; want %q", got, want)
			}
			if got := get(p, "allowed_mentions", "parse"); !slices.Equal(toStrings(got), []string{}) || got == nil {
				t.Errorf("allowed_mentions.parse = %#v; want []", got)
			}
			desc, _ := get(p, "embeds", 0, "description").(string)
			if !strings.HasPrefix(desc, "```\n") || !strings.HasSuffix(desc, "\n```") ||
				strings.Count(desc, "```") != 2 {
				t.Errorf("description is not one code block:\n%s", desc)
			}
			if got := get(p, "embeds", 0, "url"); got != m.URL {
				t.Errorf("embed url = %v", got)
			}
			if got := get(p, "embeds", 0, "timestamp"); got != "2025-03-15T03:00:12Z" {
				t.Errorf("embed timestamp = %v", got)
			}
			if got := get(p, "embeds", 0, "color"); got != float64(0xE01E1E) {
				t.Errorf("embed color = %v", got)
			}
		},
		TypeSlack: func(t *testing.T, r captured) {
			p := decodeJSON(t, r.Body)
			if got := get(p, "text"); got != subject {
				t.Errorf("text = %q; want %q", got, subject)
			}
			if get(p, "blocks", 0, "type") != "header" || get(p, "blocks", 0, "text", "type") != "plain_text" {
				t.Errorf("first block is not a plain_text header: %v", get(p, "blocks", 0))
			}
			if got := get(p, "blocks", 1, "text", "text"); got != body {
				t.Errorf("section text = %q; want the body", got)
			}
		},
		TypeTelegram: func(t *testing.T, r captured) {
			if r.Path != "/bot123456:SECRET-telegram/sendMessage" {
				t.Errorf("path = %q", r.Path)
			}
			p := decodeJSON(t, r.Body)
			if get(p, "chat_id") != "-1001234567890" || get(p, "message_thread_id") != float64(42) ||
				get(p, "parse_mode") != "HTML" || get(p, "link_preview_options", "is_disabled") != true {
				t.Errorf("payload fields wrong: %s", r.Body)
			}
			text, _ := get(p, "text").(string)
			if strings.Contains(text, "<b>bold") || !strings.Contains(text, "&lt;b&gt;bold&lt;/b&gt; &amp; &#34;quotes&#34;") {
				t.Errorf("evidence not escaped:\n%s", text)
			}
			if want := "<b>" + subject + "</b>\n\n" + body; html.UnescapeString(strings.Replace(text, "<b>", "", 1)) != strings.Replace(want, "<b>", "", 1) {
				t.Errorf("text does not unescape to subject and body:\n%s", text)
			}
		},
		TypeNtfy: func(t *testing.T, r captured) {
			if r.Path != "/hinomi-alerts" {
				t.Errorf("path = %q", r.Path)
			}
			title, err := new(mime.WordDecoder).DecodeHeader(r.Header.Get("Title"))
			if err != nil || title != subject {
				t.Errorf("Title decodes to %q (%v); want %q", title, err, subject)
			}
			for h, want := range map[string]string{
				"Priority":      "4",
				"Tags":          "rotating_light,repeat,high,pve1",
				"Click":         m.URL,
				"Authorization": "Bearer tk_SECRET",
				"Content-Type":  "text/plain; charset=utf-8",
			} {
				if got := r.Header.Get(h); got != want {
					t.Errorf("%s = %q; want %q", h, got, want)
				}
			}
			if string(r.Body) != body {
				t.Errorf("body = %q; want the text's body", r.Body)
			}
		},
	}
	maps.Copy(checks, moreChecks(m, subject, body))
	for _, typ := range httpTypes {
		t.Run(typ, func(t *testing.T) {
			srv, reqs := recorder(t, http.StatusOK, nil, `{"ok":true}`)
			if err := sendOnce(t, channelAt(typ, srv.URL), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			r := <-reqs
			want := http.MethodPost
			if typ == TypeMatrix {
				want = http.MethodPut
			}
			if r.Method != want {
				t.Errorf("method = %s; want %s", r.Method, want)
			}
			checks[typ](t, r)
			golden(t, filepath.Join("testdata", "payload", typ+".txt"), dump(t, r))
		})
	}
}

func toStrings(v any) []string {
	a, ok := v.([]any)
	if !ok {
		return nil
	}
	out := []string{}
	for _, x := range a {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// dump writes a request as the golden files hold it: the request line,
// the headers that matter, and the body (JSON indented).
func dump(t *testing.T, r captured) string {
	var b strings.Builder
	b.WriteString(r.Method + " " + r.Path + "\n")
	for _, h := range []string{"Authorization", "Click", "Content-Type", "Priority", "Tags", "Title", "X-Gotify-Key", "X-Scope-Orgid"} {
		if v := r.Header.Get(h); v != "" {
			b.WriteString(h + ": " + v + "\n")
		}
	}
	b.WriteString("\n")
	var out bytes.Buffer
	if json.Indent(&out, r.Body, "", "  ") == nil {
		b.Write(out.Bytes())
	} else {
		b.Write(r.Body)
	}
	b.WriteString("\n")
	return b.String()
}

func TestResolvedWebhook(t *testing.T) {
	srv, reqs := recorder(t, http.StatusOK, nil, "")
	m := pve1(Resolved, at("03:00:12"), at("08:12:52"), at("08:12:40"))
	if err := sendOnce(t, channelAt(TypeWebhook, srv.URL), m); err != nil {
		t.Fatal(err)
	}
	p := decodeJSON(t, (<-reqs).Body)
	if get(p, "status") != "resolved" || get(p, "alerts", 0, "endsAt") != "2025-03-15T08:12:40Z" {
		t.Errorf("resolved payload: status %v, endsAt %v", get(p, "status"), get(p, "alerts", 0, "endsAt"))
	}
}

func TestChannelLimits(t *testing.T) {
	m := outage()
	m.Title = strings.Repeat("Title ", 100)
	m.Summary = strings.Repeat("*", maxSummary) // doubles when escaped for Discord
	m.Details = nil
	for range 30 {
		m.Details = append(m.Details, strings.Repeat("😀<&", 100))
	}
	_, body := Text(m)

	srv, reqs := recorder(t, http.StatusNoContent, nil, "")
	for _, typ := range httpTypes {
		if err := sendOnce(t, channelAt(typ, srv.URL), m); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		r := <-reqs
		switch typ {
		case TypeDiscord:
			p := decodeJSON(t, r.Body)
			content, _ := get(p, "content").(string)
			desc, _ := get(p, "embeds", 0, "description").(string)
			title, _ := get(p, "embeds", 0, "title").(string)
			if n := utf16Count(content); n > 2000 || !strings.HasSuffix(content, "…") {
				t.Errorf("discord content: %d units, clipped=%v", n, strings.HasSuffix(content, "…"))
			}
			if utf16Count(desc) > 4096 || !strings.HasSuffix(desc, "…\n```") {
				t.Errorf("discord description: %d units", utf16Count(desc))
			}
			if utf16Count(title) > 256 {
				t.Errorf("discord title: %d units", utf16Count(title))
			}
		case TypeSlack:
			p := decodeJSON(t, r.Body)
			if h, _ := get(p, "blocks", 0, "text", "text").(string); utf16Count(h) > 150 {
				t.Errorf("slack header: %d", utf16Count(h))
			}
			if s, _ := get(p, "blocks", 1, "text", "text").(string); utf16Count(s) > 3000 {
				t.Errorf("slack section: %d", utf16Count(s))
			}
		case TypeTelegram:
			p := decodeJSON(t, r.Body)
			text, _ := get(p, "text").(string)
			plain := html.UnescapeString(strings.NewReplacer("<b>", "", "</b>", "").Replace(text))
			if n := utf16Count(plain); n > 4096 {
				t.Errorf("telegram text: %d units after entity parsing", n)
			}
		case TypeNtfy:
			if len(r.Body) > 4096 || !bytes.HasPrefix([]byte(body), bytes.TrimSuffix(r.Body, []byte("…"))) {
				t.Errorf("ntfy body: %d bytes", len(r.Body))
			}
		}
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name      string
		typ       string
		status    int
		header    http.Header
		body      string
		retryable bool
		after     time.Duration
	}{
		{"server error", TypeWebhook, 500, nil, "boom", true, 0},
		{"bad gateway", TypeSlack, 502, nil, "<html>bad gateway</html>", true, 0},
		{"bad request", TypeWebhook, 400, nil, `{"error":"invalid payload"}`, false, 0},
		{"gone webhook", TypeSlack, 410, nil, "channel_is_archived", false, 0},
		{"wrong token", TypeTelegram, 401, nil, `{"ok":false,"error_code":401,"description":"Unauthorized"}`, false, 0},
		{"forbidden topic", TypeNtfy, 403, nil, `{"code":40301,"http":403,"error":"forbidden"}`, false, 0},
		{"rate limited, seconds", TypeWebhook, 429, http.Header{"Retry-After": {"7"}}, "slow down", true, 7 * time.Second},
		{"rate limited, http date", TypeNtfy, 429, http.Header{
			"Date":        {"Sat, 15 Mar 2025 08:12:52 GMT"},
			"Retry-After": {"Sat, 15 Mar 2025 08:14:52 GMT"}}, "", true, 2 * time.Minute},
		{"rate limited, absurd", TypeWebhook, 429, http.Header{"Retry-After": {"99999999999999"}}, "", true, 24 * time.Hour},
		{"discord body retry_after", TypeDiscord, 429, nil, `{"message":"You are being rate limited.","retry_after":1.5,"global":false}`, true, 1500 * time.Millisecond},
		{"telegram parameters.retry_after", TypeTelegram, 429, nil,
			`{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}`, true, 5 * time.Second},
		{"unavailable", TypeDiscord, 503, nil, "", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := recorder(t, tt.status, tt.header, tt.body)
			ch := channelAt(tt.typ, srv.URL)
			err := sendOnce(t, ch, outage())
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *SendError", err, err)
			}
			if se.Status != tt.status || se.Channel != ch.Name || se.Type != tt.typ {
				t.Errorf("status %d channel %q type %q; want %d %q %q", se.Status, se.Channel, se.Type, tt.status, ch.Name, tt.typ)
			}
			if Retryable(err) != tt.retryable {
				t.Errorf("Retryable = %v; want %v (%v)", Retryable(err), tt.retryable, err)
			}
			if got := RetryAfter(err); got != tt.after {
				t.Errorf("RetryAfter = %v; want %v", got, tt.after)
			}
			msg := err.Error()
			if !strings.Contains(msg, ch.Name) || !strings.Contains(msg, tt.typ) {
				t.Errorf("error does not name the channel: %s", msg)
			}
			if tt.body != "" && !strings.Contains(msg, tt.body[:min(len(tt.body), 20)]) {
				t.Errorf("error does not quote the server's answer: %s", msg)
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("error leaks a secret: %s", msg)
			}
		})
	}
}

func TestSuccessStatuses(t *testing.T) {
	for _, status := range []int{200, 201, 202, 204} {
		srv, _ := recorder(t, status, nil, "")
		if err := sendOnce(t, channelAt(TypeDiscord, srv.URL), outage()); err != nil {
			t.Errorf("status %d: %v", status, err)
		}
	}
}

// TestNetworkErrorHidesSecrets: nobody listens; the error is retryable
// and names the host but not the token-bearing path.
func TestNetworkErrorHidesSecrets(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	for _, typ := range httpTypes {
		err := sendOnce(t, channelAt(typ, base), outage())
		if err == nil {
			t.Fatalf("%s: send to a closed port succeeded", typ)
		}
		if !Retryable(err) || RetryAfter(err) != 0 {
			t.Errorf("%s: Retryable %v, RetryAfter %v; want true, 0", typ, Retryable(err), RetryAfter(err))
		}
		if msg := err.Error(); strings.Contains(msg, "SECRET") || !strings.Contains(msg, strings.TrimPrefix(base, "http://")) {
			t.Errorf("%s: %s", typ, msg)
		}
	}
}

// TestSendHonoursDeadline: a server that never answers must not hold a
// Send past its context's deadline.
func TestSendHonoursDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: frees any handler still waiting
	for _, typ := range httpTypes {
		s, err := New(channelAt(typ, srv.URL), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		err = s.Send(ctx, outage())
		cancel()
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: Send took %v past a 100ms deadline", typ, took)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !Retryable(err) {
			t.Errorf("%s: err = %v; want a retryable deadline error", typ, err)
		}
	}
}

func TestRetryableOfOtherErrors(t *testing.T) {
	if Retryable(nil) {
		t.Error("Retryable(nil) = true")
	}
	if !Retryable(errors.New("something unforeseen")) {
		t.Error("an unknown error must count as retryable")
	}
	if RetryAfter(errors.New("x")) != 0 {
		t.Error("RetryAfter of a plain error != 0")
	}
}
