package tower

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
)

// Evaluation needs no tower, clock or store: a state value, a
// configuration and a time in; the alerts' changes out, the state as it
// was.
func TestEvaluateIsAFunctionOfStateAndTime(t *testing.T) {
	cfg, err := ParseConfig([]byte(`data_dir: `+t.TempDir()+`
grace: 30s
alerts: {never_reported: false}
agents:
  - {name: pve1, token: `+tokenA+`}
  - {name: pve2, token: `+tokenB+`}
channels:
  - {name: ops, type: webhook, url: http://127.0.0.1:9/ops}
dependencies:
  - {host: pve1, dependents: [pve2]}
`), "eval.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	st := &memState{
		hosts: map[string]*Host{
			"pve1": {Name: "pve1", FirstSeen: t0, LastSeen: t0},
			"pve2": {Name: "pve2", FirstSeen: t0, LastSeen: t0},
		},
		alerts: map[string]*Alert{}, incidents: map[int64]*Incident{}, watchFrom: t0.Add(-time.Hour),
	}

	// Within the grace: nothing to write.
	if e := evaluate(st, peerView{}, cfg, t0.Add(20*time.Second)); len(e.changes) != 0 {
		t.Fatalf("%d changes within the grace, want 0", len(e.changes))
	}

	// Both silent past the grace: pve1 fires and pages; pve2, which
	// depends on it, is held back and named in pve1's message.
	now := t0.Add(31 * time.Second)
	e := evaluate(st, peerView{}, cfg, now)
	if len(st.alerts) != 0 || len(st.incidents) != 0 || st.nextIncident != 0 {
		t.Fatalf("evaluate changed the state it read: %d alerts, %d incidents, next incident %d", len(st.alerts), len(st.incidents), st.nextIncident)
	}
	got := map[string]AlertChange{}
	for _, c := range e.changes {
		got[c.Alert.Key] = c.AlertChange
	}
	pve1, pve2 := got["heartbeat/pve1"], got["heartbeat/pve2"]
	if pve1.Alert.State.Status != alerting.Firing || len(pve1.Messages) != 1 || !slices.Equal(pve1.Messages[0].Channels, []string{"ops"}) {
		t.Fatalf("pve1: %s with %d messages, want firing with one message to ops", pve1.Alert.State.Status, len(pve1.Messages))
	}
	if details := strings.Join(pve1.Messages[0].Msg.Details, "\n"); !strings.Contains(details, "Host pve2 is silent (heartbeat/pve2)") {
		t.Errorf("pve1's message does not name the alert it holds back:\n%s", details)
	}
	if pve1.Incident == nil || pve1.Incident.ID != 1 || pve1.Alert.Incident != 1 {
		t.Errorf("pve1's incident: %+v, want incident 1", pve1.Incident)
	}
	if pve2.Alert.State.Status != alerting.Firing || len(pve2.Messages) != 0 || pve2.Alert.Suppressed != "depends on pve1, which is silent" {
		t.Errorf("pve2: %s, %d messages, suppressed %q; want firing, held back by pve1", pve2.Alert.State.Status, len(pve2.Messages), pve2.Alert.Suppressed)
	}
	if pve2.Incident == nil || pve2.Incident.ID != 1 {
		t.Errorf("pve2's incident: %+v, want pve1's (they depend on each other)", pve2.Incident)
	}
	if e.nextIncident != 1 {
		t.Errorf("next incident %d, want 1", e.nextIncident)
	}

	// The same state and time decide the same again.
	again := evaluate(st, peerView{}, cfg, now)
	if len(again.changes) != len(e.changes) {
		t.Errorf("a second evaluation of the same state: %d changes, want %d", len(again.changes), len(e.changes))
	}

	// Applied, and pve1 reports again: it resolves, and its message says
	// what it released.
	next := &memState{hosts: map[string]*Host{
		"pve1": {Name: "pve1", FirstSeen: t0, LastSeen: now.Add(10 * time.Second)},
		"pve2": st.hosts["pve2"],
	}, alerts: e.alerts, incidents: e.incidents, nextIncident: e.nextIncident, watchFrom: st.watchFrom}
	e = evaluate(next, peerView{}, cfg, now.Add(11*time.Second))
	for _, c := range e.changes {
		if c.Alert.Key != "heartbeat/pve1" {
			continue
		}
		if c.Alert.State.Status != alerting.Resolved || len(c.Messages) != 1 || c.Messages[0].Msg.Title != "Host pve1 is back" {
			t.Fatalf("pve1 after it reports: %s, %d messages; want resolved with \"Host pve1 is back\"", c.Alert.State.Status, len(c.Messages))
		}
		return
	}
	t.Fatal("pve1 did not resolve after it reported again")
}
