package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestConsoleSendsTestMessage: an operator signs in to the console and
// presses "Send a test message" for a channel; the channel's server gets
// it, and a channel that fails says why on the console.
func TestConsoleSendsTestMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	var mu sync.Mutex
	var bodies []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer recv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	deadURL := closed.URL
	closed.Close()
	hash, err := bcrypt.GenerateFromPassword([]byte("a passphrase for the test"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
console:
  title: Example
  users: [{name: mika, password_hash: '%s'}]
channels:
  - {name: chat, type: mattermost, url: %s/hooks/x}
  - {name: gone, type: gotify, server: %s, token: t}
probes:
  - {name: shop, type: tcp, target: "127.0.0.1:9", interval: 1m}
`, addr, filepath.Join(dir, "tower"), hash, recv.URL, deadURL)
	path := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", path)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	base := "http://" + addr
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(base+"/console/login", url.Values{"name": {"mika"}, "password": {"a passphrase for the test"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil || !strings.Contains(string(page), "Send a test message") {
		t.Fatalf("the console after signing in has no test button:\n%s", page)
	}
	press := func(channel string) string {
		t.Helper()
		resp, err := c.PostForm(base+"/console/channels/test", url.Values{"csrf": {string(m[1])}, "name": {channel}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if out := press("chat"); !strings.Contains(out, "Done: test message sent to chat.") {
		t.Errorf("after pressing for chat:\n%s", out)
	}
	mu.Lock()
	got := strings.Join(bodies, "\n")
	mu.Unlock()
	if !strings.Contains(got, "Test message from hinomi") || !strings.Contains(got, "Sent from the console by mika") {
		t.Errorf("the channel's server got: %s", got)
	}
	if out := press("gone"); !strings.Contains(out, "Failed: test message to gone:") || !strings.Contains(out, "connection refused") {
		t.Errorf("a dead channel:\n%s", out)
	}
	// Without the session's CSRF token the button does nothing.
	resp, err = c.PostForm(base+"/console/channels/test", url.Values{"name": {"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Errorf("a POST without the CSRF token: %d", resp.StatusCode)
	}
}
