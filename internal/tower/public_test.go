package tower

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/web"
)

// A real tower probes real failing servers: its public pages (status page,
// public incidents, badges) say why each service fails in plain words and
// never name a target's address or port; the console keeps the detail.
func TestPublicPagesShowPlainReasonsOnly(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream "+r.Host+" failed", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	banner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<p>Something went wrong</p>")
	}))
	t.Cleanup(banner.Close)
	// The refused port is taken last: a port just closed is the kernel's
	// next pick for a listener asking for any port.
	refused := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		return addr
	}()
	targets := []string{refused, silent.Addr().String(), failing.Listener.Addr().String(), banner.Listener.Addr().String()}

	cfg, err := ParseConfig([]byte(`
data_dir: `+t.TempDir()+`
listen: 127.0.0.1:0
agents:
  - {name: pve1, token: `+tokenA+`}
alerts: {never_reported: false}
probes:
  - {name: shop, type: http, target: "http://`+refused+`/cart", interval: 1s, public: true}
  - {name: db, type: tcp, target: "`+refused+`", interval: 1s, public: true}
  - {name: hang, type: http, target: "http://`+silent.Addr().String()+`/", interval: 1s, timeout: 500ms, public: true}
  - {name: api, type: http, target: "`+failing.URL+`/v1", interval: 1s, public: true}
  - {name: login, type: http, target: "`+banner.URL+`", interval: 1s, public: true, conditions: ['[BODY] contains "ok"']}
`), "public.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tw, err := newTestTower(t, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	site, err := web.New(tw.Web(), web.Options{Title: "Status"})
	if err != nil {
		t.Fatal(err)
	}
	tw.SetUI(site.Handler())
	addr := runListening(t, tw)
	base := "http://" + addr.String()

	want := map[string]string{
		"shop":  "connection refused",
		"db":    "connection refused",
		"hang":  "timed out after 500 ms",
		"api":   "HTTP 500",
		"login": `body does not contain &#34;ok&#34;`,
	}
	var page string
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, page = get(t, http.DefaultClient, base+"/")
		missing := ""
		for name, reason := range want {
			if !strings.Contains(page, reason) {
				missing = name + ": " + reason
			}
		}
		// Two probes fail with the same plain reason: the page alone does
		// not show that both have run.
		ran := 0
		if svcs, err := tw.Web().Services(t.Context(), time.Now(), false); err == nil {
			for _, s := range svcs {
				if want[s.Name] != "" && len(s.Recent) > 0 {
					ran++
				}
			}
		}
		if missing == "" && ran == len(want) && strings.Contains(page, "not working") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status page never showed %s (and an open incident):\n%s", missing, page)
		}
		time.Sleep(100 * time.Millisecond) // polling the page, not waiting for a state
	}
	pages := map[string]string{"/": page}
	for name := range want {
		_, pages["/badge/"+name+".svg"] = get(t, http.DefaultClient, base+"/badge/"+name+".svg")
	}
	for path, body := range pages {
		for _, target := range targets {
			host, port, _ := net.SplitHostPort(target)
			if strings.Contains(body, host) || regexp.MustCompile(`\b`+port+`\b`).MatchString(body) {
				t.Errorf("public page %s names the target %s:\n%s", path, target, body)
			}
		}
		for _, raw := range []string{"dial tcp", "[CONNECTED]", "[STATUS]", "[BODY]", "http://127", "context deadline"} {
			if strings.Contains(body, raw) {
				t.Errorf("public page %s shows %q", path, raw)
			}
		}
	}

	// The console (and notifications, from the same message) keep the detail.
	svcs, err := tw.Web().Services(t.Context(), time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	detail := map[string]string{}
	for _, s := range svcs {
		detail[s.Name] = s.Message
		if len(s.Recent) == 0 {
			t.Errorf("console view of %s has no recent results", s.Name)
		}
	}
	for name, part := range map[string]string{
		"shop": refused, "db": refused, "hang": "timed out after 500ms", "api": "[STATUS] < 400: was 500", "login": `[BODY] contains "ok": body did not contain it`,
	} {
		if !strings.Contains(detail[name], part) {
			t.Errorf("console message of %s = %q; want it to contain %q", name, detail[name], part)
		}
	}
}
