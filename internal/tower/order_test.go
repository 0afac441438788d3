package tower

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// flakyReceiver answers 500 until a time on the test's clock, then takes
// messages, keeping their subjects in the order they came.
type flakyReceiver struct {
	srv       *httptest.Server
	mu        sync.Mutex
	failUntil time.Time
	subjects  []string
}

func newFlakyReceiver(t *testing.T, c *clock, failUntil time.Time) *flakyReceiver {
	r := &flakyReceiver{failUntil: failUntil}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if c.Now().Before(r.failUntil) {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		var m map[string]any
		_ = json.NewDecoder(req.Body).Decode(&m)
		r.mu.Lock()
		r.subjects = append(r.subjects, annotation(m, "summary"))
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *flakyReceiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.subjects...)
}

// TestDeliveryInOrderAfterFailures: the receiver fails for the first 63 s.
// pve1 goes silent at 30 s and comes back at 48 s while its FIRING is still
// being retried (due again at 62 s, then 94 s); its RESOLVED must not
// overtake it, and as both are undelivered they go as one message that
// says it is late. pve2's FIRING, sent late, says how
// long ago the silence began as of its sending, and that it is late.
func TestDeliveryInOrderAfterFailures(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 22, 5, 0, 0, time.UTC)
	c := &clock{now: t0}
	r := newFlakyReceiver(t, c, t0.Add(63*time.Second))
	tw := newTower(t, c, "channels:\n  - name: ops\n    type: webhook\n    url: "+r.srv.URL+"\n")
	h := tw.Handler()
	for _, a := range []struct{ name, token string }{{"pve1", tokenA}, {"pve2", tokenB}} {
		if rec, _ := post(t, h, a.token, batch(a.name, "s1")); rec.Code != 200 {
			t.Fatal(rec.Body.String())
		}
	}
	for s := 1; s <= 120; s++ {
		c.Set(t0.Add(time.Duration(s) * time.Second))
		if s >= 48 && s%10 == 8 { // back, and reporting again
			if rec, _ := post(t, h, tokenA, batch("pve1", "s1")); rec.Code != 200 {
				t.Fatal(rec.Body.String())
			}
		}
		if err := tw.Evaluate(context.Background(), c.Now()); err != nil {
			t.Fatal(err)
		}
		drain(t, tw, "ops")
	}
	got := r.got()
	var pve1, pve2 []string
	for _, s := range got {
		switch {
		case strings.Contains(s, "pve1"):
			pve1 = append(pve1, s)
		case strings.Contains(s, "pve2"):
			pve2 = append(pve2, s)
		}
	}
	want1 := "[RESOLVED] (brief) Host pve1 is back — was down 48s (22:05:00 → 22:05:48 UTC); delivery was delayed 1m 3s"
	if len(pve1) != 1 || pve1[0] != want1 {
		t.Errorf("pve1 got %q, want only %q", pve1, want1)
	}
	// Its retries: 31, 33, 35, 37, 41, 49 s, then 65 s (the receiver is back).
	want2 := "[FIRING] Host pve2 is silent — since 22:05:00 UTC, 1m 5s ago; delivery was delayed"
	if len(pve2) != 1 || pve2[0] != want2 {
		t.Errorf("pve2 got %q, want %q", pve2, want2)
	}
	if n := count(t, tw, "SELECT count(*) FROM outbox WHERE state = 'due'"); n != 0 {
		t.Errorf("%d messages still due", n)
	}
}
