package probe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCert makes a self-signed certificate for 127.0.0.1, localhost and names valid until
// notAfter.
func testCert(t testing.TB, notBefore, notAfter time.Time, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "hinomi probe test"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		DNSNames:              append([]string{"localhost"}, names...),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func tlsServer(t *testing.T, cert tls.Certificate, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // rejected handshakes are the point of some tests
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func httpServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func run(t *testing.T, s *Spec, env *Env) Result {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	r := Run(context.Background(), s, env)
	t.Logf("%s: %s error=%q failed=%q values=%v", s.Name, r.Status, r.Error, r.Failed, r.Values)
	return r
}

func wantStatus(t *testing.T, r Result, want Status) {
	t.Helper()
	if r.Status != want {
		t.Errorf("status %s; want %s (error %q, failed %q)", r.Status, want, r.Error, r.Failed)
	}
}

func wantFailed(t *testing.T, r Result, want ...string) {
	t.Helper()
	if strings.Join(r.Failed, "\n") != strings.Join(want, "\n") {
		t.Errorf("failed:\n%s\nwant:\n%s", strings.Join(r.Failed, "\n"), strings.Join(want, "\n"))
	}
}

func TestHTTPErrorPageWith200IsDown(t *testing.T) {
	srv := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<html><body><div class=banner>Something went wrong</div></body></html>")
	})
	r := run(t, &Spec{Name: "shop", Type: HTTP, Target: srv.URL, Conditions: []string{
		"[STATUS] == 200",
		`[BODY] not contains "Something went wrong"`,
	}}, nil)
	wantStatus(t, r, Down)
	wantFailed(t, r, `[BODY] not contains "Something went wrong": body contained it: `+
		`"<html><body><div class=banner>Something went wrong</div></body></html>" at byte 30`)
	if r.Error != "" || r.Values["status"] != "200" || r.Values["ip"] != "127.0.0.1" {
		t.Errorf("got error %q values %v; want no error, status 200, ip 127.0.0.1", r.Error, r.Values)
	}
}

func TestHTTPHealthyPage(t *testing.T) {
	srv := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<h1>Welcome</h1>")
	})
	r := run(t, &Spec{Name: "home", Type: HTTP, Target: srv.URL, Conditions: []string{
		"[STATUS] == 200", `[BODY] contains "Welcome"`, "[CONNECTED] == true", "[RESPONSE_TIME] < 5s",
	}}, nil)
	wantStatus(t, r, Up)
	if r.Values["response_time"] == "" || r.Values["body_bytes"] != "16" {
		t.Errorf("values %v; want response_time and body_bytes 16", r.Values)
	}
}

func TestHTTPCertificateExpiringIn3Days(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	cert, pool := testCert(t, now.Add(-time.Hour), now.Add(72*time.Hour))
	srv := tlsServer(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	clock := func() time.Time { return cert.Leaf.NotAfter.Add(-72 * time.Hour) }
	env := &Env{RootCAs: pool, Now: clock}
	want := fmt.Sprintf("[CERTIFICATE_EXPIRATION] > 14d: was 3d (expires %s)", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))

	r := run(t, &Spec{Name: "https", Type: HTTP, Target: srv.URL, Conditions: []string{
		"[STATUS] == 200", "[CERTIFICATE_EXPIRATION] > 14d", "[CERTIFICATE_EXPIRATION] > 2d",
	}}, env)
	wantStatus(t, r, Down)
	wantFailed(t, r, want)
	if r.Values["cert_days"] != "3.0" {
		t.Errorf("cert_days %q; want 3.0", r.Values["cert_days"])
	}

	// The same check on the bare TLS port, as a degraded condition.
	r = run(t, &Spec{Name: "tls", Type: TLS, Target: srv.Listener.Addr().String(),
		Degraded: []string{"[CERTIFICATE_EXPIRATION] > 14d"}}, env)
	wantStatus(t, r, Degraded)
	wantFailed(t, r, want)
	if r.Values["tls_version"] == "" {
		t.Errorf("values %v; want tls_version", r.Values)
	}
}

