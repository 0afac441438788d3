package notify

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// moreChannelAt fills a valid channel of the chat, paging and relay
// types whose service is srvURL; every secret holds "SECRET".
func moreChannelAt(ch *Channel, srvURL string) {
	switch ch.Type {
	case TypeMatrix:
		ch.Server = srvURL
		ch.Room = "!AbCdEf:example.org"
		ch.Token = "syt_SECRET_matrix"
	case TypeTeams:
		ch.URL = srvURL + "/workflows/abc/triggers/manual/paths/invoke?sig=SECRET-teams"
	case TypeGotify:
		ch.Server = srvURL + "/gotify/"
		ch.Token = "ASECRETgotify"
	case TypePushover:
		ch.APIURL = srvURL
		ch.Token = "aSECRETpushoverapptoken0000000"
		ch.User = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
		ch.Device = "phone"
	case TypePagerDuty:
		ch.APIURL = srvURL
		ch.RoutingKey = "R0SECRETpagerdutyroutingkey00000"
	case TypeOpsgenie:
		ch.APIURL = srvURL
		ch.APIKey = "eb243592-SECRET-opsgenie"
	case TypeMattermost:
		ch.URL = srvURL + "/hooks/SECRETmattermost"
	case TypeRocketChat:
		ch.URL = srvURL + "/hooks/abc/SECRETrocket"
	case TypeGoogleChat:
		ch.URL = srvURL + "/v1/spaces/AAAA/messages?key=SECRET-key&token=SECRET-token"
	case TypeSignal:
		ch.Server = srvURL
		ch.Number = "+431212131491291"
		ch.Recipients = []string{"+4354546464654", "group.SECRETgroupid="}
	case TypeAlertmanager:
		ch.URL = srvURL + "/"
		ch.BearerToken = "SECRET-am"
	}
}

