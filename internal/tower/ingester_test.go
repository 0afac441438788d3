package tower

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// viewRecorder is a hostView that only records what ingest hands it.
type viewRecorder struct {
	mu     sync.Mutex
	calls  []string
	acked  []uint64
	opened []string
}

func (v *viewRecorder) stored(env *wire.Envelope, addr string, res BatchResult, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, "stored "+env.Agent)
	v.acked = append(v.acked, res.Acked)
	for _, ch := range res.Findings {
		for _, f := range ch.Open {
			v.opened = append(v.opened, f.Key)
		}
	}
}

func (v *viewRecorder) heard(agent string, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, "heard "+agent)
}

func (v *viewRecorder) spooled(b Batch, acked uint64) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, "spooled "+b.Agent)
	return acked
}

func (v *viewRecorder) lateFindings(agent string, chs []FindingsChange, at time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, "lateFindings "+agent)
}

// TestIngesterChangesStateOnlyThroughItsView: ingest's only way into the
// tower's state is hostView. With a recorder in its place, a stored batch
// reaches the recorder (its acknowledgement and its findings, a batch
// over one turn once per part, in order) and memState stays as it was; a
// refused batch reaches neither.
func TestIngesterChangesStateOnlyThroughItsView(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	tw := newTower(t, c, "")
	rec := &viewRecorder{}
	tw.in.view = rec
	h := tw.Handler()

	env := wire.Envelope{Agent: "pve1", Spool: "s1", Sent: t0,
		Records: []wire.Record{findingsRecord(t, 1, t0, true, "fd-hog")}}
	body, _ := json.Marshal(env)
	if r, reply := post(t, h, tokenA, body); r.Code != 200 || reply.Acked != 1 {
		t.Fatalf("batch: %d %+v", r.Code, reply)
	}
	// Two records of 200 KiB each: over one turn (256 KiB), so two parts.
	pad := json.RawMessage(`{"p":"` + strings.Repeat("x", 200<<10) + `"}`)
	env.Records = []wire.Record{{Seq: 2, Kind: wire.KindStatus, Time: t0, Data: pad}, {Seq: 3, Kind: wire.KindStatus, Time: t0, Data: pad}}
	body, _ = json.Marshal(env)
	if r, reply := post(t, h, tokenA, body); r.Code != 200 || reply.Acked != 3 {
		t.Fatalf("batch in two turns: %d %+v", r.Code, reply)
	}
	if r, _ := post(t, h, tokenB, body); r.Code != 403 {
		t.Fatalf("pve1's batch with pve2's token: %d, want 403", r.Code)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if want := []string{"stored pve1", "stored pve1", "stored pve1"}; !slices.Equal(rec.calls, want) {
		t.Errorf("view calls %q; want %q", rec.calls, want)
	}
	if want := []uint64{1, 2, 3}; !slices.Equal(rec.acked, want) {
		t.Errorf("acknowledged %v; want %v (one call per part, in order)", rec.acked, want)
	}
	if !slices.Equal(rec.opened, []string{"fd-hog"}) {
		t.Errorf("findings handed over %q; want [fd-hog]", rec.opened)
	}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if len(tw.hosts) != 0 || len(tw.findings) != 0 {
		t.Errorf("memState changed behind the view: %d hosts, %d hosts with findings", len(tw.hosts), len(tw.findings))
	}
}