func TestHTTPExpiredCertificateIsDown(t *testing.T) {
	now := time.Now()
	cert, pool := testCert(t, now.Add(-48*time.Hour), now.Add(-time.Hour))
	srv := tlsServer(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := run(t, &Spec{Name: "expired", Type: HTTP, Target: srv.URL}, &Env{RootCAs: pool})
	wantStatus(t, r, Down)
	if !strings.Contains(r.Error, "expired") {
		t.Errorf("error %q; want it to say the certificate expired", r.Error)
	}
	// insecure_skip_verify still reads the expiry.
	r = run(t, &Spec{Name: "expired-insecure", Type: HTTP, Target: srv.URL, InsecureSkipVerify: true,
		Conditions: []string{"[CERTIFICATE_EXPIRATION] > 0s"}}, &Env{})
	wantStatus(t, r, Down)
	if len(r.Failed) != 1 || !strings.HasPrefix(r.Failed[0], "[CERTIFICATE_EXPIRATION] > 0s: was -") {
		t.Errorf("failed %q; want a negative lifetime", r.Failed)
	}
}

// slowServer answers after delay, or never when delay is 0 (until the client gives up).
func slowServer(t *testing.T, delay time.Duration) *httptest.Server {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	srv := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		var after <-chan time.Time
		if delay > 0 {
			after = time.After(delay)
		}
		select {
		case <-after:
			_, _ = io.WriteString(w, `{"status":"up"}`)
		case <-r.Context().Done():
		case <-done:
		}
	})
	return srv
}

func TestHTTPSlowIsDegradedThenDownPastTimeout(t *testing.T) {
	srv := slowServer(t, 150*time.Millisecond)
	r := run(t, &Spec{Name: "slow", Type: HTTP, Target: srv.URL, Timeout: 5 * time.Second,
		Conditions: []string{"[STATUS] == 200", "[BODY].status == up"},
		Degraded:   []string{"[RESPONSE_TIME] < 50ms"}}, nil)
	wantStatus(t, r, Degraded)
	if len(r.Failed) != 1 || !strings.HasPrefix(r.Failed[0], "[RESPONSE_TIME] < 50ms: was 1") {
		t.Errorf("failed %q; want [RESPONSE_TIME] < 50ms: was 15x ms", r.Failed)
	}

	hung := slowServer(t, 0)
	r = run(t, &Spec{Name: "hung", Type: HTTP, Target: hung.URL, Timeout: 200 * time.Millisecond,
		Conditions: []string{"[STATUS] == 200"}, Degraded: []string{"[RESPONSE_TIME] < 50ms"}}, nil)
	wantStatus(t, r, Down)
	if r.Error != "timed out after 200ms" {
		t.Errorf("error %q; want timed out after 200ms", r.Error)
	}
	wantFailed(t, r, "[STATUS] == 200: no response: timed out after 200ms",
		"[RESPONSE_TIME] < 50ms: not measured: timed out after 200ms")
	if r.Duration < 200*time.Millisecond || r.Duration > 5*time.Second {
		t.Errorf("duration %s; want about the 200ms timeout", r.Duration)
	}
}

