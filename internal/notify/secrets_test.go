package notify

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSecret(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"CREDENTIALS_DIRECTORY": dir, "HOOK_TOKEN": "tok-from-env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	writeSecret(t, dir, "lf", "s3cret\n")
	writeSecret(t, dir, "crlf", "s3cret\r\n\r\n")
	writeSecret(t, dir, "inner", "two words\n")
	writeSecret(t, dir, "empty", "\n")
	for _, tc := range []struct {
		name, value, file, want, wantErr string
	}{
		{"value", "plain", "", "plain", ""},
		{"file with newline", "", dir + "/lf", "s3cret", ""},
		{"file with CRLF lines", "", dir + "/crlf", "s3cret", ""},
		{"file keeps inner spaces", "", dir + "/inner", "two words", ""},
		{"path from the environment", "", "${CREDENTIALS_DIRECTORY}/lf", "s3cret", ""},
		{"value from the environment", "Bearer ${HOOK_TOKEN}", "", "Bearer tok-from-env", ""},
		{"both", "x", dir + "/lf", "", "password_file: set either password or password_file, not both"},
		{"missing file", "", dir + "/nope", "", "password_file: cannot read the secret file " + dir + "/nope: no such file or directory"},
		{"unreadable file", "", dir, "", "password_file: cannot read the secret file " + dir + ": is a directory"},
		{"empty file", "", dir + "/empty", "", "password_file: the secret file " + dir + "/empty is empty"},
		{"unset variable", "${NOT_SET}", "", "", "password: the environment variable NOT_SET is not set"},
		{"unset variable in a path", "", "${NOT_SET}/x", "", "password_file: the environment variable NOT_SET is not set"},
	} {
		got, err := Secret("password", tc.value, tc.file, lookup)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%s: %q, %v; want error %q", tc.name, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// Every channel type's secrets can come from files: the sender uses what
// the files hold, and New reports a bad file by its key.
func TestChannelSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	srv, reqs := recorder(t, http.StatusOK, nil, `{"ok":true}`)
	for _, typ := range httpTypes {
		ch := channelAt(typ, srv.URL)
		switch typ {
		case TypeWebhook:
			ch.URLFile = writeSecret(t, dir, "webhook_url", ch.URL+"\n")
			ch.BearerTokenFile = writeSecret(t, dir, "webhook_bearer", ch.BearerToken+"\n")
			ch.URL, ch.BearerToken = "", ""
		case TypeDiscord, TypeSlack:
			ch.URLFile = writeSecret(t, dir, typ+"_url", ch.URL+"\n")
			ch.URL = ""
		case TypeTelegram:
			ch.BotTokenFile = writeSecret(t, dir, "bot_token", ch.BotToken+"\n")
			ch.BotToken = ""
		case TypeNtfy:
			ch.TokenFile = writeSecret(t, dir, "ntfy_token", ch.Token+"\n")
			ch.Token = ""
		}
		if err := sendOnce(t, ch, outage()); err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		got := <-reqs
		want := channelAt(typ, srv.URL)
		switch typ {
		case TypeWebhook:
			if got.Path != "/hooks/hinomi" || got.Header.Get("Authorization") != "Bearer s3cret" {
				t.Errorf("webhook from files: %s %q", got.Path, got.Header.Get("Authorization"))
			}
		case TypeDiscord, TypeSlack:
			if srv.URL+got.Path != want.URL {
				t.Errorf("%s from a file: posted to %s, want %s", typ, got.Path, want.URL)
			}
		case TypeTelegram:
			if got.Path != "/bot"+want.BotToken+"/sendMessage" {
				t.Errorf("telegram from a file: %s", got.Path)
			}
		case TypeNtfy:
			if got.Header.Get("Authorization") != "Bearer "+want.Token {
				t.Errorf("ntfy from a file: %q", got.Header.Get("Authorization"))
			}
		}
	}
	mail := Channel{Name: "mail", Type: TypeSMTP, Host: "127.0.0.1", Port: 2525, From: "a@b.c", To: []string{"d@e.f"}, Username: "u",
		PasswordFile: writeSecret(t, dir, "smtp_password", "SECRET-smtp\n")}
	if _, err := mail.ReadSecrets(os.LookupEnv); err != nil || mail.Password != "SECRET-smtp" || mail.PasswordFile != "" {
		t.Errorf("smtp password_file: %q %v", mail.Password, err)
	}

	for _, tc := range []struct {
		ch      Channel
		key     string
		wantErr string
	}{
		{Channel{Name: "ops", Type: TypeWebhook, URLFile: dir + "/missing"}, "url_file", `notify channel "ops" (webhook): url_file: cannot read the secret file ` + dir + "/missing: no such file or directory"},
		{Channel{Name: "ops", Type: TypeWebhook, URL: "https://h/x", URLFile: dir + "/webhook_url"}, "url_file", "set either url or url_file"},
		{Channel{Name: "ops", Type: TypeWebhook, URL: "https://h/x", PasswordFile: dir + "/smtp_password"}, "", "field password_file is not used by type webhook"},
	} {
		key, err := tc.ch.ReadSecrets(os.LookupEnv)
		if err == nil {
			_, err = New(tc.ch, nil)
		}
		if err == nil || key != tc.key || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%+v: key %q, %v; want %q, %q", tc.ch, key, err, tc.key, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}
