package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTowerCheckRejectsBadURLs: `hinomi tower --check` refuses a URL
// with an empty port (http://127.0.0.1:/hook would go to port 80), in
// every URL-valued setting.
func TestTowerCheckRejectsBadURLs(t *testing.T) {
	base := "data_dir: /tmp/hinomi-check\nagents: [{name: pve1, token: tok-check-aaaaaaaaaaaa}]\n"
	for _, tc := range []struct{ yaml, want string }{
		{"channels: [{name: ops, type: webhook, url: \"http://127.0.0.1:/hook\"}]\n", `channels.0: notify channel "ops" (webhook): url has an empty port`},
		{"channels: [{name: chat, type: discord, url: \"https://discord.com:/api/webhooks/1/abc\"}]\n", `url has an empty port`},
		{"channels: [{name: tg, type: telegram, bot_token: \"1:a\", chat_id: \"1\", api_url: \"http://127.0.0.1:70000\"}]\n", `api_url: port 70000 is not a TCP port`},
		{"channels: [{name: phone, type: ntfy, topic: t, server: \"https://ntfy.lan:\"}]\n", `server has an empty port`},
		{"url: \"http://tower.lan:/\"\n", `url: has an empty port`},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "tower.yaml")
		if err := os.WriteFile(path, []byte(base+tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := run(t.Context(), []string{"tower", "--check", "--config", path}, &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), tc.want) || !strings.Contains(errb.String(), "tower.yaml") {
			t.Errorf("--check of %q: exit %d, stderr %q, want an error with %q", tc.yaml, code, errb.String(), tc.want)
		}
		if strings.Contains(errb.String(), "abc") {
			t.Errorf("--check echoes the webhook's secret path: %s", errb.String())
		}
	}
}
