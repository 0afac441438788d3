package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

type pushHit struct {
	method, path, query, body string
}

func pushServer(t *testing.T, status int) (*httptest.Server, func() []pushHit) {
	t.Helper()
	var mu sync.Mutex
	var hits []pushHit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits = append(hits, pushHit{r.Method, r.URL.Path, r.URL.RawQuery, string(b)})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []pushHit {
		mu.Lock()
		defer mu.Unlock()
		return append([]pushHit(nil), hits...)
	}
}

// TestPushWrapsAJob: the job's start, then its end with exit status,
// duration and last lines; the wrapper exits with the job's status and
// passes its output through.
func TestPushWrapsAJob(t *testing.T) {
	srv, hits := pushServer(t, http.StatusOK)
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"push", "--lines", "2", srv.URL + "/push/tok123", "--",
		"sh", "-c", "echo one; echo two; echo three; exit 3"}, &out, &errb)
	if code != 3 {
		t.Fatalf("exit %d; want the job's 3\n%s", code, errb.String())
	}
	if out.String() != "one\ntwo\nthree\n" {
		t.Errorf("the job's output did not pass through: %q %q", out.String(), errb.String())
	}
	h := hits()
	if len(h) != 2 {
		t.Fatalf("%d reports; want start and end: %+v", len(h), h)
	}
	if h[0].method != "POST" || h[0].path != "/push/tok123" || h[0].query != "status=start" {
		t.Errorf("start report %+v", h[0])
	}
	if h[1].path != "/push/tok123" || !strings.Contains(h[1].query, "status=fail") || !strings.Contains(h[1].query, "exit=3") ||
		!strings.Contains(h[1].query, "duration=") || h[1].body != "two\nthree\n" {
		t.Errorf("end report %+v; want fail, exit 3, a duration and the last 2 lines", h[1])
	}
}

func TestPushOnce(t *testing.T) {
	srv, hits := pushServer(t, http.StatusOK)
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"push", "--status", "fail", "--msg", "disk full", srv.URL + "/push/tok"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d %s", code, errb.String())
	}
	if h := hits(); len(h) != 1 || h[0].query != "msg=disk+full&status=fail" {
		t.Errorf("reports %+v", h)
	}
}

// TestPushOtherMonitors: healthchecks.io and Uptime Kuma URLs get their
// own protocols.
func TestPushOtherMonitors(t *testing.T) {
	srv, hits := pushServer(t, http.StatusOK)
	var out, errb bytes.Buffer
	run(t.Context(), []string{"push", srv.URL + "/ping/5f7e", "--", "sh", "-c", "exit 4"}, &out, &errb)
	run(t.Context(), []string{"push", srv.URL + "/api/push/kumaTok", "--", "true"}, &out, &errb)
	h := hits()
	want := []string{"POST /ping/5f7e/start", "POST /ping/5f7e/4", "GET /api/push/kumaTok"}
	if len(h) != len(want) {
		t.Fatalf("reports %+v; want %v", h, want)
	}
	for i, w := range want {
		if got := h[i].method + " " + h[i].path; got != w {
			t.Errorf("report %d: %s; want %s", i, got, w)
		}
	}
	if !strings.Contains(h[2].query, "status=up") || !strings.Contains(h[2].query, "ping=") {
		t.Errorf("kuma report query %q", h[2].query)
	}
}

// TestPushNeverFailsTheJob: a monitor that is down or refuses the token
// costs a warning (without the token), not the job's exit status.
func TestPushNeverFailsTheJob(t *testing.T) {
	srv, hits := pushServer(t, http.StatusNotFound)
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"push", "--retries", "2", srv.URL + "/push/SECRETtok", "--", "true"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d; want the job's 0", code)
	}
	if n := len(hits()); n != 2 {
		t.Errorf("%d requests; a 404 is not retried, so want 2 (start, end)", n)
	}
	if !strings.Contains(errb.String(), "404") {
		t.Errorf("no warning: %q", errb.String())
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	u := closed.URL
	closed.Close()
	errb.Reset()
	if code := run(t.Context(), []string{"push", "--retries", "0", u + "/push/SECRETtok", "--", "sh", "-c", "exit 0"}, &out, &errb); code != 0 {
		t.Errorf("exit %d with the monitor down", code)
	}
	if !strings.Contains(errb.String(), "could not report") || strings.Contains(errb.String(), "SECRETtok") {
		t.Errorf("warning %q: want one, without the token", errb.String())
	}
	if code := run(t.Context(), []string{"push", "ftp://x/push/t"}, &out, &errb); code != 2 {
		t.Errorf("a non-http URL: exit %d", code)
	}
}

// TestPushSendsStderr: what the job writes to standard error passes
// through and is in the report.
func TestPushSendsStderr(t *testing.T) {
	srv, hits := pushServer(t, http.StatusOK)
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"push", srv.URL + "/push/tok", "--", "sh", "-c", "echo disk full >&2; exit 1"}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	h := hits()
	if !strings.Contains(errb.String(), "disk full") || len(h) != 2 || h[1].body != "disk full\n" {
		t.Errorf("stderr %q, reports %+v", errb.String(), h)
	}
}