// moreChecks are TestPayloads' assertions for those types.
func moreChecks(m Message, subject, body string) map[string]func(t *testing.T, r captured) {
	field := func(t *testing.T, p map[string]any, want any, path ...any) {
		t.Helper()
		if got := get(p, path...); got != want {
			t.Errorf("%v = %#v; want %#v", path, got, want)
		}
	}
	return map[string]func(t *testing.T, r captured){
		TypeMatrix: func(t *testing.T, r captured) {
			if !strings.HasPrefix(r.Path, "/_matrix/client/v3/rooms/%21AbCdEf:example.org/send/m.room.message/hinomi-") {
				t.Errorf("path = %q", r.Path)
			}
			if r.Header.Get("Authorization") != "Bearer syt_SECRET_matrix" {
				t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
			}
			p := decodeJSON(t, r.Body)
			field(t, p, "m.text", "msgtype")
			field(t, p, subject+"\n\n"+body, "body")
			field(t, p, "org.matrix.custom.html", "format")
			if fb, _ := get(p, "formatted_body").(string); strings.Contains(fb, "<b>bold") || !strings.Contains(fb, "&lt;b&gt;bold") {
				t.Errorf("formatted_body does not escape the evidence: %s", fb)
			}
		},
		TypeTeams: func(t *testing.T, r captured) {
			p := decodeJSON(t, r.Body)
			card := []any{"attachments", 0, "content"}
			field(t, p, "message", "type")
			field(t, p, "application/vnd.microsoft.card.adaptive", "attachments", 0, "contentType")
			field(t, p, "AdaptiveCard", append(card, "type")...)
			field(t, p, subject, append(card, "body", 0, "text")...)
			field(t, p, "Attention", append(card, "body", 0, "color")...)
			blocks, _ := get(p, append(card, "body")...).([]any)
			var lines []string
			for _, b := range blocks[1:] {
				lines = append(lines, get(b, "text").(string))
			}
			if want := strings.Fields(body); strings.Join(strings.Fields(strings.Join(lines, "\n")), " ") != strings.Join(want, " ") {
				t.Errorf("card lines do not carry the body:\n%s", strings.Join(lines, "\n"))
			}
			if len(lines) < 10 || get(blocks[3], "spacing") != "None" {
				t.Errorf("body is not one block per line: %d blocks", len(lines))
			}
			field(t, p, m.URL, append(card, "actions", 0, "url")...)
		},
		TypeGotify: func(t *testing.T, r captured) {
			if r.Path != "/gotify/message" || r.Header.Get("X-Gotify-Key") != "ASECRETgotify" {
				t.Errorf("path %q key %q", r.Path, r.Header.Get("X-Gotify-Key"))
			}
			p := decodeJSON(t, r.Body)
			field(t, p, subject, "title")
			field(t, p, body, "message")
			field(t, p, float64(8), "priority")
			field(t, p, m.URL, "extras", "client::notification", "click", "url")
			field(t, p, "text/plain", "extras", "client::display", "contentType")
		},
		TypePushover: func(t *testing.T, r captured) {
			if r.Path != "/1/messages.json" {
				t.Errorf("path = %q", r.Path)
			}
			v, err := url.ParseQuery(string(r.Body))
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]string{
				"token": "aSECRETpushoverapptoken0000000", "user": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
				"device": "phone", "title": subject, "message": body, "priority": "1",
				"url": m.URL, "timestamp": "1742026372",
			} {
				if got := v.Get(k); got != want {
					t.Errorf("%s = %q; want %q", k, got, want)
				}
			}
		},
		TypePagerDuty: func(t *testing.T, r captured) {
			if r.Path != "/v2/enqueue" {
				t.Errorf("path = %q", r.Path)
			}
			p := decodeJSON(t, r.Body)
			field(t, p, "R0SECRETpagerdutyroutingkey00000", "routing_key")
			field(t, p, "trigger", "event_action")
			field(t, p, "heartbeat/pve1", "dedup_key")
			field(t, p, subject, "payload", "summary")
			field(t, p, "pve1", "payload", "source")
			field(t, p, "error", "payload", "severity")
			field(t, p, "2025-03-15T03:00:12Z", "payload", "timestamp")
			field(t, p, body, "payload", "custom_details", "details")
			field(t, p, m.URL, "links", 0, "href")
		},
		TypeOpsgenie: func(t *testing.T, r captured) {
			if r.Path != "/v2/alerts" || r.Header.Get("Authorization") != "GenieKey eb243592-SECRET-opsgenie" {
				t.Errorf("path %q auth %q", r.Path, r.Header.Get("Authorization"))
			}
			p := decodeJSON(t, r.Body)
			msg, _ := get(p, "message").(string)
			if len([]rune(msg)) > 130 || !strings.HasPrefix(subject, strings.TrimSuffix(msg, "…")) {
				t.Errorf("message = %q", msg)
			}
			field(t, p, "heartbeat/pve1", "alias")
			field(t, p, body, "description")
			field(t, p, "P2", "priority")
			field(t, p, "pve1", "entity")
			field(t, p, "home-lab", "details", "site")
		},
		TypeMattermost: func(t *testing.T, r captured) { checkChat(t, r, subject, body) },
		TypeRocketChat: func(t *testing.T, r captured) { checkChat(t, r, subject, body) },
		TypeGoogleChat: func(t *testing.T, r captured) {
			if r.Path != "/v1/spaces/AAAA/messages" {
				t.Errorf("path = %q", r.Path)
			}
			p := decodeJSON(t, r.Body)
			field(t, p, "heartbeat/pve1", "thread", "threadKey")
			text, _ := get(p, "text").(string)
			if !strings.HasPrefix(text, "*"+subject+"*\n```\n") || !strings.Contains(text, "quotes") {
				t.Errorf("text = %q", text)
			}
		},
		TypeSignal: func(t *testing.T, r captured) {
			if r.Path != "/v2/send" {
				t.Errorf("path = %q", r.Path)
			}
			p := decodeJSON(t, r.Body)
			field(t, p, "+431212131491291", "number")
			field(t, p, "group.SECRETgroupid=", "recipients", 1)
			field(t, p, subject+"\n\n"+body, "message")
			field(t, p, "normal", "text_mode")
		},
		TypeAlertmanager: func(t *testing.T, r captured) {
			if r.Path != "/api/v2/alerts" || r.Header.Get("Authorization") != "Bearer SECRET-am" {
				t.Errorf("path %q auth %q", r.Path, r.Header.Get("Authorization"))
			}
			var alerts []map[string]any
			if err := json.Unmarshal(r.Body, &alerts); err != nil || len(alerts) != 1 {
				t.Fatalf("body is not one alert: %v\n%s", err, r.Body)
			}
			a := alerts[0]
			field(t, a, "FM-A1", "labels", "alertname")
			field(t, a, "pve1", "labels", "host")
			field(t, a, "home-lab", "labels", "site")
			field(t, a, subject, "annotations", "summary")
			field(t, a, "2025-03-15T03:00:12Z", "startsAt")
			// Still firing: kept open a day past the message, not
			// Alertmanager's 5-minute resolve_timeout.
			field(t, a, "2025-03-16T08:12:52Z", "endsAt")
			field(t, a, m.URL, "generatorURL")
		},
	}
}

func checkChat(t *testing.T, r captured, subject, body string) {
	t.Helper()
	p := decodeJSON(t, r.Body)
	if got := get(p, "text"); got != escapeMarkdown(subject) {
		t.Errorf("text = %q", got)
	}
	text, _ := get(p, "attachments", 0, "text").(string)
	if !strings.HasPrefix(text, "```\n") || !strings.HasSuffix(text, "\n```") || strings.Count(text, "```") != 2 {
		t.Errorf("attachment text is not one code block:\n%s", text)
	}
	if get(p, "attachments", 0, "color") != "#E01E1E" {
		t.Errorf("color = %v", get(p, "attachments", 0, "color"))
	}
}

