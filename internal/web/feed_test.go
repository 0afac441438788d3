package web

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// pages is a Backend holding fixed data, for what the pages make of it;
// the tower's tests (internal/tower) run the same pages on a real tower.
type pages struct {
	svcs []Service
	incs []Incident
}

func (p pages) Services(context.Context, time.Time, bool) ([]Service, error) { return p.svcs, nil }
func (p pages) Incidents(context.Context, bool) ([]Incident, error)          { return p.incs, nil }
func (p pages) Timeline(context.Context, int64) (Incident, []TimelineEvent, error) {
	return Incident{}, nil, nil
}
func (p pages) Postmortem(context.Context, int64) (string, error)  { return "", nil }
func (p pages) Hosts(context.Context, time.Time) ([]Host, error)   { return nil, nil }
func (p pages) Alerts(context.Context, time.Time) ([]Alert, error) { return nil, nil }
func (p pages) Maintenance(time.Time) []Notice                     { return nil }
func (p pages) Ack(context.Context, string, string, string) error  { return nil }
func (p pages) Silence(context.Context, string, string, time.Duration, string, string) error {
	return nil
}

func serve(t *testing.T, b Backend) *httptest.Server {
	t.Helper()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	site, err := New(b, Options{Title: "Example status", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(site.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func fetch(t *testing.T, u string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestIncidentFeed(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	srv := serve(t, pages{incs: []Incident{
		{ID: 7, Title: "Shop is down", Opened: t0, Closed: t0.Add(95 * time.Minute), Services: []string{"shop"},
			Updates: []TimelineEvent{{At: t0.Add(10 * time.Minute), Text: "The database host lost its disk; failing over."}}},
		{ID: 8, Title: "API slow", Opened: t0.Add(24 * time.Hour)},
	}})
	code, h, body := fetch(t, srv.URL+"/feed.atom")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/atom+xml") {
		t.Fatalf("%d %s", code, h.Get("Content-Type"))
	}
	var f struct {
		Title   string `xml:"title"`
		Updated string `xml:"updated"`
		Entries []struct {
			Title   string `xml:"title"`
			ID      string `xml:"id"`
			Updated string `xml:"updated"`
			Summary string `xml:"summary"`
		} `xml:"entry"`
	}
	if err := xml.Unmarshal([]byte(body), &f); err != nil {
		t.Fatalf("not XML: %v\n%s", err, body)
	}
	if f.Title != "Example status — incidents" || len(f.Entries) != 2 || f.Updated != "2026-12-02T03:00:00Z" {
		t.Fatalf("feed %+v", f)
	}
	e := f.Entries[0]
	if e.Title != "Shop is down" || !strings.HasSuffix(e.ID, "/#incident-7") || e.Updated != "2026-12-01T04:35:00Z" ||
		!strings.Contains(e.Summary, "resolved: 2026-12-01 03:00 to 2026-12-01 04:35 UTC (1h35m)") ||
		!strings.Contains(e.Summary, "Affected: shop") || !strings.Contains(e.Summary, "failing over") {
		t.Errorf("entry %+v", e)
	}
	if !strings.Contains(f.Entries[1].Summary, "ongoing since 2026-12-02 03:00 UTC") {
		t.Errorf("open incident: %+v", f.Entries[1])
	}
}

func TestBadges(t *testing.T) {
	srv := serve(t, pages{svcs: []Service{
		{Name: "shop", Status: "up", Uptime: map[string]float64{"24h": 1, "30d": 0.9985, "90d": -1},
			Latency: []Point{{Ms: 100}, {Ms: 300}}},
		{Name: "wiki", Status: "down", Uptime: map[string]float64{}},
	}})
	for _, c := range []struct {
		path, want string
		code       int
	}{
		{"/badge/shop", ">up</text>", 200},
		{"/badge/shop/uptime", ">99.85%</text>", 200},
		{"/badge/shop/uptime?span=24h", ">100.00%</text>", 200},
		{"/badge/shop/uptime?span=90d", ">no data</text>", 200},
		{"/badge/shop/response", ">200 ms</text>", 200},
		{"/badge/wiki/response", ">no data</text>", 200},
		{"/badge/shop/uptime?span=1y", "want 24h, 7d, 30d or 90d", 400},
		{"/badge/nosuch/uptime", "not found", 404},
	} {
		code, h, body := fetch(t, srv.URL+c.path)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q; want %d with %q", c.path, code, body, c.code, c.want)
		}
		if code == 200 && h.Get("Content-Type") != "image/svg+xml" {
			t.Errorf("%s: Content-Type %q", c.path, h.Get("Content-Type"))
		}
	}
	// The uptime colour follows the share: 99.85 % is amber.
	if _, _, body := fetch(t, srv.URL+"/badge/shop/uptime"); !strings.Contains(body, "#b26a00") {
		t.Errorf("99.85%% uptime badge is not amber: %s", body)
	}
}
