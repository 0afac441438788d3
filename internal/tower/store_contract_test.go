package tower

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/push"
	"github.com/hinomi/hinomi/internal/wire"
)

// storeImpl is one Store implementation under the contract: open gives a
// fresh, empty store (closed by the test); failWrites makes writes that
// touch what ("incidents" or "hosts") fail until the returned func is
// called, so that atomicity can be seen.
type storeImpl struct {
	name       string
	open       func(t *testing.T) Store
	failWrites func(t *testing.T, s Store, what string) (restore func())
}

func sqliteImpl() storeImpl {
	return storeImpl{
		name: "sqlite",
		open: func(t *testing.T) Store {
			s, err := openSQLite(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		failWrites: func(t *testing.T, s Store, what string) func() {
			db := s.(*sqliteStore).db.DB
			if _, err := db.Exec(`CREATE TRIGGER contract_fail BEFORE INSERT ON ` + what + ` BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
				t.Fatal(err)
			}
			return func() {
				if _, err := db.Exec(`DROP TRIGGER contract_fail`); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
}

// TestStoreContract runs the behaviours every Store must have against
// each implementation; a new one adds itself to the list.
func TestStoreContract(t *testing.T) {
	for _, impl := range []storeImpl{sqliteImpl(), postgresImpl()} {
		for _, c := range storeContract {
			t.Run(impl.name+"/"+c.name, func(t *testing.T) {
				c.run(t, impl, impl.open(t))
			})
		}
	}
}

var contractT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func findingsRecord(t *testing.T, seq uint64, at time.Time, full bool, open ...string) wire.Record {
	t.Helper()
	f := wire.Findings{Full: full}
	for _, k := range open {
		f.Open = append(f.Open, finding.Finding{Key: k, Mode: "FM-B2", Severity: finding.High, Summary: "summary of " + k})
	}
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return wire.Record{Seq: seq, Kind: wire.KindFindings, Time: at, Data: data}
}

func logRecord(seq uint64, at time.Time, line string) wire.Record {
	data, _ := json.Marshal(wire.Log{Source: "kernel", Line: line})
	return wire.Record{Seq: seq, Kind: wire.KindLog, Time: at, Data: data}
}

func message(key string, state notify.State) notify.Message {
	return notify.Message{Key: key, Host: "h1", Title: "t " + key, State: state, Severity: "high", Started: contractT0}
}

func enqueueAt(key string, at time.Time, state notify.State, channels ...string) Enqueue {
	return Enqueue{AlertKey: key, Msg: message(key, state), Channels: channels, Created: at, Due: at}
}

func mustDue(t *testing.T, s Store, channel string, now time.Time) OutboxRow {
	t.Helper()
	row, ok, err := s.NextDue(context.Background(), channel, now)
	if err != nil || !ok {
		t.Fatalf("NextDue(%s) = ok %v, err %v; want a row", channel, ok, err)
	}
	return row
}

func noneDue(t *testing.T, s Store, channel string, now time.Time) {
	t.Helper()
	if row, ok, err := s.NextDue(context.Background(), channel, now); err != nil || ok {
		t.Fatalf("NextDue(%s) = %+v, %v, %v; want none", channel, row, ok, err)
	}
}

var storeContract = []struct {
	name string
	run  func(t *testing.T, impl storeImpl, s Store)
}{
	{"a batch stores each record once and acks the highest sequence", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		b := Batch{Agent: "h1", Spool: "s1", BootID: "b1", Version: "v1", Addr: "127.0.0.1:1", Interval: 10 * time.Second,
			Dropped: 2, Lost: 3, LostReason: "disk full", Received: contractT0,
			Records: []wire.Record{logRecord(1, contractT0, "one"), logRecord(2, contractT0.Add(time.Second), "two")}}
		for i := range 2 { // the second is the agent resending: nothing new
			res, err := s.SaveBatch(ctx, b)
			if err != nil || res.Acked != 2 {
				t.Fatalf("SaveBatch #%d = %+v, %v; want acked 2", i, res, err)
			}
		}
		recs, err := s.RecordsBetween(ctx, "h1", wire.KindLog, contractT0, contractT0.Add(time.Minute))
		if err != nil || len(recs) != 2 || recs[0].Seq != 1 || recs[1].Seq != 2 || !recs[1].Time.Equal(contractT0.Add(time.Second)) {
			t.Fatalf("RecordsBetween = %+v, %v; want seq 1 and 2 once each", recs, err)
		}
		hosts, err := s.LoadHosts(ctx)
		want := Host{Name: "h1", FirstSeen: contractT0, LastSeen: contractT0, BootID: "b1", Version: "v1", Addr: "127.0.0.1:1",
			Interval: 10 * time.Second, Dropped: 2, Lost: 3, LostReason: "disk full", Spool: "s1", Acked: 2}
		if err != nil || len(hosts) != 1 || hosts[0] != want {
			t.Fatalf("LoadHosts = %+v, %v; want %+v", hosts, err, want)
		}
	}},
	{"the acknowledged sequence grows within a spool and restarts with a new one", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		for _, step := range []struct {
			spool string
			seq   uint64
			acked uint64
		}{{"s1", 5, 5}, {"s1", 3, 5}, {"s2", 1, 1}} {
			res, err := s.SaveBatch(ctx, Batch{Agent: "h1", Spool: step.spool, Received: contractT0, Records: []wire.Record{logRecord(step.seq, contractT0, "x")}})
			if err != nil || res.Acked != step.acked {
				t.Fatalf("after %s/%d: acked %d, %v; want %d", step.spool, step.seq, res.Acked, err, step.acked)
			}
		}
	}},
	{"findings open, stay opened when repeated, and a full record resolves the rest", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		t1, t2 := contractT0, contractT0.Add(time.Minute)
		res, err := s.SaveBatch(ctx, Batch{Agent: "h1", Spool: "s", Received: t1, Records: []wire.Record{findingsRecord(t, 1, t1, false, "a", "b")}})
		if err != nil || len(res.Findings) != 1 || len(res.Findings[0].Open) != 2 {
			t.Fatalf("first findings = %+v, %v", res, err)
		}
		res, err = s.SaveBatch(ctx, Batch{Agent: "h1", Spool: "s", Received: t2, Records: []wire.Record{findingsRecord(t, 2, t2, true, "a")}})
		if err != nil || len(res.Findings) != 1 || !slices.Equal(res.Findings[0].Resolved, []string{"b"}) {
			t.Fatalf("full findings = %+v, %v; want b resolved", res, err)
		}
		open, err := s.LoadOpenFindings(ctx)
		if err != nil || len(open) != 1 || open[0].Finding.Key != "a" || open[0].Host != "h1" || !open[0].Opened.Equal(t1) || !open[0].Updated.Equal(t2) {
			t.Fatalf("LoadOpenFindings = %+v, %v; want a, opened %v, updated %v", open, err, t1, t2)
		}
		spans, err := s.FindingsBetween(ctx, "h1", t1, t2)
		if err != nil || len(spans) != 2 {
			t.Fatalf("FindingsBetween = %+v, %v; want a and b", spans, err)
		}
		resolved := 0
		for _, sp := range spans {
			if !sp.Resolved.IsZero() {
				resolved++
				if !sp.Resolved.Equal(t2) || sp.Summary != "summary of b" || sp.Severity != finding.High.String() {
					t.Errorf("resolved span = %+v; want b resolved at %v", sp, t2)
				}
			}
		}
		if resolved != 1 {
			t.Errorf("spans %+v; want exactly one resolved", spans)
		}
	}},
	{"a findings record resolves what it names, once, and applies its opens before its resolutions", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		rec := func(seq uint64, open, resolved []string) wire.Record {
			f := wire.Findings{Resolved: resolved}
			for _, k := range open {
				f.Open = append(f.Open, finding.Finding{Key: k, Mode: "FM-B2", Severity: finding.High, Summary: "summary of " + k})
			}
			data, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			return wire.Record{Seq: seq, Kind: wire.KindFindings, Time: contractT0, Data: data}
		}
		save := func(at time.Duration, r wire.Record) BatchResult {
			t.Helper()
			res, err := s.SaveBatch(ctx, Batch{Agent: "h1", Spool: "s", Received: contractT0.Add(at), Records: []wire.Record{r}})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		save(0, rec(1, []string{"a", "b"}, nil))
		if res := save(time.Second, rec(2, nil, []string{"b", "gone"})); len(res.Findings) != 1 || !slices.Equal(res.Findings[0].Resolved, []string{"b", "gone"}) {
			t.Fatalf("resolving b = %+v; want b and gone resolved", res.Findings)
		}
		if res := save(2*time.Second, rec(2, nil, []string{"b", "gone"})); len(res.Findings) != 0 {
			t.Fatalf("the same record again = %+v; want nothing applied", res.Findings)
		}
		// Opened and resolved in one record: resolved, as applied in order.
		if res := save(3*time.Second, rec(3, []string{"c"}, []string{"c"})); len(res.Findings) != 1 || !slices.Equal(res.Findings[0].Resolved, []string{"c"}) {
			t.Fatalf("c opened and resolved = %+v; want c resolved", res.Findings)
		}
		open, err := s.LoadOpenFindings(ctx)
		if err != nil || len(open) != 1 || open[0].Finding.Key != "a" {
			t.Fatalf("LoadOpenFindings = %+v, %v; want a alone", open, err)
		}
	}},
	{"a batch is all or nothing", func(t *testing.T, impl storeImpl, s Store) {
		ctx := context.Background()
		restore := impl.failWrites(t, s, "hosts")
		b := Batch{Agent: "h1", Spool: "s", Received: contractT0, Records: []wire.Record{logRecord(1, contractT0, "x"), findingsRecord(t, 2, contractT0, false, "a")}}
		if _, err := s.SaveBatch(ctx, b); err == nil {
			t.Fatal("SaveBatch succeeded while its host could not be written")
		}
		recs, _ := s.RecordsBetween(ctx, "h1", wire.KindLog, contractT0, contractT0)
		open, _ := s.LoadOpenFindings(ctx)
		if len(recs) != 0 || len(open) != 0 {
			t.Fatalf("after a failed batch: records %v, findings %v; want none", recs, open)
		}
		restore()
		if res, err := s.SaveBatch(ctx, b); err != nil || res.Acked != 2 || len(res.Findings) != 1 {
			t.Fatalf("resent batch = %+v, %v; want it stored whole", res, err)
		}
	}},
	{"an evaluation's alerts, events, messages and incidents are saved together", func(t *testing.T, impl storeImpl, s Store) {
		ctx := context.Background()
		in := Incident{ID: 7, Title: "h1 down", Opened: contractT0, Hosts: []string{"h1"}, Alerts: []string{"heartbeat/h1"}}
		change := AlertChange{
			Alert:    Alert{Key: "heartbeat/h1", Host: "h1", Kind: "heartbeat", Title: "Host h1 is silent", Severity: "high", State: alerting.State{Status: alerting.Firing}, Incident: 7},
			Events:   []AlertEvent{{At: contractT0, Key: "heartbeat/h1", Host: "h1", Incident: 7, Event: "fire", Text: "FIRING: Host h1 is silent"}},
			Messages: []Enqueue{enqueueAt("heartbeat/h1", contractT0, notify.Firing, "ops", "pager")},
			Incident: &in,
		}
		restore := impl.failWrites(t, s, "incidents")
		if err := s.SaveAlerts(ctx, contractT0, []AlertChange{change}); err == nil {
			t.Fatal("SaveAlerts succeeded while its incident could not be written")
		}
		alerts, _ := s.LoadAlerts(ctx)
		evs, _ := s.IncidentEvents(ctx, 7)
		due, _ := s.CountDue(ctx)
		if len(alerts) != 0 || len(evs) != 0 || due != 0 {
			t.Fatalf("after a failed save: alerts %v, events %v, %d due; want nothing", alerts, evs, due)
		}
		restore()
		if err := s.SaveAlerts(ctx, contractT0, []AlertChange{change}); err != nil {
			t.Fatal(err)
		}
		alerts, err := s.LoadAlerts(ctx)
		if err != nil || len(alerts) != 1 || alerts[0].Key != "heartbeat/h1" || alerts[0].State.Status != alerting.Firing || alerts[0].Incident != 7 {
			t.Fatalf("LoadAlerts = %+v, %v", alerts, err)
		}
		evs, err = s.IncidentEvents(ctx, 7)
		if err != nil || len(evs) != 1 || evs[0] != change.Events[0] {
			t.Fatalf("IncidentEvents = %+v, %v; want %+v", evs, err, change.Events[0])
		}
		if due, err := s.CountDue(ctx); err != nil || due != 2 {
			t.Fatalf("CountDue = %d, %v; want one row per channel", due, err)
		}
		open, err := s.LoadOpenIncidents(ctx)
		if err != nil || len(open) != 1 || open[0].Title != "h1 down" {
			t.Fatalf("LoadOpenIncidents = %+v, %v", open, err)
		}
	}},
	{"an ack replaces the alert's state and adds its event", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		a := Alert{Key: "k", Host: "h1", Kind: "finding", Title: "T", Severity: "high", State: alerting.State{Status: alerting.Firing}, Incident: 3}
		if err := s.SaveAlerts(ctx, contractT0, []AlertChange{{Alert: a}}); err != nil {
			t.Fatal(err)
		}
		a.Ack = &Ack{By: "ana", At: contractT0.Add(time.Minute)}
		ev := AlertEvent{At: a.Ack.At, Key: "k", Host: "h1", Incident: 3, Event: "ack", Text: "ACKNOWLEDGED: T by ana"}
		if err := s.SaveAck(ctx, a, ev); err != nil {
			t.Fatal(err)
		}
		alerts, err := s.LoadAlerts(ctx)
		if err != nil || len(alerts) != 1 || alerts[0].Ack == nil || alerts[0].Ack.By != "ana" {
			t.Fatalf("LoadAlerts = %+v, %v; want acked by ana", alerts, err)
		}
		if evs, err := s.IncidentEvents(ctx, 3); err != nil || len(evs) != 1 || evs[0] != ev {
			t.Fatalf("IncidentEvents = %+v, %v; want %+v", evs, err, ev)
		}
	}},
	{"incidents are read back by id, open ones and newest first", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		if id, err := s.LastIncidentID(ctx); err != nil || id != 0 {
			t.Fatalf("LastIncidentID of an empty store = %d, %v; want 0", id, err)
		}
		if _, err := s.LoadIncident(ctx, 1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("LoadIncident of none = %v; want ErrNotFound", err)
		}
		for id := int64(1); id <= 3; id++ {
			in := Incident{ID: id, Title: "i", Opened: contractT0.Add(time.Duration(id) * time.Minute)}
			if err := s.SaveIncident(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		closed := Incident{ID: 2, Title: "closed", Opened: contractT0.Add(2 * time.Minute), Closed: contractT0.Add(time.Hour),
			Notes: []Note{{At: contractT0, By: "ana", Text: "rebooted"}}}
		if err := s.SaveIncident(ctx, closed); err != nil {
			t.Fatal(err)
		}
		got, err := s.LoadIncident(ctx, 2)
		if err != nil || got.Title != "closed" || !got.Closed.Equal(closed.Closed) || len(got.Notes) != 1 {
			t.Fatalf("LoadIncident(2) = %+v, %v; want the replaced one", got, err)
		}
		open, err := s.LoadOpenIncidents(ctx)
		if err != nil || len(open) != 2 || slices.ContainsFunc(open, func(in Incident) bool { return in.ID == 2 }) {
			t.Fatalf("LoadOpenIncidents = %+v, %v; want 1 and 3", open, err)
		}
		list, err := s.LoadIncidents(ctx, 2)
		if err != nil || len(list) != 2 || list[0].ID != 3 || list[1].ID != 2 {
			t.Fatalf("LoadIncidents(2) = %+v, %v; want 3 then 2", list, err)
		}
		if id, err := s.LastIncidentID(ctx); err != nil || id != 3 {
			t.Fatalf("LastIncidentID = %d, %v; want 3", id, err)
		}
	}},
	{"silences load until they end", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		sl := Silence{ID: "s1", Match: Match{Host: "h1"}, Starts: contractT0, Ends: contractT0.Add(time.Hour), CreatedBy: "ana"}
		if err := s.SaveSilence(ctx, sl); err != nil {
			t.Fatal(err)
		}
		got, err := s.LoadSilences(ctx, contractT0)
		if err != nil || len(got) != 1 || got[0].ID != "s1" || got[0].Match.Host != "h1" {
			t.Fatalf("LoadSilences = %+v, %v", got, err)
		}
		sl.Ends = contractT0.Add(time.Minute) // expired early
		if err := s.SaveSilence(ctx, sl); err != nil {
			t.Fatal(err)
		}
		if got, err := s.LoadSilences(ctx, contractT0.Add(time.Minute)); err != nil || len(got) != 0 {
			t.Fatalf("LoadSilences after its end = %+v, %v; want none", got, err)
		}
	}},
	{"the outbox sends per alert in order and a retry waits", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		err := s.SaveAlerts(ctx, contractT0, []AlertChange{
			{Alert: Alert{Key: "a"}, Messages: []Enqueue{enqueueAt("a", contractT0, notify.Firing, "ops")}},
			{Alert: Alert{Key: "a"}, Messages: []Enqueue{enqueueAt("a", contractT0, notify.Resolved, "ops")}},
			{Alert: Alert{Key: "b"}, Messages: []Enqueue{enqueueAt("b", contractT0, notify.Firing, "ops")}},
		})
		if err != nil {
			t.Fatal(err)
		}
		noneDue(t, s, "other", contractT0)
		first := mustDue(t, s, "ops", contractT0)
		if first.Msg.Key != "a" || first.Msg.State != notify.Firing || first.Attempts != 0 || !first.Created.Equal(contractT0) {
			t.Fatalf("first due = %+v; want a's FIRING", first)
		}
		later, err := s.DueAfter(ctx, "ops", first.ID)
		if err != nil || len(later) != 1 || later[0].Msg == nil || later[0].Msg.State != notify.Resolved {
			t.Fatalf("DueAfter = %+v, %v; want a's RESOLVED", later, err)
		}
		retryAt := contractT0.Add(time.Minute)
		if err := s.RecordOutbox(ctx, []OutboxOp{RetryRow{ID: first.ID, Next: retryAt, Error: "503"}}); err != nil {
			t.Fatal(err)
		}
		// a's RESOLVED waits behind its FIRING; b goes.
		next := mustDue(t, s, "ops", contractT0)
		if next.Msg.Key != "b" {
			t.Fatalf("due while a retries = %+v; want b", next)
		}
		if err := s.RecordOutbox(ctx, []OutboxOp{CloseRows{IDs: []int64{next.ID}, State: "delivered", Attempts: 1, At: contractT0}}); err != nil {
			t.Fatal(err)
		}
		noneDue(t, s, "ops", contractT0)
		again := mustDue(t, s, "ops", retryAt)
		if again.ID != first.ID || again.Attempts != 1 {
			t.Fatalf("due at the retry = %+v; want a's FIRING, attempted once", again)
		}
		// Folded: the FIRING and RESOLVED close as one send.
		if err := s.RecordOutbox(ctx, []OutboxOp{CloseRows{IDs: []int64{first.ID, later[0].ID}, State: "delivered", Attempts: 2, At: retryAt}}); err != nil {
			t.Fatal(err)
		}
		noneDue(t, s, "ops", retryAt.Add(time.Hour))
		if n, err := s.CountDue(ctx); err != nil || n != 0 {
			t.Fatalf("CountDue = %d, %v; want 0", n, err)
		}
	}},
	{"a group gathers into its first message", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		var changes []AlertChange
		for i, k := range []string{"f1", "f2", "f3"} {
			e := enqueueAt(k, contractT0.Add(time.Duration(i)*time.Second), notify.Firing, "ops")
			e.Group, e.Due = "h1|firing", contractT0.Add(30*time.Second)
			changes = append(changes, AlertChange{Alert: Alert{Key: k}, Messages: []Enqueue{e}})
		}
		if err := s.SaveAlerts(ctx, contractT0, changes); err != nil {
			t.Fatal(err)
		}
		noneDue(t, s, "ops", contractT0.Add(29*time.Second))
		row := mustDue(t, s, "ops", contractT0.Add(30*time.Second))
		if row.Group != "h1|firing" || row.Msg.Key != "f1" {
			t.Fatalf("due = %+v; want f1 of the group", row)
		}
		others, err := s.DueInGroup(ctx, "ops", row.Group, row.ID, contractT0.Add(time.Second))
		if err != nil || len(others) != 1 || others[0].Msg.Key != "f2" {
			t.Fatalf("DueInGroup up to +1s = %+v, %v; want f2", others, err)
		}
		others, _ = s.DueInGroup(ctx, "ops", row.Group, row.ID, contractT0.Add(30*time.Second))
		merged := message("group/h1", notify.Firing)
		if err := s.MergeGroup(ctx, row.ID, merged, []int64{others[0].ID, others[1].ID}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.CountDue(ctx); err != nil || n != 1 {
			t.Fatalf("CountDue after merging = %d, %v; want 1", n, err)
		}
		if got := mustDue(t, s, "ops", contractT0.Add(30*time.Second)); got.ID != row.ID || got.Msg.Key != "group/h1" {
			t.Fatalf("due after merging = %+v; want the merged message", got)
		}
	}},
	{"a fallback is queued once, with the outcome", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		e := enqueueAt("a", contractT0, notify.Firing, "ops")
		e.Fallback = []string{"ops", "mail"}
		if err := s.SaveAlerts(ctx, contractT0, []AlertChange{{Alert: Alert{Key: "a"}, Messages: []Enqueue{e}}}); err != nil {
			t.Fatal(err)
		}
		row := mustDue(t, s, "ops", contractT0)
		if !slices.Equal(row.Fallback, []string{"ops", "mail"}) || row.FallbackSent {
			t.Fatalf("row = %+v; want fallback ops,mail not yet sent", row)
		}
		fb := enqueueAt("a", contractT0, notify.Firing, "mail")
		err := s.RecordOutbox(ctx, []OutboxOp{QueueFallback{ID: row.ID, Msg: fb}, RetryRow{ID: row.ID, Next: contractT0, Error: "503"}})
		if err != nil {
			t.Fatal(err)
		}
		if again := mustDue(t, s, "ops", contractT0); !again.FallbackSent || again.Attempts != 1 {
			t.Fatalf("row after its fallback = %+v; want fallback sent, one attempt", again)
		}
		if m := mustDue(t, s, "mail", contractT0); m.Msg.Key != "a" || len(m.Fallback) != 0 {
			t.Fatalf("fallback row = %+v", m)
		}
	}},
	{"the status page's history reads back and prunes", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
		rows := []serviceRow{
			{name: "web", group: "g", public: true, status: "up", since: contractT0, first: contractT0, last: contractT0, message: "ok", recent: []byte(`[]`),
				days: []dayAgg{{date: day(1), up: 3, n: 4, worst: "down"}, {date: day(2), up: 1, n: 1, worst: "up"}},
				lat:  []latBucket{{start: contractT0.Add(-time.Hour), sum: 1.5, n: 3}, {start: contractT0, sum: 2, n: 4}}},
			{name: "old", status: "down", since: day(1), first: day(1), last: day(1), recent: []byte(`[]`), days: []dayAgg{{date: day(1), n: 1}}},
		}
		if err := s.SaveProbeHistory(ctx, rows); err != nil {
			t.Fatal(err)
		}
		got, err := s.LoadProbeHistory(ctx, contractT0.Add(-30*time.Minute))
		if err != nil || len(got) != 2 {
			t.Fatalf("LoadProbeHistory = %+v, %v", got, err)
		}
		web := got[slices.IndexFunc(got, func(r serviceRow) bool { return r.name == "web" })]
		if web.status != "up" || !web.public || !web.since.Equal(contractT0) || len(web.days) != 2 || !web.days[0].date.Equal(day(1)) || web.days[0].up != 3 ||
			len(web.lat) != 1 || web.lat[0].n != 4 || !web.lat[0].start.Equal(contractT0) {
			t.Fatalf("web read back as %+v", web)
		}
		if err := s.PruneProbeHistory(ctx, day(2), contractT0.Add(-time.Hour), contractT0.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, _ = s.LoadProbeHistory(ctx, time.Time{})
		if len(got) != 1 || got[0].name != "web" || len(got[0].days) != 1 || !got[0].days[0].date.Equal(day(2)) || len(got[0].lat) != 1 {
			t.Fatalf("after pruning: %+v; want web with 2 March and its newer bucket", got)
		}
	}},
	{"incident updates thread, join their incident's thread and read back while open or recent", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		save := func(u IncidentUpdate) IncidentUpdate {
			t.Helper()
			got, err := s.SaveIncidentUpdate(ctx, u)
			if err != nil {
				t.Fatalf("SaveIncidentUpdate(%+v): %v", u, err)
			}
			return got
		}
		// A thread of its own, continued, then resolved.
		a1 := save(IncidentUpdate{Title: "Payments fail", Status: "investigating", Message: "Looking.", Services: []string{"shop", "api"}, By: "mika", At: contractT0})
		if a1.ID == 0 || a1.Thread != a1.ID {
			t.Fatalf("first update = %+v; want its own id as thread", a1)
		}
		a2 := save(IncidentUpdate{Thread: a1.Thread, Status: "identified", Message: "The card processor.", By: "mika", At: contractT0.Add(time.Minute)})
		if a2.Thread != a1.Thread || a2.Title != "Payments fail" || a2.ID <= a1.ID {
			t.Fatalf("second update = %+v; want thread %d with its title", a2, a1.Thread)
		}
		// Two updates about incident 7, the second without naming the thread.
		b1 := save(IncidentUpdate{Incident: 7, Status: "investigating", Message: "DB host down.", By: "ana", At: contractT0.Add(2 * time.Minute)})
		b2 := save(IncidentUpdate{Incident: 7, Status: "resolved", Message: "Failed over.", By: "ana", At: contractT0.Add(3 * time.Minute)})
		if b1.Thread == a1.Thread || b2.Thread != b1.Thread || b2.Incident != 7 {
			t.Fatalf("incident 7's updates = %+v, %+v; want one thread of their own", b1, b2)
		}
		if c := save(IncidentUpdate{Thread: b1.Thread, Status: "resolved", Message: "Post-mortem follows.", By: "ana", At: contractT0.Add(4 * time.Minute)}); c.Incident != 7 {
			t.Fatalf("an update continuing incident 7's thread = %+v; want incident 7", c)
		}
		if _, err := s.SaveIncidentUpdate(ctx, IncidentUpdate{Thread: a2.ID, Status: "resolved", Message: "x", By: "x", At: contractT0}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("continuing a thread by a later update's id: %v; want ErrNotFound", err)
		}
		// Later: the open thread comes back whatever its age; the resolved
		// one only while recent.
		got, err := s.LoadIncidentUpdates(ctx, contractT0.Add(time.Hour))
		if err != nil || len(got) != 2 || got[0].ID != a1.ID || got[1].ID != a2.ID {
			t.Fatalf("LoadIncidentUpdates(an hour on) = %+v, %v; want the open thread's two updates", got, err)
		}
		if g := got[0]; g.Status != "investigating" || g.Message != "Looking." || g.By != "mika" || !g.At.Equal(contractT0) || !slices.Equal(g.Services, []string{"shop", "api"}) {
			t.Fatalf("first update read back as %+v", g)
		}
		got, err = s.LoadIncidentUpdates(ctx, contractT0)
		if err != nil || len(got) != 5 || got[4].Message != "Post-mortem follows." {
			t.Fatalf("LoadIncidentUpdates(from the start) = %+v, %v; want all five, oldest first", got, err)
		}
	}},
	{"push reports add up to each monitor's state and read back", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		exit := 2
		for _, c := range []struct {
			name string
			p    push.Ping
		}{
			{"backup", push.Ping{At: contractT0, Kind: push.Start}},
			{"backup", push.Ping{At: contractT0.Add(time.Minute), Kind: push.Fail, Exit: &exit, Message: "disk full", Output: "line 1\nline 2"}},
			{"renew", push.Ping{At: contractT0.Add(2 * time.Minute), Kind: push.Success}},
			{"backup", push.Ping{At: contractT0.Add(3 * time.Minute), Kind: push.Start}},
		} {
			st, err := s.SavePushReport(ctx, c.name, c.p)
			if err != nil || st.Last == nil || !st.Last.At.Equal(c.p.At) {
				t.Fatalf("SavePushReport(%s, %+v) = %+v, %v", c.name, c.p, st, err)
			}
		}
		got, err := s.LoadPushStates(ctx)
		if err != nil || len(got) != 2 {
			t.Fatalf("LoadPushStates = %+v, %v; want backup and renew", got, err)
		}
		b := got["backup"]
		if b.Started == nil || !b.Started.At.Equal(contractT0.Add(3*time.Minute)) || b.LastEnd == nil || b.LastEnd.Kind != push.Fail ||
			b.LastEnd.Exit == nil || *b.LastEnd.Exit != 2 || b.LastEnd.Output != "line 1\nline 2" || b.LastEnd.Message != "disk full" {
			t.Fatalf("backup read back as %+v", b)
		}
		if r := got["renew"]; r.LastEnd == nil || r.LastEnd.Kind != push.Success || r.Started != nil {
			t.Fatalf("renew read back as %+v", r)
		}
	}},
	{"prune deletes records received before the age and closed messages", func(t *testing.T, _ storeImpl, s Store) {
		ctx := context.Background()
		for i, at := range []time.Time{contractT0, contractT0.Add(2 * time.Hour)} {
			if _, err := s.SaveBatch(ctx, Batch{Agent: "h1", Spool: "s", Received: at, Records: []wire.Record{logRecord(uint64(i+1), at, "x")}}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.Prune(ctx, time.Hour, 0, contractT0.Add(2*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("Prune = %d, %v; want 1 deleted", n, err)
		}
		recs, _ := s.RecordsBetween(ctx, "h1", wire.KindLog, contractT0, contractT0.Add(3*time.Hour))
		if len(recs) != 1 || recs[0].Seq != 2 {
			t.Fatalf("records left = %+v; want seq 2", recs)
		}
	}},
	{"a write after a failure clears the store's failure", func(t *testing.T, _ storeImpl, s Store) {
		if _, err := s.Unwritable(); err != nil {
			t.Fatalf("a fresh store says %v", err)
		}
		if err := s.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Unwritable(); err != nil {
			t.Fatalf("after a successful check: %v", err)
		}
		if s.StorageError(errors.New("bad statement")) {
			t.Error("an error that is not the storage's counts as a storage failure")
		}
	}},
}
