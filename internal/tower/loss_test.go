package tower

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// lossBatch is an agent's batch with its spool's counts; an agent from
// before lost records were reported sends lost 0 and no reason.
func lossBatch(spool string, seq, dropped, lost uint64, reason string) []byte {
	env := wire.Envelope{Agent: "pve1", Spool: spool, Sent: time.Now(), Dropped: dropped, Lost: lost, LostReason: reason,
		Records: []wire.Record{{Seq: seq, Kind: wire.KindStatus, Time: time.Now(), Data: json.RawMessage(`{"event":"cycle"}`)}}}
	b, _ := json.Marshal(env)
	return b
}

// TestLostRecordsAlert: a host whose lost or dropped count grows pages
// once, "pve1 lost N records: <why>", counting from the first growth; it
// resolves with the final count once the counts stayed put for lossQuiet.
// Counts the tower finds at first contact are the baseline.
func TestLostRecordsAlert(t *testing.T) {
	r := newReceiver(t)
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	// Routed by its kind, like any alert.
	tw := newTower(t, c, "channels:\n  - name: ops\n    type: webhook\n    url: "+r.srv.URL+"\n"+
		"routes:\n  - match: {kind: [spool], severity: [medium]}\n    channels: [ops]\n")
	ctx := context.Background()
	send := func(seq, dropped, lost uint64, reason string) {
		t.Helper()
		if rec, _ := post(t, tw.Handler(), tokenA, lossBatch("s1", seq, dropped, lost, reason)); rec.Code != 200 {
			t.Fatalf("batch %d: %d %s", seq, rec.Code, rec.Body.String())
		}
		if err := tw.Evaluate(ctx, c.Now()); err != nil {
			t.Fatal(err)
		}
		drain(t, tw, "ops")
	}
	titles := func() []string {
		var out []string
		for _, m := range r.messages() {
			ann, _ := m["commonAnnotations"].(map[string]any)
			out = append(out, m["status"].(string)+" "+ann["title"].(string))
		}
		return out
	}

	send(1, 7, 0, "") // an old agent that dropped 7 before this tower knew it
	if got := titles(); len(got) != 0 {
		t.Fatalf("counts at first contact paged: %q", got)
	}
	c.Set(t0.Add(15 * time.Second))
	send(2, 7, 312, "its spool's disk is full")
	c.Set(t0.Add(30 * time.Second))
	send(3, 7, 400, "its spool's disk is full") // still growing: no second page
	want := []string{"firing pve1 lost 312 records: its spool's disk is full"}
	if got := titles(); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("pages %q; want %q", got, want)
	}
	tw.mu.Lock()
	h := *tw.hosts["pve1"]
	tw.mu.Unlock()
	if h.Lost != 400 || h.LostReason != "its spool's disk is full" || h.Dropped != 7 {
		t.Errorf("host lost %d (%q), dropped %d; want 400 (its spool's disk is full), 7", h.Lost, h.LostReason, h.Dropped)
	}
	_, body := serve(t, tw.Handler(), "/metrics")
	for _, want := range []string{`hinomi_agent_spool_lost_records_total{host="pve1"} 400`, `hinomi_agent_spool_dropped_records_total{host="pve1"} 7`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}

	// Quiet just short of lossQuiet: still firing; then it resolves.
	c.Set(t0.Add(30*time.Second + lossQuiet - time.Second))
	send(4, 7, 400, "its spool's disk is full")
	if got := titles(); len(got) != 1 {
		t.Fatalf("resolved before the counts stayed put for %s: %q", lossQuiet, got)
	}
	c.Set(t0.Add(30*time.Second + lossQuiet))
	send(5, 7, 400, "its spool's disk is full")
	if got := titles(); len(got) != 2 || got[1] != "resolved pve1 lost 400 records: its spool's disk is full" {
		t.Fatalf("pages %q; want the resolution with the final count", got)
	}

	// The size bound (an old agent reports only dropped) starts a new spell.
	c.Set(c.Now().Add(time.Minute))
	send(6, 47, 400, "")
	if got := titles(); len(got) != 3 || got[2] != "firing pve1 lost 40 records: its spool reached its size bound" {
		t.Fatalf("pages %q; want a new page for 40 dropped records", got)
	}
}
