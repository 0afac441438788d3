package notify

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestExampleConfig builds a sender from every entry of the examples
// that docs/notifications.md shows.
func TestExampleConfig(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "channels.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cfg struct {
		Notify []Channel `yaml:"notify"`
	}
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	// The examples read some secrets as a systemd unit hands them over.
	creds := t.TempDir()
	for _, f := range []string{"matrix_token", "teams_url", "pagerduty_key"} {
		v := "R0SECRETexample"
		if f == "teams_url" {
			v = "https://example.webhook.office.com/workflows/x"
		}
		writeSecret(t, creds, f, v+"\n")
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	t.Setenv("OPSGENIE_API_KEY", "eb243592-faa2-4ba2-a551q-1afdf565c889")
	types := map[string]bool{}
	for _, ch := range cfg.Notify {
		s, err := New(ch, nil)
		if err != nil {
			t.Errorf("%s: %v", ch.Name, err)
			continue
		}
		if s.Name() != ch.Name {
			t.Errorf("Name() = %q; want %q", s.Name(), ch.Name)
		}
		types[ch.Type] = true
	}
	for _, typ := range append(httpTypes, TypeSMTP) {
		if !types[typ] {
			t.Errorf("no example of type %s", typ)
		}
	}
}

func TestValidate(t *testing.T) {
	smtp := func(edit func(*Channel)) Channel {
		c := Channel{Name: "mail", Type: TypeSMTP, Host: "smtp.example.net", From: "hinomi@example.net",
			To: []string{"oncall@example.net"}, Username: "u", Password: "p"}
		edit(&c)
		return c
	}
	tests := []struct {
		name string
		ch   Channel
		want string // in the error
	}{
		{"no name", Channel{Type: TypeDiscord, URL: "https://x"}, "name is required"},
		{"unknown type", Channel{Name: "x", Type: "pager"}, "type must be one of"},
		{"no type", Channel{Name: "x"}, "type must be one of"},
		{"webhook without url", Channel{Name: "x", Type: TypeWebhook}, "url is required"},
		{"webhook ftp url", Channel{Name: "x", Type: TypeWebhook, URL: "ftp://host/x"}, "url must start with https://"},
		{"webhook url without host", Channel{Name: "x", Type: TypeWebhook, URL: "https:///x"}, "url has no host"},
		{"webhook empty port", Channel{Name: "x", Type: TypeWebhook, URL: "http://127.0.0.1:/hook"}, `url has an empty port after "127.0.0.1:"`},
		{"webhook port 0", Channel{Name: "x", Type: TypeWebhook, URL: "http://127.0.0.1:0/hook"}, "url: port 0 is not a TCP port"},
		{"webhook port too big", Channel{Name: "x", Type: TypeWebhook, URL: "http://127.0.0.1:65536/hook"}, "url: port 65536"},
		{"webhook port only", Channel{Name: "x", Type: TypeWebhook, URL: "http://:9000/hook"}, "url has no host"},
		{"discord empty port", Channel{Name: "x", Type: TypeDiscord, URL: "https://discord.com:/api/webhooks/1/SECRET"}, "url has an empty port"},
		{"slack empty port", Channel{Name: "x", Type: TypeSlack, URL: "https://hooks.slack.com:/services/SECRET"}, "url has an empty port"},
		{"telegram api_url empty port", Channel{Name: "x", Type: TypeTelegram, BotToken: "1:a", ChatID: "1", APIURL: "http://127.0.0.1:/"}, "api_url has an empty port"},
		{"ntfy server empty port", Channel{Name: "x", Type: TypeNtfy, Topic: "t", Server: "https://ntfy.lan:"}, "server has an empty port"},
		{"ntfy server bad port", Channel{Name: "x", Type: TypeNtfy, Topic: "t", Server: "https://ntfy.lan:99999"}, "server: port 99999"},
		{"smtp host with port", smtp(func(c *Channel) { c.Host = "smtp.example.net:587" }), "with the port in port"},
		{"smtp host as URL", smtp(func(c *Channel) { c.Host = "smtp://smtp.example.net" }), "bare name or address"},
		{"webhook bad header", Channel{Name: "x", Type: TypeWebhook, URL: "https://h", Headers: map[string]string{"Bad Name": "v"}}, "headers"},
		{"webhook header injection", Channel{Name: "x", Type: TypeWebhook, URL: "https://h", Headers: map[string]string{"X-A": "v\r\nX-B: w"}}, "headers: the value of X-A"},
		{"webhook content-type", Channel{Name: "x", Type: TypeWebhook, URL: "https://h", Headers: map[string]string{"content-type": "text/plain"}}, "cannot be overridden"},
		{"discord with a topic", Channel{Name: "x", Type: TypeDiscord, URL: "https://h", Topic: "t"}, "field topic is not used by type discord"},
		{"slack without url", Channel{Name: "x", Type: TypeSlack}, "url is required"},
		{"telegram without token", Channel{Name: "x", Type: TypeTelegram, ChatID: "1"}, "bot_token is required"},
		{"telegram token with slash", Channel{Name: "x", Type: TypeTelegram, BotToken: "1:a/b", ChatID: "1"}, "bot_token"},
		{"telegram without chat", Channel{Name: "x", Type: TypeTelegram, BotToken: "1:a"}, "chat_id is required"},
		{"telegram bad api_url", Channel{Name: "x", Type: TypeTelegram, BotToken: "1:a", ChatID: "1", APIURL: "api.telegram.org"}, "api_url"},
		{"telegram with url", Channel{Name: "x", Type: TypeTelegram, BotToken: "1:a", ChatID: "1", URL: "https://h"}, "field url is not used"},
		{"ntfy without topic", Channel{Name: "x", Type: TypeNtfy}, "topic is required"},
		{"ntfy topic with slash", Channel{Name: "x", Type: TypeNtfy, Topic: "a/b"}, "topic"},
		{"ntfy bad server", Channel{Name: "x", Type: TypeNtfy, Topic: "t", Server: "ntfy.sh"}, "server must start with"},
		{"smtp without host", smtp(func(c *Channel) { c.Host = "" }), "host is required"},
		{"smtp bad port", smtp(func(c *Channel) { c.Port = 70000 }), "port 70000"},
		{"smtp without from", smtp(func(c *Channel) { c.From = "" }), "from is required"},
		{"smtp bad from", smtp(func(c *Channel) { c.From = "not an address" }), "from \"not an address\""},
		{"smtp without to", smtp(func(c *Channel) { c.To = nil }), "to needs at least one address"},
		{"smtp bad to", smtp(func(c *Channel) { c.To = append(c.To, "nobody") }), "to[1]"},
		{"smtp username alone", smtp(func(c *Channel) { c.Password = "" }), "username and password"},
		{"smtp bad tls", smtp(func(c *Channel) { c.TLS = "ssl" }), "tls must be starttls, tls or none"},
		{"smtp password in clear", smtp(func(c *Channel) { c.TLS = SMTPNone }), "tls: starttls or tls"},
		{"smtp with bot_token", smtp(func(c *Channel) { c.BotToken = "x" }), "field bot_token is not used by type smtp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.ch, nil)
			if err == nil {
				t.Fatalf("New accepted %+v", tt.ch)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if tt.ch.Name != "" && !strings.Contains(err.Error(), `"`+tt.ch.Name+`"`) {
				t.Errorf("error %q does not name the channel", err)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestValidateCAFile(t *testing.T) {
	ch := Channel{Name: "mail", Type: TypeSMTP, Host: "h", From: "a@b.c", To: []string{"d@e.f"},
		CAFile: filepath.Join(t.TempDir(), "missing.pem")}
	if _, err := New(ch, nil); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("missing ca_file: err = %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	ch.CAFile = junk
	if _, err := New(ch, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("junk ca_file: err = %v", err)
	}
}

func TestStateText(t *testing.T) {
	for _, s := range []State{Firing, Repeat, Resolved} {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("%s round-trips to %v (%v)", s, back, err)
		}
	}
	if _, err := State(0).MarshalText(); err == nil {
		t.Error("state 0 marshalled")
	}
	var s State
	if err := s.UnmarshalText([]byte("exploded")); err == nil {
		t.Error("unknown state accepted")
	}
}

// TestDocsQuoteGolden keeps docs/notifications.md honest: its example
// texts are the golden files, and its YAML is testdata/channels.yaml.
func TestDocsQuoteGolden(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "notifications.md"))
	if err != nil {
		t.Skipf("docs not beside the package: %v", err)
	}
	for _, f := range []string{"text/resolved-blip.txt", "text/resolved-long.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), strings.TrimRight(string(b), "\n")) {
			t.Errorf("docs/notifications.md does not quote testdata/%s as it is now", f)
		}
	}
	y, err := os.ReadFile(filepath.Join("testdata", "channels.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(y), "notify:\n")
	if !strings.Contains(string(doc), rest) {
		t.Errorf("docs/notifications.md does not show testdata/channels.yaml as it is now")
	}
}

func TestChannelStringHidesSecrets(t *testing.T) {
	ch := channelAt(TypeTelegram, "https://api.telegram.org")
	for _, f := range []string{"%v", "%+v", "%s"} {
		if got := fmt.Sprintf(f, ch); strings.Contains(got, "SECRET") {
			t.Errorf("%s of a Channel leaks the token: %s", f, got)
		}
	}
	if _, err := New(Channel{Name: "mail", Type: TypeSMTP, Host: "h", From: "a@b.c", To: []string{"d@e.f"}, CAFile: "/nonexistent"}, nil); err == nil {
		t.Error("New accepted a missing ca_file")
	}
}
