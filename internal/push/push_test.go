package push

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustSpec(t *testing.T, s Spec) *Spec {
	t.Helper()
	if s.Token == "" {
		s.Token = "0123456789abcdef0123"
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		s    Spec
		want string
	}{
		{Spec{Token: "0123456789abcdef0", Every: time.Hour}, "name is required"},
		{Spec{Name: "b", Every: time.Hour}, "token is required"},
		{Spec{Name: "b", Token: "short", Every: time.Hour}, "use at least 16"},
		{Spec{Name: "b", Token: "0123456789abcdef/x", Every: time.Hour}, "must not contain"},
		{Spec{Name: "b", Token: "0123456789abcdef0"}, "give every"},
		{Spec{Name: "b", Token: "0123456789abcdef0", Every: time.Hour, Cron: "0 3 * * *"}, "not both"},
		{Spec{Name: "b", Token: "0123456789abcdef0", Cron: "0 3 * *"}, "cron"},
		{Spec{Name: "b", Token: "0123456789abcdef0", Cron: "CRON_TZ=Europe/Berlin 0 3 * * *"}, "give the zone in tz"},
		{Spec{Name: "b", Token: "0123456789abcdef0", Cron: "0 3 * * *", TZ: "Mars/Olympus"}, "tz"},
		{Spec{Name: "b", Token: "0123456789abcdef0", Every: time.Hour, TZ: "Europe/Berlin"}, "tz applies to cron only"},
		{Spec{Name: "b", Token: "0123456789abcdef0", Every: time.Second}, "shorter than 10s"},
	} {
		err := c.s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want %q", c.s, err, c.want)
		}
	}
}

func TestJudgeInterval(t *testing.T) {
	s := mustSpec(t, Spec{Name: "backup", Every: time.Hour})
	watching := at("2026-12-02T08:00:00Z")
	var st State
	// Never reported: judged from when watching began.
	if v := Judge(s, st, at("2026-12-02T09:04:00Z"), watching); v.Down {
		t.Errorf("within grace: %+v", v)
	}
	v := Judge(s, st, at("2026-12-02T09:06:00Z"), watching)
	if !v.Down || v.Reason != "did not report in" || !v.Since.Equal(at("2026-12-02T09:00:00Z")) ||
		!strings.Contains(v.Detail[0], "has not reported since hinomi began watching it at 2026-12-02 08:00 UTC") {
		t.Errorf("never reported: %+v", v)
	}
	st.Apply(Ping{At: at("2026-12-02T09:07:00Z"), Kind: Success})
	if v := Judge(s, st, at("2026-12-02T10:10:00Z"), watching); v.Down || !v.Due.Equal(at("2026-12-02T10:07:00Z")) {
		t.Errorf("after a report: %+v", v)
	}
	v = Judge(s, st, at("2026-12-02T11:00:00Z"), watching)
	if !v.Down || !strings.Contains(v.Detail[0], "due by 2026-12-02 10:07 UTC (grace 5m) and is 53m late; its last report was at 2026-12-02 09:07 UTC") {
		t.Errorf("late: %+v", v)
	}
}

func TestJudgeFailureAndRuntime(t *testing.T) {
	s := mustSpec(t, Spec{Name: "backup", Every: 24 * time.Hour, MaxRuntime: time.Hour})
	watching := at("2026-12-01T00:00:00Z")
	var st State
	three := 3
	st.Apply(Ping{At: at("2026-12-02T03:00:00Z"), Kind: Start})
	st.Apply(Ping{At: at("2026-12-02T03:20:00Z"), Kind: Fail, Exit: &three, Duration: 20 * time.Minute,
		Message: "borg: repository locked", Output: "Creating archive\nFailed to create/acquire the lock\n"})
	v := Judge(s, st, at("2026-12-02T03:21:00Z"), watching)
	if !v.Down || v.Reason != "job failed" || !v.Since.Equal(at("2026-12-02T03:20:00Z")) ||
		v.Detail[0] != "backup reported a failure at 2026-12-02 03:20 UTC with exit status 3 after running 20m: borg: repository locked." ||
		v.Detail[len(v.Detail)-1] != "Failed to create/acquire the lock" {
		t.Errorf("failed: %+v", v)
	}
	// A new run starts: the failure is no longer the news; it runs too long.
	st.Apply(Ping{At: at("2026-12-02T04:00:00Z"), Kind: Start})
	if v := Judge(s, st, at("2026-12-02T04:30:00Z"), watching); v.Down {
		t.Errorf("a retry in progress: %+v", v)
	}
	v = Judge(s, st, at("2026-12-02T05:30:00Z"), watching)
	if !v.Down || v.Reason != "job running too long" || !v.Since.Equal(at("2026-12-02T05:00:00Z")) {
		t.Errorf("runtime: %+v", v)
	}
	st.Apply(Ping{At: at("2026-12-02T05:31:00Z"), Kind: Success})
	if v := Judge(s, st, at("2026-12-02T05:32:00Z"), watching); v.Down {
		t.Errorf("ended well: %+v", v)
	}
}

