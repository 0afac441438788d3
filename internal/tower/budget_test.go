package tower

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// TestIngestByteBudget: an agent that has sent more bytes than its budget
// is answered 429 with the wait until it has paid them back, before its
// batch is read; another agent is not held back, and once the wait has
// passed the first agent's batches are taken again.
func TestIngestByteBudget(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	tw := newTower(t, c, "")
	tw.in.budget.rate, tw.in.budget.burst = 1000, 5000
	h := tw.Handler()

	env := wire.Envelope{Agent: "pve1", Spool: "s1", Sent: t0,
		Records: []wire.Record{{Seq: 1, Kind: wire.KindStatus, Time: t0, Data: json.RawMessage(`{"p":"` + strings.Repeat("x", 8000) + `"}`)}}}
	big, _ := json.Marshal(env)
	if rec, _ := post(t, h, tokenA, big); rec.Code != 200 {
		t.Fatalf("first batch, within the burst: %d %s", rec.Code, rec.Body)
	}
	owed := float64(len(big) - 5000)
	want := int((owed + 999) / 1000)

	rec, reply := post(t, h, tokenA, batch("pve1", "s1", 2))
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(reply.Error, "share") {
		t.Fatalf("batch past the budget: %d %q; want 429 saying the agent is past its share", rec.Code, reply.Error)
	}
	if got := rec.Header().Get("Retry-After"); got != strconv.Itoa(want) {
		t.Errorf("Retry-After %q; want %d (%.0f bytes owed at 1000/s)", got, want, owed)
	}
	if n := count(t, tw, "SELECT count(*) FROM records WHERE agent = 'pve1' AND seq = 2"); n != 0 {
		t.Error("the refused batch was stored")
	}
	if rec, _ := post(t, h, tokenB, batch("pve2", "s1", 1)); rec.Code != 200 {
		t.Errorf("another agent's batch: %d, want 200", rec.Code)
	}

	c.Set(t0.Add(time.Duration(want) * time.Second))
	if rec, _ := post(t, h, tokenA, batch("pve1", "s1", 2)); rec.Code != 200 {
		t.Errorf("after Retry-After: %d %s, want 200", rec.Code, rec.Body)
	}
	if _, body := serve(t, h, "/metrics"); !strings.Contains(body, "hinomi_tower_ingest_shed_total 1") {
		t.Error("metrics do not count the refused batch as shed")
	}
}

// TestByteBudgetRefills: the budget refills at its rate up to the burst,
// and never more.
func TestByteBudgetRefills(t *testing.T) {
	b := byteBudget{rate: 100, burst: 1000}
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	b.charge("a", 1500, t0)
	if got := b.wait("a", t0); got != 5*time.Second {
		t.Errorf("500 bytes owed at 100/s: wait %s, want 5s", got)
	}
	if got := b.wait("a", t0.Add(5*time.Second)); got != 0 {
		t.Errorf("after 5 s: wait %s, want 0", got)
	}
	// An hour idle refills to the burst, not past it.
	b.charge("a", 1001, t0.Add(time.Hour))
	if got := b.wait("a", t0.Add(time.Hour)); got != 10*time.Millisecond {
		t.Errorf("1001 bytes after an idle hour: wait %s, want 10ms", got)
	}
	if got := b.wait("b", t0); got != 0 {
		t.Errorf("an agent that sent nothing waits %s", got)
	}
}