func TestHTTPJSONFields(t *testing.T) {
	srv := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"up","version":"1.4.2","data":[{"name":"db","healthy":true,"lag":0.2},{"name":"queue","healthy":false,"lag":31}]}`)
	})
	r := run(t, &Spec{Name: "api", Type: HTTP, Target: srv.URL + "/health", Conditions: []string{
		"[BODY].status == up",
		"[BODY].data[0].name == db",
		"[BODY].data[0].healthy == true",
		"[BODY].data[1].healthy == true",
		"[BODY].data[1].lag < 5",
		`[BODY].version matches /^1\.\d+\.\d+$/`,
		"[BODY].data[2].name == cache",
	}}, nil)
	wantStatus(t, r, Down)
	wantFailed(t, r,
		"[BODY].data[1].healthy == true: was false",
		"[BODY].data[1].lag < 5: was 31",
		"[BODY].data[2].name == cache: [BODY].data has 2 element(s), no [2]")
}

func TestHTTPRedirects(t *testing.T) {
	srv := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "new home")
	})
	r := run(t, &Spec{Name: "follow", Type: HTTP, Target: srv.URL + "/old",
		Conditions: []string{"[STATUS] == 200", `[BODY] contains "new home"`}}, nil)
	wantStatus(t, r, Up)
	if r.Values["redirects"] != "1" || r.Values["final_url"] != srv.URL+"/new" {
		t.Errorf("values %v; want 1 redirect to /new", r.Values)
	}
	no := false
	r = run(t, &Spec{Name: "nofollow", Type: HTTP, Target: srv.URL + "/old", FollowRedirects: &no,
		Conditions: []string{"[STATUS] == 302"}}, nil)
	wantStatus(t, r, Up)
	r = run(t, &Spec{Name: "nofollow-200", Type: HTTP, Target: srv.URL + "/old", FollowRedirects: &no,
		Conditions: []string{"[STATUS] == 200"}}, nil)
	wantFailed(t, r, "[STATUS] == 200: was 302")
}

func TestHTTPMethodHeadersBody(t *testing.T) {
	srv := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, `{"method":%q,"host":%q,"token":%q,"body":%q}`, r.Method, r.Host, r.Header.Get("X-Token"), b)
	})
	r := run(t, &Spec{Name: "post", Type: HTTP, Target: srv.URL, Method: "post", Body: "ping",
		Headers: map[string]string{"X-Token": "s3cret", "Host": "app.example"},
		Conditions: []string{"[BODY].method == POST", "[BODY].host == app.example",
			"[BODY].token == s3cret", "[BODY].body == ping"}}, nil)
	wantStatus(t, r, Up)
}

func TestHTTPBodyReadAtMost1MiB(t *testing.T) {
	srv := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("a", 2<<20)+"TAIL")
	})
	r := run(t, &Spec{Name: "big", Type: HTTP, Target: srv.URL, Conditions: []string{`[BODY] contains "TAIL"`}}, nil)
	wantStatus(t, r, Down)
	wantFailed(t, r, `[BODY] contains "TAIL": body did not contain it (only the first 1048576 bytes were read)`)
	if r.Values["body_bytes"] != "1048576" || r.Values["body_truncated"] != "true" {
		t.Errorf("values %v; want 1 MiB, truncated", r.Values)
	}
}

func TestHTTPConnectionRefused(t *testing.T) {
	addr := closedPort(t)
	r := run(t, &Spec{Name: "gone", Type: HTTP, Target: "http://" + addr + "/",
		Conditions: []string{"[RESPONSE_TIME] < 10s"}}, nil)
	wantStatus(t, r, Down)
	if !strings.Contains(r.Error, "connection refused") {
		t.Errorf("error %q; want connection refused", r.Error)
	}
}

func TestRunInvalidSpecIsDown(t *testing.T) {
	r := Run(context.Background(), &Spec{Name: "bad", Type: HTTP, Target: "ftp://x"}, nil)
	if r.Status != Down || !strings.Contains(r.Error, "invalid probe") {
		t.Errorf("got %s %q; want down, invalid probe", r.Status, r.Error)
	}
}

// TestHTTPKeepAlive: by default every run opens its own connection; with
// keep_alive, runs share one until the idle connections are closed (every
// keepAliveFor), and a server that closed the kept connection is simply
// dialled again.
func TestHTTPKeepAlive(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	opened := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := conns
		conns = 0
		return n
	}
	env := &Env{}
	for _, keep := range []bool{false, true} {
		s := &Spec{Name: "kept", Type: HTTP, Target: srv.URL, KeepAlive: keep}
		for range 3 {
			wantStatus(t, run(t, s, env), Up)
		}
		want := 3
		if keep {
			want = 1
		}
		if n := opened(); n != want {
			t.Errorf("keep_alive %v: 3 runs opened %d connections; want %d", keep, n, want)
		}
	}
	// Past keepAliveFor the idle connection is closed and the next run dials.
	env.flushMu.Lock()
	env.flushed = env.flushed.Add(-keepAliveFor)
	env.flushMu.Unlock()
	wantStatus(t, run(t, &Spec{Name: "kept", Type: HTTP, Target: srv.URL, KeepAlive: true}, env), Up)
	if n := opened(); n != 1 {
		t.Errorf("after the minute's flush: %d new connections; want 1", n)
	}
	// The server drops its connections: the next run is still Up.
	srv.CloseClientConnections()
	wantStatus(t, run(t, &Spec{Name: "kept", Type: HTTP, Target: srv.URL, KeepAlive: true}, env), Up)
	if err := (&Spec{Name: "t", Type: TCP, Target: "127.0.0.1:1", KeepAlive: true}).Validate(); err == nil || !strings.Contains(err.Error(), "keep_alive is only for http") {
		t.Errorf("keep_alive on a tcp probe: %v; want refused", err)
	}
}