// A cron schedule in a time zone: 03:00 in Berlin is 02:00 UTC in winter.
func TestJudgeCronInZone(t *testing.T) {
	s := mustSpec(t, Spec{Name: "renew", Cron: "0 3 * * *", TZ: "Europe/Berlin", Grace: 30 * time.Minute})
	var st State
	st.Apply(Ping{At: at("2026-12-01T02:00:30Z"), Kind: Success})
	if v := Judge(s, st, at("2026-12-02T02:29:00Z"), at("2026-11-01T00:00:00Z")); v.Down || !v.Due.Equal(at("2026-12-02T02:00:00Z")) {
		t.Errorf("before grace: due %s, %+v", v.Due, v)
	}
	v := Judge(s, st, at("2026-12-02T02:31:00Z"), at("2026-11-01T00:00:00Z"))
	if !v.Down || !strings.Contains(v.Detail[0], "due by 2026-12-02 03:00 CET") {
		t.Errorf("late, said in the job's zone: %+v", v)
	}
}

func TestHandler(t *testing.T) {
	var mu sync.Mutex
	var got []Ping
	h := &Handler{
		Lookup: func(tok string) (string, bool) { return "backup", tok == "0123456789abcdef0123" },
		Record: func(_ context.Context, name string, p Ping) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, p)
			return nil
		},
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	base := srv.URL + "/push/0123456789abcdef0123"
	do := func(method, url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		method, url, body string
		code              int
		kind              Kind
		exit              int // -1: none
	}{
		{"GET", base, "", 200, Success, -1},
		{"POST", base + "?status=start", "", 200, Start, -1},
		{"POST", base + "?status=fail&exit=3&duration=12.5&msg=disk+full", "last line\n", 200, Fail, 3},
		{"GET", base + "/start", "", 200, Start, -1},
		{"GET", base + "/fail", "", 200, Fail, -1},
		{"POST", base + "/2", "", 200, Fail, 2},
		{"GET", base + "/0", "", 200, Success, 0},
		{"GET", base + "?status=down&msg=x", "", 200, Fail, -1},
		{"GET", base + "?status=up", "", 200, Success, -1},
		{"GET", base + "?exit=1", "", 200, Fail, 1},
	} {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		code, body := do(c.method, c.url, c.body)
		if code != c.code {
			t.Errorf("%s %s: %d %s", c.method, c.url, code, body)
			continue
		}
		mu.Lock()
		p := got[n]
		mu.Unlock()
		if p.Kind != c.kind || (c.exit < 0) != (p.Exit == nil) || p.Exit != nil && *p.Exit != c.exit {
			t.Errorf("%s %s: kind %s exit %v; want %s %d", c.method, c.url, p.Kind, p.Exit, c.kind, c.exit)
		}
	}
	mu.Lock()
	third := got[2]
	mu.Unlock()
	if third.Output != "last line\n" || third.Message != "disk full" || third.Duration != 12500*time.Millisecond {
		t.Errorf("report with output: %+v", third)
	}
	for _, c := range []struct {
		method, url, body string
		code              int
	}{
		{"GET", srv.URL + "/push/wrong-token-0000000000", "", 404},
		{"GET", srv.URL + "/push/", "", 404},
		{"PUT", base, "", 405},
		{"GET", base + "?status=maybe", "", 400},
		{"GET", base + "?exit=999", "", 400},
		{"GET", base + "/later", "", 400},
		{"POST", base, strings.Repeat("x", MaxOutput+1), 413},
	} {
		if code, body := do(c.method, c.url, c.body); code != c.code {
			t.Errorf("%s %s: %d %s; want %d", c.method, c.url, code, body, c.code)
		}
	}
	// A job stuck in a loop: bounded per minute.
	limited := 0
	for range 2 * maxPerMinute {
		if code, _ := do("GET", base, ""); code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Error("no report was refused with 429")
	}
}

// fuzz budget: 2000x (scripts/test runs each target for a count of executions)
func FuzzHandlerQuery(f *testing.F) {
	for _, s := range []string{"status=fail&exit=3&duration=1.5&msg=x", "status=start", "exit=999", "duration=-1", "msg=%ff"} {
		f.Add(s, "")
	}
	f.Add("", "start")
	f.Fuzz(func(t *testing.T, query, suffix string) {
		req := httptest.NewRequest("GET", "/push/x", nil)
		req.URL.RawQuery = query
		p, err := parse(req, suffix, time.Unix(0, 0))
		if err != nil {
			return
		}
		if p.Kind != Start && p.Kind != Success && p.Kind != Fail {
			t.Fatalf("kind %q", p.Kind)
		}
		if p.Exit != nil && (*p.Exit < 0 || *p.Exit > 255) {
			t.Fatalf("exit %d", *p.Exit)
		}
	})
}
