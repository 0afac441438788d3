package tower

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
)

// postUpdate posts an incident update to the API and returns the code and
// the decoded answer.
func postUpdate(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/incident-updates", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// Updates written through the API join the probes' incident on the
// status page, newest first with their times; a written incident of its
// own marks the service it names; the feed carries both; a private
// service named in an update stays off the public page.
func TestIncidentUpdatesOnStatusPageAndFeed(t *testing.T) {
	w := newWebTower(t)
	w.report("pve1")
	w.probe("web", "Website", "up", true, "")
	w.probe("api", "Website", "up", true, "")
	w.at(time.Second)
	w.c.Set(w.t0.Add(2 * time.Second))
	w.report("pve1")
	w.probe("web", "Website", "down", true, "")
	w.at(2 * time.Second)
	incs, err := w.tw.Incidents(t.Context(), 10)
	if err != nil || len(incs) != 1 {
		t.Fatalf("incidents = %+v, %v; want web's", incs, err)
	}
	id := incs[0].ID

	for _, c := range []struct{ body, want string }{
		{`{"status": "fixing", "message": "x", "title": "t", "by": "mika"}`, `status \"fixing\": want one of investigating, identified, monitoring, resolved`},
		{`{"status": "identified", "message": "  ", "title": "t", "by": "mika"}`, "message: say what is happening"},
		{`{"status": "identified", "message": "x", "by": "mika"}`, "title: a new incident needs one"},
		{`{"status": "identified", "message": "x", "title": "t", "by": "mika", "services": ["nosuch"]}`, `no probe or push monitor is named \"nosuch\"`},
		{`{"status": "identified", "message": "x", "thread": 999, "by": "mika"}`, "no incident thread 999"},
		{`{"status": "identified", "message": "x", "incident": 999, "by": "mika"}`, "no incident 999"},
		{`{"status": "identified", "message": "x", "title": "t", "by": "mika", "severity": "high"}`, `unknown field \"severity\"`},
	} {
		code, out := postUpdate(t, w.srv.URL, c.body)
		if msg, _ := out["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, strings.ReplaceAll(c.want, `\"`, `"`)) {
			t.Errorf("%s: %d %v; want 400 with %q", c.body, code, out, c.want)
		}
	}
	if got, _ := w.tw.store.LoadIncidentUpdates(t.Context(), time.Time{}); len(got) != 0 {
		t.Fatalf("refused updates were kept: %+v", got)
	}

	w.c.Set(w.t0.Add(3 * time.Minute))
	if code, out := postUpdate(t, w.srv.URL, `{"incident": `+itoa(id)+`, "status": "identified", "message": "The web server's disk is full; we are clearing it.", "services": ["web", "db-internal"], "by": "mika"}`); code != http.StatusCreated {
		t.Fatalf("update on incident %d: %d %v", id, code, out)
	}
	w.c.Set(w.t0.Add(4 * time.Minute))
	code, out := postUpdate(t, w.srv.URL, `{"title": "Logins are slow", "status": "investigating", "message": "Some sign-ins take a minute.", "services": ["api"], "by": "ana"}`)
	if code != http.StatusCreated {
		t.Fatalf("a written incident: %d %v", code, out)
	}
	thread := int64(out["update"].(map[string]any)["thread"].(float64))

	_, page := get(t, http.DefaultClient, w.srv.URL+"/")
	for _, want := range []string{
		`id="incident-` + itoa(id) + `"`, "<strong class=\"status-identified\">identified</strong>: The web server&#39;s disk is full",
		`id="update-` + itoa(thread) + `"`, "Logins are slow", "Some sign-ins take a minute.",
		`<a href="#update-` + itoa(thread) + `">Incident: <strong class="status-investigating">investigating</strong></a> — Logins are slow`,
		"2026-11-25 03:03 UTC", "2026-11-25 03:04 UTC",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the status page lacks %q", want)
		}
	}
	// Newest first within an incident: the written update (03:03) before
	// the probe's "web stopped working." (03:00).
	if i, j := strings.Index(page, "disk is full"), strings.Index(page, "web stopped working."); i < 0 || j < 0 || i > j {
		t.Errorf("updates not newest first: written at %d, the probe's at %d", i, j)
	}
	if strings.Contains(page, "db-internal") || strings.Contains(page, "by mika") {
		t.Error("the public page names a private service or the update's author")
	}

	// Resolving the written incident ends its mark on api; the thread is
	// continued by its number.
	w.c.Set(w.t0.Add(10 * time.Minute))
	if code, out := postUpdate(t, w.srv.URL, `{"thread": `+itoa(thread)+`, "status": "resolved", "message": "Sign-ins are fast again.", "by": "ana"}`); code != http.StatusCreated {
		t.Fatalf("resolving: %d %v", code, out)
	}
	_, page = get(t, http.DefaultClient, w.srv.URL+"/")
	if strings.Contains(page, `href="#update-`+itoa(thread)+`"`) || !strings.Contains(page, "Sign-ins are fast again.") {
		t.Error("after resolving: the service is still marked, or the update is missing")
	}

	_, feed := get(t, http.DefaultClient, w.srv.URL+"/feed.atom")
	for _, want := range []string{"/#update-" + itoa(thread), "resolved: Sign-ins are fast again.", "identified: The web server", "Status: identified."} {
		if !strings.Contains(feed, want) {
			t.Errorf("the feed lacks %q:\n%s", want, feed)
		}
	}

	// The API lists them, authors included.
	req, _ := http.NewRequest(http.MethodGet, w.srv.URL+"/api/v1/incident-updates", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Updates []IncidentUpdate }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Updates) != 3 || list.Updates[1].By != "ana" || list.Updates[2].Thread != thread {
		t.Fatalf("GET updates = %+v, %v", list, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Towers on one PostgreSQL show the same updates: one written on tower-a
// is on tower-b's status page, and tower-b continues its thread.
func TestSharedIncidentUpdates(t *testing.T) {
	pgURL := testload.PostgresSchema(t)
	c := &clock{now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
	probes := "probes:\n  - {name: shop, type: tcp, target: \"127.0.0.1:9\", public: true}\n"
	a := sharedTower(t, c, "tower-a", pgURL, probes)
	b := sharedTower(t, c, "tower-b", pgURL, probes)
	first, err := a.PostIncidentUpdate(t.Context(), IncidentUpdate{Title: "Checkout fails", Status: "investigating", Message: "Looking into it.", Services: []string{"shop"}, By: "mika"})
	if err != nil {
		t.Fatal(err)
	}
	c.Set(c.Now().Add(time.Minute))
	if _, err := b.PostIncidentUpdate(t.Context(), IncidentUpdate{Thread: first.Thread, Status: "identified", Message: "The payment provider is down.", By: "ana"}); err != nil {
		t.Fatal(err)
	}
	for _, tw := range []*Tower{a, b} {
		incs, err := tw.Web().Incidents(t.Context(), true)
		if err != nil || len(incs) != 1 {
			t.Fatalf("public incidents = %+v, %v; want the written one", incs, err)
		}
		in := incs[0]
		if in.Title != "Checkout fails" || in.Status != "identified" || len(in.Updates) != 2 || in.Updates[0].Text != "The payment provider is down." ||
			len(in.Services) != 1 || in.Services[0] != "shop" || !in.Closed.IsZero() {
			t.Errorf("incident as a tower shows it: %+v", in)
		}
	}
}
