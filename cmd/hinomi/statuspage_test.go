package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestStatusPageExtras: a real tower's badges (state, uptime, response
// time) and its Atom feed, once a public service has results and an
// incident.
func TestStatusPageExtras(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer app.Close()
	dir := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
console: {title: Example services}
probes:
  - {name: shop, type: http, target: %s/, interval: 1s, public: true}
`, addr, filepath.Join(dir, "tower"), app.URL)
	path := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", path)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	page := waitStatusPage(t, addr, map[string]string{"shop": "down"}, 20*time.Second)
	if !strings.Contains(page, `type="application/atom+xml"`) {
		t.Errorf("the page does not link its feed")
	}
	get := func(p string) (int, string, string) {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for p, want := range map[string]string{
		"/badge/shop.svg":      ">down</text>",
		"/badge/shop/uptime":   ">0.00%</text>",
		"/badge/shop/response": " ms</text>",
	} {
		if code, ct, body := get(p); code != 200 || ct != "image/svg+xml" || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s %s; want %q", p, code, ct, body, want)
		}
	}
	// The incident the outage opened is in the feed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, ct, body := get("/feed.atom")
		var f struct {
			Entries []struct {
				Title string `xml:"title"`
			} `xml:"entry"`
		}
		if code != 200 || !strings.HasPrefix(ct, "application/atom+xml") || xml.Unmarshal([]byte(body), &f) != nil {
			t.Fatalf("feed: %d %s\n%s", code, ct, body)
		}
		if len(f.Entries) > 0 && strings.Contains(f.Entries[0].Title, "shop") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no incident about shop in the feed within 20s:\n%s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