// TestResolvedPaging: PagerDuty resolves by dedup_key, Opsgenie closes by
// alias, Alertmanager gets the real end time.
func TestResolvedPaging(t *testing.T) {
	m := pve1(Resolved, at("03:00:12"), at("08:12:52"), at("08:12:40"))
	srv, reqs := recorder(t, http.StatusAccepted, nil, `{"status":"success"}`)

	if err := sendOnce(t, channelAt(TypePagerDuty, srv.URL), m); err != nil {
		t.Fatal(err)
	}
	p := decodeJSON(t, (<-reqs).Body)
	if get(p, "event_action") != "resolve" || get(p, "dedup_key") != "heartbeat/pve1" || get(p, "payload") != nil {
		t.Errorf("pagerduty resolve = %v", p)
	}

	if err := sendOnce(t, channelAt(TypeOpsgenie, srv.URL), m); err != nil {
		t.Fatal(err)
	}
	r := <-reqs
	if r.Path != "/v2/alerts/heartbeat%2Fpve1/close" {
		t.Errorf("opsgenie close path = %q", r.Path)
	}
	if note, _ := get(decodeJSON(t, r.Body), "note").(string); !strings.HasPrefix(note, "[RESOLVED]") {
		t.Errorf("opsgenie note = %q", note)
	}

	if err := sendOnce(t, channelAt(TypeAlertmanager, srv.URL), m); err != nil {
		t.Fatal(err)
	}
	var alerts []map[string]any
	if err := json.Unmarshal((<-reqs).Body, &alerts); err != nil {
		t.Fatal(err)
	}
	if get(alerts[0], "endsAt") != "2025-03-15T08:12:40Z" {
		t.Errorf("alertmanager endsAt = %v", get(alerts[0], "endsAt"))
	}
}

// TestMatrixRetryIsOneEvent: the same message twice has one transaction
// ID (the homeserver keeps one event); another message has another.
func TestMatrixRetryIsOneEvent(t *testing.T) {
	srv, reqs := recorder(t, http.StatusOK, nil, `{"event_id":"$x"}`)
	m := outage()
	for range 2 {
		if err := sendOnce(t, channelAt(TypeMatrix, srv.URL), m); err != nil {
			t.Fatal(err)
		}
	}
	a, b := (<-reqs).Path, (<-reqs).Path
	m.Now = m.Now.Add(time.Hour)
	if err := sendOnce(t, channelAt(TypeMatrix, srv.URL), m); err != nil {
		t.Fatal(err)
	}
	c := (<-reqs).Path
	if a != b || a == c {
		t.Errorf("transaction paths: retry %q / %q, next message %q", a, b, c)
	}
}

func TestMoreRetryHints(t *testing.T) {
	srv, _ := recorder(t, http.StatusTooManyRequests, nil, `{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":2500}`)
	err := sendOnce(t, channelAt(TypeMatrix, srv.URL), outage())
	if !Retryable(err) || RetryAfter(err) != 2500*time.Millisecond {
		t.Errorf("matrix 429: retryable %v after %v (%v)", Retryable(err), RetryAfter(err), err)
	}
	srv, _ = recorder(t, http.StatusBadRequest, nil, `{"user":"invalid","errors":["user identifier is not a valid user, group, or subscribed user key"],"status":0}`)
	err = sendOnce(t, channelAt(TypePushover, srv.URL), outage())
	if Retryable(err) || !strings.Contains(err.Error(), "user identifier is not a valid") {
		t.Errorf("pushover 400: %v", err)
	}
}

func TestPriorities(t *testing.T) {
	for _, c := range []struct {
		sev                     string
		pushover, gotify        int
		pagerDuty, opsgeniePrio string
	}{
		{"info", -1, 2, "info", "P5"},
		{"low", 0, 4, "warning", "P4"},
		{"medium", 0, 5, "warning", "P3"},
		{"high", 1, 8, "error", "P2"},
		{"catastrophic", 2, 10, "critical", "P1"},
	} {
		if got := pushoverPriority(Firing, c.sev); got != c.pushover {
			t.Errorf("pushover %s = %d; want %d", c.sev, got, c.pushover)
		}
		if got := gotifyPriority(Firing, c.sev); got != c.gotify {
			t.Errorf("gotify %s = %d; want %d", c.sev, got, c.gotify)
		}
		if got := pagerDutySeverity(c.sev); got != c.pagerDuty {
			t.Errorf("pagerduty %s = %s; want %s", c.sev, got, c.pagerDuty)
		}
		if got := opsgeniePriority(c.sev); got != c.opsgeniePrio {
			t.Errorf("opsgenie %s = %s; want %s", c.sev, got, c.opsgeniePrio)
		}
	}
	m := outage()
	m.Severity = "catastrophic"
	v := pushoverForm(Channel{Token: "t", User: "u"}, m)
	if v.Get("retry") != "60" || v.Get("expire") != "3600" {
		t.Errorf("an emergency needs retry and expire: %v", v)
	}
	if pushoverPriority(Resolved, "catastrophic") != 0 || gotifyPriority(Resolved, "catastrophic") != 4 {
		t.Error("a resolution must not page like an emergency")
	}
}

