package tower

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/web"
)

const apiToken = "api-token-0123456789abcdef"

// liveTower is a tower serving its API and pages on a real 127.0.0.1
// port, as `hinomi tower` does, with a clock the test moves.
type liveTower struct {
	tw  *Tower
	url string
	c   *clock
}

// runListening listens and runs tw until the test ends, and returns the
// address it listens on.
func runListening(t *testing.T, tw *Tower) net.Addr {
	t.Helper()
	addr, err := tw.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return addr
}

func startLiveTower(t *testing.T, extra string) *liveTower {
	t.Helper()
	yaml := "listen: 127.0.0.1:0\ndata_dir: " + t.TempDir() + "\ngrace: 1s\nagents:\n  - {name: pve1, token: " + tokenA + "}\n" + extra
	cfg, err := ParseConfig([]byte(yaml), "tower.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
	tw, err := newTestTower(t, cfg, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	site, err := web.New(tw.Web(), web.Options{Users: cfg.Console.Users, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	tw.SetUI(site.Handler())
	addr := runListening(t, tw)
	return &liveTower{tw: tw, url: "http://" + addr.String(), c: c}
}

// firing moves the clock on past pve1's grace (it never reported) until
// the tower's engine fires its heartbeat alert.
func (l *liveTower) firing(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		l.tw.mu.Lock()
		a := l.tw.alerts["heartbeat/pve1"]
		ok := a != nil && a.State.Status == alerting.Firing
		l.tw.mu.Unlock()
		if ok {
			return
		}
		l.c.Set(l.c.Now().Add(2 * time.Second))
		l.tw.kick()
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	t.Fatal("heartbeat/pve1 did not fire")
}

func (l *liveTower) do(t *testing.T, method, path, contentType, token, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, l.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (l *liveTower) silencesStored(t *testing.T) int {
	t.Helper()
	var n int
	if err := dbOf(l.tw).QueryRow("SELECT count(*) FROM silences").Scan(&n); err != nil {
		t.Fatal(err)
	}
	l.tw.mu.Lock()
	n += len(l.tw.silences)
	l.tw.mu.Unlock()
	return n
}

func (l *liveTower) acked(key string) bool {
	l.tw.mu.Lock()
	defer l.tw.mu.Unlock()
	a := l.tw.alerts[key]
	return a != nil && a.Ack != nil
}

const (
	evilSilence = `{"match":{"host":"*"},"ends":"2026-11-26T03:00:00Z","created_by":"evil","comment":"x"}`
	evilAck     = `{"key":"heartbeat/pve1","by":"evil"}`
)

// The attack a page on any site can make in a visitor's browser: a
// "simple" cross-site POST (text/plain, no preflight) with no credential.
func TestCrossSiteTextPlainPostChangesNothing(t *testing.T) {
	for _, tc := range []struct{ name, extra string }{
		{"no api_token", ""},
		{"api_token", "api_token: " + apiToken + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startLiveTower(t, tc.extra)
			l.firing(t)
			for _, ep := range []struct{ path, body string }{
				{"/api/v1/silences", evilSilence},
				{"/api/v1/alerts/ack", evilAck},
			} {
				code, body := l.do(t, http.MethodPost, ep.path, "text/plain;charset=UTF-8", "", ep.body,
					"Origin", "https://evil.example", "Referer", "https://evil.example/x.html")
				if code != http.StatusUnauthorized && code != http.StatusForbidden && code != http.StatusUnsupportedMediaType {
					t.Errorf("cross-site POST %s: %d %s, want 401, 403 or 415", ep.path, code, body)
				}
				// A JSON body without the token is no better.
				if code, body := l.do(t, http.MethodPost, ep.path, "application/json", "", ep.body); code != http.StatusUnauthorized {
					t.Errorf("POST %s without a token: %d %s, want 401", ep.path, code, body)
				}
			}
			if code, body := l.do(t, http.MethodDelete, "/api/v1/silences/x", "", "", ""); code != http.StatusUnauthorized {
				t.Errorf("DELETE without a token: %d %s, want 401", code, body)
			}
			if n := l.silencesStored(t); n != 0 {
				t.Errorf("%d silences exist after the attack, want none", n)
			}
			if l.acked("heartbeat/pve1") {
				t.Error("the alert was acknowledged by the attack")
			}
		})
	}
}

func TestAPIWithTokenTakesOnlyJSON(t *testing.T) {
	l := startLiveTower(t, "api_token: "+apiToken+"\n")
	l.firing(t)
	if code, body := l.do(t, http.MethodPost, "/api/v1/silences", "text/plain", apiToken, evilSilence); code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain silence with the token: %d %s, want 415", code, body)
	}
	if code, body := l.do(t, http.MethodPost, "/api/v1/alerts/ack", "application/x-www-form-urlencoded", apiToken, evilAck); code != http.StatusUnsupportedMediaType {
		t.Errorf("form ack with the token: %d %s, want 415", code, body)
	}
	if code, body := l.do(t, http.MethodPost, "/api/v1/silences", "application/json", "wrong-token-0123456789", evilSilence); code != http.StatusUnauthorized {
		t.Errorf("silence with a wrong token: %d %s, want 401", code, body)
	}
	if n := l.silencesStored(t); n != 0 || l.acked("heartbeat/pve1") {
		t.Fatalf("refused requests changed state: %d silences, acked %v", n, l.acked("heartbeat/pve1"))
	}
	if code, body := l.do(t, http.MethodPost, "/api/v1/silences", "application/json; charset=utf-8", apiToken, evilSilence); code != http.StatusCreated {
		t.Errorf("JSON silence with the token: %d %s, want 201", code, body)
	}
	if code, body := l.do(t, http.MethodPost, "/api/v1/alerts/ack", "application/json", apiToken, evilAck); code != http.StatusOK || !l.acked("heartbeat/pve1") {
		t.Errorf("JSON ack with the token: %d %s, want 200", code, body)
	}
}

func TestTowerRefusesOpenAddressWithoutToken(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:7450", ":7450", "[::]:7450", "192.0.2.10:7450"} {
		_, err := ParseConfig([]byte("listen: \""+listen+"\"\ndata_dir: /tmp/x\nagents: [{name: a, token: "+tokenA+"}]\n"), "tower.yaml")
		if err == nil || !strings.Contains(err.Error(), "listen") || !strings.Contains(err.Error(), "openssl rand -hex 32") || !strings.Contains(err.Error(), "api_token_file") {
			t.Errorf("listen %s without api_token: %v, want an error that says how to make a token", listen, err)
		}
		if _, err := ParseConfig([]byte("listen: \""+listen+"\"\napi_token: "+apiToken+"\ndata_dir: /tmp/x\nagents: [{name: a, token: "+tokenA+"}]\n"), "tower.yaml"); err != nil {
			t.Errorf("listen %s with api_token: %v", listen, err)
		}
	}
	for _, listen := range []string{"127.0.0.1:7450", "localhost:7450", "[::1]:7450"} {
		if _, err := ParseConfig([]byte("listen: \""+listen+"\"\ndata_dir: /tmp/x\nagents: [{name: a, token: "+tokenA+"}]\n"), "tower.yaml"); err != nil {
			t.Errorf("loopback %s without api_token: %v", listen, err)
		}
	}
	if _, err := ParseConfig([]byte("api_token: short\ndata_dir: /tmp/x\nagents: [{name: a, token: "+tokenA+"}]\n"), "tower.yaml"); err == nil || !strings.Contains(err.Error(), "api_token: too short") {
		t.Errorf("a short api_token: %v", err)
	}

	// Listen itself checks the address it binds (a host name in listen
	// cannot be judged from the file).
	cfg, err := ParseConfig([]byte("data_dir: "+t.TempDir()+"\nagents: [{name: a, token: "+tokenA+"}]\n"), "tower.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "0.0.0.0:0"
	tw, err := newTestTower(t, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tw.store.Close()
	if addr, err := tw.Listen(); err == nil || !strings.Contains(err.Error(), "api_token") {
		t.Errorf("Listen on 0.0.0.0 without api_token: %v %v, want an error", addr, err)
	}
}

func TestReadEndpointsAndMetricsNeedAToken(t *testing.T) {
	probes := "probes:\n  - {name: web, type: tcp, target: \"127.0.0.1:9\", public: true}\n  - {name: db-internal, type: tcp, target: \"10.9.8.7:5432\"}\n"
	l := startLiveTower(t, "api_token: "+apiToken+"\nmetrics: {token: metrics-token-0123456789}\n"+probes)
	for _, name := range []string{"web", "db-internal"} {
		l.tw.RecordProbe(ProbeResult{Name: name, Public: name == "web", Status: "down", Started: l.c.Now(), Duration: time.Millisecond})
	}
	for _, p := range []string{"/api/v1/probes", "/api/v1/hosts", "/api/v1/alerts", "/api/v1/findings", "/api/v1/silences", "/api/v1/incidents", "/api/v1/peers"} {
		if code, body := l.do(t, http.MethodGet, p, "", "", ""); code != http.StatusUnauthorized || strings.Contains(body, "10.9.8.7") {
			t.Errorf("anonymous GET %s: %d %s, want 401", p, code, body)
		}
	}
	if code, body := l.do(t, http.MethodGet, "/api/v1/probes", "", apiToken, ""); code != 200 || !strings.Contains(body, "10.9.8.7:5432") {
		t.Errorf("GET /api/v1/probes with the token: %d %s", code, body)
	}
	if code, body := l.do(t, http.MethodGet, "/healthz", "", "", ""); code != 200 {
		t.Errorf("/healthz: %d %s, want it open", code, body)
	}
	if code, body := l.do(t, http.MethodGet, "/metrics", "", "", ""); code != http.StatusUnauthorized || strings.Contains(body, "db-internal") {
		t.Errorf("anonymous /metrics: %d, want 401", code)
	}
	for _, tok := range []string{"metrics-token-0123456789", apiToken} {
		if code, body := l.do(t, http.MethodGet, "/metrics", "", tok, ""); code != 200 || !strings.Contains(body, `probe="db-internal"`) {
			t.Errorf("/metrics with a token: %d, want every probe", code)
		}
	}

	// metrics.public: anyone may scrape, and sees only public probes.
	pub := startLiveTower(t, "metrics: {public: true}\n"+probes)
	for _, name := range []string{"web", "db-internal"} {
		pub.tw.RecordProbe(ProbeResult{Name: name, Public: name == "web", Status: "down", Started: pub.c.Now(), Duration: time.Millisecond})
	}
	code, body := pub.do(t, http.MethodGet, "/metrics", "", "", "")
	if code != 200 || !strings.Contains(body, `hinomi_probe_up{group="",probe="web"} 0`) || strings.Contains(body, "db-internal") || !strings.Contains(body, "hinomi_tower_hosts_silent") {
		t.Errorf("public /metrics: %d, want the public probe and the tower's own series only\n%s", code, body)
	}
	if code, _ := pub.do(t, http.MethodGet, "/api/v1/probes", "", "", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/probes on a tower without api_token: %d, want 401", code)
	}
}
