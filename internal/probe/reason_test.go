package probe

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Every failure has a plain reason for the public page, made from real failing servers and
// sockets: never the address, the port or Go's error text, which stay in Error and Failed.
func TestFailureReasons(t *testing.T) {
	now := time.Now()
	refused := closedPort(t)

	// A listener that accepts connections (the kernel's backlog does) but never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })

	valid, validPool := testCert(t, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	expired, expiredPool := testCert(t, now.Add(-10*24*time.Hour), now.Add(-3*24*time.Hour-time.Hour))
	selfSigned := tlsServer(t, valid, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	expiredSrv := tlsServer(t, expired, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	failing := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database connection pool exhausted at 10.1.2.3", http.StatusInternalServerError)
	})
	banner := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `<div class=banner>Something went wrong</div>`)
	})
	plainPort := httpServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	resolver := dnsServer(t)                            // NXDOMAIN for every name outside its zone
	garbage := lineServer(t, "SSH-2.0-hinomi_test\r\n") // another protocol's greeting (RFC 4253)

	cases := []struct {
		name string
		spec Spec
		env  *Env
		want string
		// addr is what the reason must not name.
		addr string
	}{
		{"tcp refused", Spec{Type: TCP, Target: refused}, nil, "connection refused", refused},
		{"http refused", Spec{Type: HTTP, Target: "http://" + refused + "/health"}, nil, "connection refused", refused},
		{"tls refused", Spec{Type: TLS, Target: refused}, nil, "connection refused", refused},
		{"never answers", Spec{Type: HTTP, Target: "http://" + silent.Addr().String() + "/", Interval: time.Second, Timeout: 300 * time.Millisecond},
			nil, "timed out after 300 ms", silent.Addr().String()},
		{"unknown authority", Spec{Type: HTTP, Target: selfSigned.URL}, nil, "certificate signed by an unknown authority", selfSigned.Listener.Addr().String()},
		{"unknown authority tls", Spec{Type: TLS, Target: selfSigned.Listener.Addr().String()}, nil, "certificate signed by an unknown authority", selfSigned.Listener.Addr().String()},
		{"expired", Spec{Type: HTTP, Target: expiredSrv.URL}, &Env{RootCAs: expiredPool}, "certificate expired 3 days ago", expiredSrv.Listener.Addr().String()},
		{"expired tls", Spec{Type: TLS, Target: expiredSrv.Listener.Addr().String()}, &Env{RootCAs: expiredPool}, "certificate expired 3 days ago", expiredSrv.Listener.Addr().String()},
		{"expiry condition", Spec{Type: HTTP, Target: selfSigned.URL, Conditions: []string{"[CERTIFICATE_EXPIRATION] > 60d"}},
			&Env{RootCAs: validPool}, "certificate expires in 29 days", selfSigned.Listener.Addr().String()},
		{"plain HTTP on a TLS probe", Spec{Type: TLS, Target: plainPort.Listener.Addr().String()}, nil, "the service does not speak TLS", plainPort.Listener.Addr().String()},
		{"https to plain HTTP", Spec{Type: HTTP, Target: "https://" + plainPort.Listener.Addr().String() + "/"}, nil, "the service does not speak TLS", plainPort.Listener.Addr().String()},
		{"malformed HTTP", Spec{Type: HTTP, Target: "http://" + garbage + "/"}, nil, "malformed HTTP response", garbage},
		{"500", Spec{Type: HTTP, Target: failing.URL, Conditions: []string{"[STATUS] == 200"}}, nil, "HTTP 500", failing.Listener.Addr().String()},
		{"500 by default", Spec{Type: HTTP, Target: failing.URL}, nil, "HTTP 500", failing.Listener.Addr().String()},
		{"body", Spec{Type: HTTP, Target: banner.URL, Conditions: []string{"[STATUS] == 200", `[BODY] contains "ok"`}}, nil, `body does not contain "ok"`, banner.Listener.Addr().String()},
		{"body banner", Spec{Type: HTTP, Target: banner.URL, Conditions: []string{`[BODY] not contains "Something went wrong"`}}, nil, `body contains "Something went wrong"`, banner.Listener.Addr().String()},
		{"json field", Spec{Type: HTTP, Target: banner.URL, Conditions: []string{"[BODY].status == up"}}, nil, "body is not JSON", banner.Listener.Addr().String()},
		{"slow", Spec{Type: HTTP, Target: plainPort.URL, Degraded: []string{"[RESPONSE_TIME] < 1ns"}}, nil, "response took", plainPort.Listener.Addr().String()},
		{"http name not found", Spec{Type: HTTP, Target: "http://shop.hinomi.invalid:8080/"}, &Env{Resolver: resolver}, "DNS name not found", "shop.hinomi.invalid"},
		{"tcp name not found", Spec{Type: TCP, Target: "db.hinomi.invalid:5432"}, &Env{Resolver: resolver}, "DNS name not found", "db.hinomi.invalid"},
		{"dns name not found", Spec{Type: DNS, Target: "shop.hinomi.invalid", Resolver: resolver}, nil, "DNS name not found", "shop.hinomi.invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.spec
			s.Name = c.name
			r := run(t, &s, c.env)
			t.Logf("reason %q", r.Reason)
			if r.Status == Up {
				t.Fatalf("status up; want a failure")
			}
			if !strings.HasPrefix(r.Reason, c.want) {
				t.Errorf("reason %q; want %q", r.Reason, c.want)
			}
			host, port, err := net.SplitHostPort(c.addr)
			if err != nil {
				host = c.addr
			}
			for _, leak := range []string{c.addr, host, port, "dial", "tcp", "127.0.0.1", "[", "10.1.2.3"} {
				if leak != "" && strings.Contains(r.Reason, leak) {
					t.Errorf("reason %q names %q", r.Reason, leak)
				}
			}
			// The detail for operators is still there.
			if r.Error == "" && len(r.Failed) == 0 {
				t.Errorf("no detail kept: error %q, failed %q", r.Error, r.Failed)
			}
		})
	}
}