func TestAlertmanagerLabelNames(t *testing.T) {
	m := outage()
	m.Labels = map[string]string{"rack-id": "r1", "2nd": "x", "empty": "", "zone.name": "eu"}
	a := alertmanagerAlerts(m, time.Hour)[0]
	for k, want := range map[string]string{"rack_id": "r1", "_nd": "x", "zone_name": "eu"} {
		if a.Labels[k] != want {
			t.Errorf("label %s = %q; want %q (all: %v)", k, a.Labels[k], want, a.Labels)
		}
	}
	if _, ok := a.Labels["empty"]; ok {
		t.Error("an empty label value is kept; Alertmanager refuses it")
	}
	if got := a.EndsAt.Sub(m.Now); got != time.Hour {
		t.Errorf("endsAt - now = %v; want ends_after 1h", got)
	}
	if alertmanagerTarget("http://am:9093/api/v2/alerts/") != "http://am:9093/api/v2/alerts" {
		t.Error("a URL with the API path gets it twice")
	}
}

func TestValidateMore(t *testing.T) {
	for _, c := range []struct {
		ch   Channel
		want string
	}{
		{Channel{Name: "m", Type: TypeMatrix, Server: "https://matrix.org", Room: "#ops:matrix.org", Token: "t"}, "room must be a room ID"},
		{Channel{Name: "m", Type: TypeMatrix, Server: "https://matrix.org", Room: "!r:matrix.org"}, "token is required"},
		{Channel{Name: "p", Type: TypePushover, Token: "t"}, "user is required"},
		{Channel{Name: "p", Type: TypePushover, Token: "t t", User: "u"}, "must not contain spaces"},
		{Channel{Name: "pd", Type: TypePagerDuty}, "routing_key is required"},
		{Channel{Name: "og", Type: TypeOpsgenie, APIKey: "k", APIURL: "ftp://x"}, "api_url must start with"},
		{Channel{Name: "s", Type: TypeSignal, Server: "http://127.0.0.1:8080", Number: "0664", Recipients: []string{"+1"}}, "international form"},
		{Channel{Name: "s", Type: TypeSignal, Server: "http://127.0.0.1:8080", Number: "+43"}, "recipients is required"},
		{Channel{Name: "g", Type: TypeGotify, Server: "http://127.0.0.1:/"}, "token is required"},
		{Channel{Name: "g", Type: TypeGotify, Server: "http://127.0.0.1:/", Token: "t"}, "empty port"},
		{Channel{Name: "a", Type: TypeAlertmanager, URL: "http://127.0.0.1:9093", EndsAfter: -time.Hour}, "ends_after must not be negative"},
		{Channel{Name: "t", Type: TypeTeams, URL: "https://x", Room: "!r"}, "field room is not used by type teams"},
		{Channel{Name: "x", Type: "msteams"}, "type must be one of alertmanager, discord, googlechat, gotify"},
	} {
		err := c.ch.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s/%s: %v; want %q", c.ch.Type, c.ch.Name, err, c.want)
		}
	}
}

// TestMoreSecretsFromFiles: each new secret has its *_file twin.
func TestMoreSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string { return writeSecret(t, dir, name, v+"\n") }
	pd := Channel{Name: "pd", Type: TypePagerDuty, RoutingKeyFile: write("rk", "R0KEY")}
	og := Channel{Name: "og", Type: TypeOpsgenie, APIKeyFile: write("ak", "AKEY")}
	mx := Channel{Name: "mx", Type: TypeMatrix, Server: "https://m.example", Room: "!r:x", TokenFile: write("tk", "TOK")}
	for _, ch := range []*Channel{&pd, &og, &mx} {
		if key, err := ch.ReadSecrets(func(string) (string, bool) { return "", false }); err != nil {
			t.Fatalf("%s: %v (%s)", ch.Name, err, key)
		}
		if err := ch.Validate(); err != nil {
			t.Errorf("%s: %v", ch.Name, err)
		}
	}
	if pd.RoutingKey != "R0KEY" || og.APIKey != "AKEY" || mx.Token != "TOK" {
		t.Errorf("secrets read: %q %q %q", pd.RoutingKey, og.APIKey, mx.Token)
	}
}
