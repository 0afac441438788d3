package tower

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/web"
)

// webTower is a tower with its pages behind a real HTTP server.
type webTower struct {
	*policyTower
	srv *httptest.Server
}

const consolePassword = "correct horse battery"

func newWebTower(t *testing.T) *webTower { return newWebTowerWith(t, "") }

// newWebTowerWith is newWebTower with more configuration.
func newWebTowerWith(t *testing.T, extra string) *webTower {
	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := newPolicyTower(t, "console:\n  title: Example status\n  users:\n    - {name: mika, password_hash: '"+string(hash)+"'}\nroutes:\n  - {match: {}, channels: [ops]}\n"+
		// The tests feed results by hand (RecordProbe); the probes are
		// configured so that the tower keeps their alerts.
		"probes:\n  - {name: web, type: tcp, target: \"127.0.0.1:9\"}\n  - {name: api, type: tcp, target: \"127.0.0.1:9\"}\n  - {name: db-internal, type: tcp, target: \"127.0.0.1:9\"}\n"+extra)
	site, err := web.New(p.tw.Web(), web.Options{Title: "Example status", Users: p.tw.cfg.Load().Console.Users, Now: p.c.Now})
	if err != nil {
		t.Fatal(err)
	}
	p.tw.SetUI(site.Handler())
	mux := http.NewServeMux()
	mux.Handle("/api/", p.tw.Handler())
	mux.Handle("/", site.Handler())
	w := &webTower{policyTower: p, srv: httptest.NewServer(mux)}
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webTower) probe(name, group, status string, public bool, host string) {
	w.tw.RecordProbe(ProbeResult{Name: name, Group: group, Public: public, Status: status, Started: w.c.Now(), Duration: 42 * time.Millisecond, Message: "the page says \"Something went wrong\"", Host: host})
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStatusPageShowsOnlyPublic(t *testing.T) {
	w := newWebTower(t)
	w.report("pve1", hungFinding())
	w.probe("web", "Website", "up", true, "pve1")
	w.probe("db-internal", "Backend", "down", false, "pve1")
	w.at(time.Second)
	code, body := get(t, http.DefaultClient, w.srv.URL+"/")
	if code != 200 || !strings.Contains(body, "web") || !strings.Contains(body, "Website") {
		t.Fatalf("status page: %d\n%s", code, body)
	}
	for _, secret := range []string{"db-internal", "pve1", "nfs4 mount", "Backend"} {
		if strings.Contains(body, secret) {
			t.Errorf("the public status page shows %q", secret)
		}
	}
	if code, b := get(t, http.DefaultClient, w.srv.URL+"/badge/web.svg"); code != 200 || !strings.Contains(b, "<svg") || !strings.Contains(b, "up") {
		t.Errorf("badge: %d %s", code, b)
	}
	if code, _ := get(t, http.DefaultClient, w.srv.URL+"/badge/db-internal.svg"); code != 404 {
		t.Errorf("badge of a private service: %d, want 404", code)
	}
}

func hungFinding() finding.Finding {
	return finding.Finding{Key: "FM-C6//mnt/pve/nfs", Mode: "FM-C6", Severity: finding.High, Subject: "/mnt/pve/nfs", Summary: "nfs4 mount /mnt/pve/nfs hangs", Runbook: "FM-C6"}
}

// loginFailuresForTest is the console's limit of failed sign-ins per
// address in five minutes.
const loginFailuresForTest = 5

var reCSRF = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestConsoleRefusesAnonymousAndForgedRequests(t *testing.T) {
	w := newWebTower(t)
	w.report("pve1")
	w.at(31 * time.Second) // pve1 silent: an alert to acknowledge
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if code, _ := get(t, anon, w.srv.URL+"/console/"); code != http.StatusSeeOther {
		t.Errorf("anonymous console: %d, want a redirect to the login", code)
	}
	resp, err := anon.PostForm(w.srv.URL+"/console/ack", url.Values{"key": {"heartbeat/pve1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous ack: %d, want 401", resp.StatusCode)
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err = c.PostForm(w.srv.URL+"/console/login", url.Values{"name": {"mika"}, "password": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", resp.StatusCode)
	}
	resp, err = c.PostForm(w.srv.URL+"/console/login", url.Values{"name": {"mika"}, "password": {consolePassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	code, page := get(t, c, w.srv.URL+"/console/")
	m := reCSRF.FindStringSubmatch(page)
	if code != 200 || m == nil || !strings.Contains(page, "Host pve1 is silent") {
		t.Fatalf("console after sign-in: %d\n%s", code, page)
	}
	csrf := m[1]
	post := func(form url.Values, origin string) int {
		req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/console/ack", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		nr := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := nr.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(url.Values{"key": {"heartbeat/pve1"}}, w.srv.URL); code != http.StatusForbidden {
		t.Errorf("ack without the CSRF token: %d, want 403", code)
	}
	if code := post(url.Values{"key": {"heartbeat/pve1"}, "csrf": {csrf}}, "https://evil.example"); code != http.StatusForbidden {
		t.Errorf("ack from another site: %d, want 403", code)
	}
	if code := post(url.Values{"key": {"heartbeat/pve1"}, "csrf": {csrf}, "comment": {"on it"}}, w.srv.URL); code != http.StatusSeeOther {
		t.Errorf("ack from the console: %d, want 303", code)
	}
	if a := w.tw.alerts["heartbeat/pve1"]; a.Ack == nil || a.Ack.By != "mika" {
		t.Errorf("alert not acknowledged by the signed-in user: %+v", a.Ack)
	}
}

func TestLoginRateLimit(t *testing.T) {
	w := newWebTower(t)
	var last int
	for range loginFailuresForTest + 1 {
		resp, err := http.PostForm(w.srv.URL+"/console/login", url.Values{"name": {"mika"}, "password": {"guess"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp.StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("after %d failures: %d, want 429", loginFailuresForTest, last)
	}
	// Even the right password is refused while the limit holds.
	resp, err := http.PostForm(w.srv.URL+"/console/login", url.Values{"name": {"mika"}, "password": {consolePassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password while limited: %d", resp.StatusCode)
	}
}