// The detail keeps the address: operators see where it failed.
func TestFailureDetailKeepsTarget(t *testing.T) {
	refused := closedPort(t)
	r := run(t, &Spec{Name: "api", Type: HTTP, Target: "http://" + refused + "/health"}, nil)
	if !strings.Contains(r.Error, refused) {
		t.Errorf("error %q; want it to name %s", r.Error, refused)
	}
	u, _ := url.Parse("http://" + refused)
	if strings.Contains(r.Reason, u.Port()) {
		t.Errorf("reason %q names the port", r.Reason)
	}
}

func TestUpHasNoReason(t *testing.T) {
	srv := httpServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	r := run(t, &Spec{Name: "ok", Type: HTTP, Target: srv.URL}, nil)
	wantStatus(t, r, Up)
	if r.Reason != "" {
		t.Errorf("reason %q on an up result", r.Reason)
	}
}

func TestPlainDurationAndAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Second: "10 s", 500 * time.Millisecond: "500 ms", 2 * time.Minute: "2 min", 1500 * time.Millisecond: "1.5 s", 90 * time.Second: "90 s",
	} {
		if got := plainDuration(d); got != want {
			t.Errorf("plainDuration(%s) = %q; want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		73 * time.Hour: "3 days", 24 * time.Hour: "1 day", 5 * time.Hour: "5 hours", 30 * time.Second: "1 minute", 20 * time.Minute: "20 minutes",
	} {
		if got := plainAge(d); got != want {
			t.Errorf("plainAge(%s) = %q; want %q", d, got, want)
		}
	}
}

// lineServer answers every connection with one line and closes it, like a
// service of another protocol on the port.
func lineServer(t *testing.T, line string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, line)
			_ = c.Close()
		}
	}()
	return l.Addr().String()
}

// A banner that arrives before the request is written is, to net/http, an
// unsolicited response on an idle connection, with no error type: it is
// the same plain reason as a banner read as the answer.
func TestBannerBeforeRequestIsMalformedHTTP(t *testing.T) {
	err := errors.New(`Get "http://127.0.0.1:35379/": readLoopPeekFailLocked: <nil>`)
	ctx := context.Background()
	if got := errorReason(ctx, ctx, err, time.Second, time.Now()); got != "malformed HTTP response" {
		t.Errorf("reason %q, want %q", got, "malformed HTTP response")
	}
}

// TestQuoteTrunc: a value is shown quoted, cut after 80 characters (not
// bytes), whatever its length.
func TestQuoteTrunc(t *testing.T) {
	if got := quoteTrunc("ok"); got != `"ok"` {
		t.Errorf("short: %s", got)
	}
	long := strings.Repeat("é", 100) + strings.Repeat("x", 1<<20)
	if got, want := quoteTrunc(long), `"`+strings.Repeat("é", 80)+`"…`; got != want {
		t.Errorf("long: %.100s; want %.100s", got, want)
	}
	if got, want := quoteTrunc(strings.Repeat("a", 80)), `"`+strings.Repeat("a", 80)+`"`; got != want {
		t.Errorf("exactly 80: %s", got)
	}
}
