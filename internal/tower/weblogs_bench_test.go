package tower

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/web"
)

// BenchmarkConsoleLogPages times the console's log pages over a big
// embedded store (1,000,000 lines of 20 hosts over 24 hours by default;
// HINOMI_BENCH_CONSOLE_LINES sets the count), each against the same
// search through GET /api/v1/logs in the same run (the baseline: the
// store's work without the page): a rare word over the last 24 hours, the
// last hour with no query, and the cross-host timeline of a minute.
//
//	go test -run '^$' -bench ConsoleLogPages -benchtime 30x ./internal/tower
func BenchmarkConsoleLogPages(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("HINOMI_BENCH_CONSOLE_LINES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	c := &clock{now: now}
	hash, _ := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	cfg, err := ParseConfig([]byte("data_dir: "+b.TempDir()+"\napi_token: "+apiToken+
		"\nagents:\n  - {name: node00, token: "+tokenA+"}\nconsole:\n  users:\n    - {name: mika, password_hash: '"+string(hash)+"'}\n"), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	tw, err := New(cfg, Options{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer tw.store.Close()
	defer tw.closeLogs()
	st, err := tw.logStore(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	units := []string{"kernel", "corosync.service", "pveproxy.service", "sshd.service", "cron.service", "pvestatd.service"}
	texts := []string{"worker %d finished", "Accepted publickey for root from 10.0.%d.7 port 52044", "pam_unix(cron:session): session opened for user root(uid=%d)",
		"status update time (%d.123 seconds)", "[KNET  ] host: host: %d has no active links", "nfs: server nas1 OK, %d requests"}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := now.Add(-24 * time.Hour)
	step := 24 * time.Hour / time.Duration(n)
	start := time.Now()
	batch := make([]logstore.Entry, 0, 10000)
	rare := 0
	for i := range n {
		k := rng.IntN(len(units))
		e := logstore.Entry{Time: t0.Add(time.Duration(i) * step), Host: fmt.Sprintf("node%02d", rng.IntN(20)), Source: "journal",
			Unit: units[k], Priority: 3 + rng.IntN(5), Line: fmt.Sprintf(texts[k], rng.IntN(100000))}
		if rng.IntN(5000) == 0 {
			e.Line, rare = "[QUORUM] Members[2]: 1 3, quorum lost", rare+1
		}
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == n-1 {
			if err := st.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	stored := time.Since(start)

	site, err := web.New(tw.Web(), web.Options{Users: cfg.Console.Users, Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	pages, api := site.Handler(), tw.Handler()
	rec := httptest.NewRecorder()
	login := httptest.NewRequest(http.MethodPost, "/console/login", strings.NewReader(url.Values{"name": {"mika"}, "password": {consolePassword}}.Encode()))
	login.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	pages.ServeHTTP(rec, login)
	cookie := rec.Result().Cookies()
	if len(cookie) == 0 {
		b.Fatalf("sign-in: %d", rec.Code)
	}
	at := now.Add(-6 * time.Hour).Format(time.RFC3339)
	cases := []struct {
		name, page, api string
		want            int // lines on the page, at least
	}{
		{"rare word, 24 h", "/console/logs?q=quorum&range=24h", "/api/v1/logs?q=quorum&since=24h&limit=101&newest=true", min(rare, 100)},
		{"last hour, no query", "/console/logs?q=&range=1h", "/api/v1/logs?since=1h&limit=101&newest=true", 100},
		{"timeline, 1 min", "/console/logs?window=1m&around=" + at, "/api/v1/logs?window=1m&limit=2001&newest=true&around=" + at, 50},
	}
	times := make([][2][]time.Duration, len(cases))
	b.ResetTimer()
	for b.Loop() {
		for i, cs := range cases {
			req := httptest.NewRequest(http.MethodGet, cs.page, nil)
			for _, ck := range cookie {
				req.AddCookie(ck)
			}
			rec := httptest.NewRecorder()
			t1 := time.Now()
			pages.ServeHTTP(rec, req)
			times[i][0] = append(times[i][0], time.Since(t1))
			if got := strings.Count(rec.Body.String(), `<li class="logline`); rec.Code != 200 || got < cs.want {
				b.Fatalf("%s: %d, %d lines; want at least %d", cs.page, rec.Code, got, cs.want)
			}
			req = httptest.NewRequest(http.MethodGet, cs.api, nil)
			req.Header.Set("Authorization", "Bearer "+apiToken)
			rec = httptest.NewRecorder()
			t1 = time.Now()
			api.ServeHTTP(rec, req)
			times[i][1] = append(times[i][1], time.Since(t1))
			if rec.Code != 200 {
				b.Fatalf("%s: %d %s", cs.api, rec.Code, rec.Body)
			}
		}
	}
	b.StopTimer()
	pct := func(ts []time.Duration) (time.Duration, time.Duration) {
		ts = slices.Clone(ts)
		slices.Sort(ts)
		return ts[len(ts)/2], ts[len(ts)*95/100]
	}
	b.Logf("%d lines of 20 hosts over 24 h stored in %s (%d hold the rare word)", n, stored.Round(time.Millisecond), rare)
	for i, cs := range cases {
		p50, p95 := pct(times[i][0])
		a50, a95 := pct(times[i][1])
		b.Logf("%-20s page p50 %-8s p95 %-8s | API p50 %-8s p95 %-8s | p95 page/API %.2f", cs.name+":",
			p50.Round(10*time.Microsecond), p95.Round(10*time.Microsecond), a50.Round(10*time.Microsecond), a95.Round(10*time.Microsecond), float64(p95)/float64(a95))
		if i == 0 {
			b.ReportMetric(float64(p95.Microseconds())/1000, "rare-p95-ms")
		}
	}
}
