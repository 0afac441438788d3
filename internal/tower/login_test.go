package tower

import (
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hinomi/hinomi/internal/web"
)

// consoleSite is the console of a tower with users mika and ops, on its
// own clock and log.
func consoleSite(t *testing.T, proxies []string) (*webTower, http.Handler, func() string) {
	t.Helper()
	w := newWebTower(t)
	ops, err := bcrypt.GenerateFromPassword([]byte("ops own passphrase here"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := append(w.tw.cfg.Load().Console.Users, web.User{Name: "ops", PasswordHash: string(ops)})
	// The server's goroutines log to a file; the test reads it.
	logPath := filepath.Join(t.TempDir(), "tower.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	site, err := web.New(w.tw.Web(), web.Options{Users: users, Now: w.c.Now, TrustedProxies: proxies,
		Log: slog.New(slog.NewTextHandler(logFile, nil))})
	if err != nil {
		t.Fatal(err)
	}
	logs := func() string {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	return w, site.Handler(), logs
}

// signIn posts the login form from a client address (sent as
// X-Forwarded-For) and returns the status and Retry-After.
func signIn(t *testing.T, base, name, password, forwardedFor string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/console/login", strings.NewReader(url.Values{"name": {name}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func TestLoginDelayGrowsPerClientAndPerUser(t *testing.T) {
	w, h, logs := consoleSite(t, []string{"127.0.0.1/32", "::1"})
	srv := httptest.NewServer(h)
	defer srv.Close()
	const guess = "hunter2-guess"

	// One client: five free failures, then a wait that doubles.
	for i := range 5 {
		if code, _ := signIn(t, srv.URL, "mika", guess, "198.18.0.1"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, code)
		}
	}
	if code, retry := signIn(t, srv.URL, "mika", guess, "198.18.0.1"); code != http.StatusTooManyRequests || retry != "30" {
		t.Fatalf("sixth attempt: %d Retry-After %q, want 429 after 30 s", code, retry)
	}
	w.c.Set(w.c.Now().Add(31 * time.Second))
	if code, _ := signIn(t, srv.URL, "mika", guess, "198.18.0.1"); code != http.StatusUnauthorized {
		t.Fatalf("after the wait: %d, want the attempt checked (401)", code)
	}
	if code, retry := signIn(t, srv.URL, "mika", guess, "198.18.0.1"); code != http.StatusTooManyRequests || retry != "60" {
		t.Fatalf("after the seventh failure: %d Retry-After %q, want 429 after 60 s", code, retry)
	}

	// The user is limited whatever address the guesses come from, even
	// for the right password; another user is not.
	if code, _ := signIn(t, srv.URL, "mika", consolePassword, "198.18.0.2"); code != http.StatusTooManyRequests {
		t.Errorf("mika's right password from a new address while her failures wait: %d, want 429", code)
	}
	if code, _ := signIn(t, srv.URL, "ops", "ops own passphrase here", "198.18.0.2"); code != http.StatusSeeOther {
		t.Errorf("another user from a new address: %d, want signed in (303)", code)
	}
	// Names that are not users count against the client only.
	for range 6 {
		signIn(t, srv.URL, "nobody", guess, "198.18.0.3")
	}
	if code, _ := signIn(t, srv.URL, "nobody", guess, "198.18.0.3"); code != http.StatusTooManyRequests {
		t.Errorf("a client guessing names: %d, want 429", code)
	}
	w.c.Set(w.c.Now().Add(2 * time.Hour))
	if code, _ := signIn(t, srv.URL, "mika", consolePassword, "198.18.0.1"); code != http.StatusSeeOther {
		t.Errorf("mika after two quiet hours: %d, want signed in", code)
	}

	log := logs()
	for _, want := range []string{`msg="console sign-in failed" user=mika client=198.18.0.1`, `msg="console sign-in refused: too many failures" user=mika client=198.18.0.2`,
		`msg="console sign-in" user=ops client=198.18.0.2`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	for _, secret := range []string{guess, consolePassword, "ops own passphrase"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log shows a password (%q):\n%s", secret, log)
		}
	}
}

// A client that is not a trusted proxy cannot choose the address its
// failures count under.
func TestLoginLimitIgnoresForwardedForFromClients(t *testing.T) {
	_, h, _ := consoleSite(t, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for i := range 5 {
		// Two users by turns, so that neither reaches its own limit.
		signIn(t, srv.URL, []string{"mika", "ops"}[i%2], "x", "198.18.1."+string(rune('1'+i)))
	}
	if code, _ := signIn(t, srv.URL, "ops", "x", "198.18.1.9"); code != http.StatusTooManyRequests {
		t.Errorf("sixth failure with a new X-Forwarded-For from an untrusted client: %d, want 429", code)
	}
}

func TestSessionCookieSecureOverTLS(t *testing.T) {
	_, h, _ := consoleSite(t, nil)
	tlsSrv := httptest.NewTLSServer(h)
	defer tlsSrv.Close()
	plainSrv := httptest.NewServer(h) // the same console, also on plain HTTP
	defer plainSrv.Close()

	jar, _ := cookiejar.New(nil)
	c := tlsSrv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(tlsSrv.URL+"/console/login", url.Values{"name": {"mika"}, "password": {consolePassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "hinomi_session" {
			session = ck
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie over TLS: %+v, want Secure, HttpOnly, SameSite=Strict", session)
	}
	if code, _ := get(t, c, tlsSrv.URL+"/console/"); code != http.StatusOK {
		t.Errorf("console over TLS with the jar's cookie: %d, want 200", code)
	}
	// (A jar, like a browser, treats 127.0.0.1 as a secure origin even
	// over plain HTTP, so the attributes above are what the test checks.)

	// Over plain HTTP the cookie cannot be Secure (the browser would drop
	// it), and a client's own X-Forwarded-Proto changes nothing.
	for _, hdr := range []string{"", "https"} {
		if ck := loginCookie(t, plainSrv.URL, hdr); ck == nil || ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
			t.Errorf("session cookie over plain HTTP (X-Forwarded-Proto %q): %+v, want HttpOnly, SameSite=Strict, not Secure", hdr, ck)
		}
	}
	// Behind a trusted proxy that terminates TLS, it is Secure.
	_, hp, _ := consoleSite(t, []string{"127.0.0.0/8"})
	proxied := httptest.NewServer(hp)
	defer proxied.Close()
	if ck := loginCookie(t, proxied.URL, "https"); ck == nil || !ck.Secure {
		t.Errorf("session cookie behind a trusted TLS proxy: %+v, want Secure", ck)
	}
	if ck := loginCookie(t, proxied.URL, "http"); ck == nil || ck.Secure {
		t.Errorf("session cookie behind a trusted plain-HTTP proxy: %+v, want not Secure", ck)
	}
}

func loginCookie(t *testing.T, base, forwardedProto string) *http.Cookie {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/console/login", strings.NewReader(url.Values{"name": {"mika"}, "password": {consolePassword}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if forwardedProto != "" {
		req.Header.Set("X-Forwarded-Proto", forwardedProto)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "hinomi_session" {
			return ck
		}
	}
	return nil
}

// The console's forms take only form bodies: a text/plain POST, which any
// page may send, is refused before it is read, even with the session's
// cookie and CSRF token.
func TestConsoleRefusesTextPlainPosts(t *testing.T) {
	w := newWebTower(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(w.srv.URL+"/console/login", url.Values{"name": {"mika"}, "password": {consolePassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, page := get(t, c, w.srv.URL+"/console/")
	m := reCSRF.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the console:\n%s", page)
	}
	body := url.Values{"csrf": {m[1]}, "host": {"*"}, "for": {"2h"}}.Encode()
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/console/silence", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Origin", w.srv.URL)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain silence from the console's session: %d, want 415", resp.StatusCode)
	}
	w.tw.mu.Lock()
	n := len(w.tw.silences)
	w.tw.mu.Unlock()
	if n != 0 {
		t.Errorf("%d silences created, want none", n)
	}
}
