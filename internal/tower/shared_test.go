package tower

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/testload"
)

// sharedTower opens a tower on the shared PostgreSQL store at pgURL, on
// the test's clock, with its own data directory.
func sharedTower(t *testing.T, c *clock, name, pgURL, extra string) *Tower {
	t.Helper()
	return openTower(t, c, `
name: `+name+`
listen: 127.0.0.1:0
data_dir: `+t.TempDir()+`
store: `+pgURL+`
lease: 1s
grace: 30s
agents:
  - {name: pve1, token: `+tokenA+`}
alerts:
  never_reported: false
  repeat_interval: 1m
`+extra)
}

// An acknowledgement made on one tower holds back the repeat the leading
// tower would otherwise send.
func TestSharedAckOnOneTowerHoldsTheLeadersRepeat(t *testing.T) {
	pgURL := testload.PostgresSchema(t)
	rcv := newReceiver(t)
	ch := "channels:\n  - {name: hook, type: webhook, url: " + rcv.srv.URL + "}\n"
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	ctx := context.Background()
	a := sharedTower(t, c, "tower-a", pgURL, ch)
	b := sharedTower(t, c, "tower-b", pgURL, ch)
	if !b.keepLease(ctx) {
		t.Fatal("tower-b did not take the free lease")
	}
	if a.keepLease(ctx) {
		t.Fatal("tower-a leads beside tower-b")
	}
	// pve1 reports to tower-a, and falls silent: tower-b, leading, pages.
	if rec, _ := post(t, a.Handler(), tokenA, batch("pve1", "s1", 1)); rec.Code != http.StatusOK {
		t.Fatalf("ingest on tower-a: %d %s", rec.Code, rec.Body)
	}
	step := func(at time.Time) {
		t.Helper()
		c.Set(at)
		if err := b.syncShared(ctx, false); err != nil {
			t.Fatal(err)
		}
		if err := b.Evaluate(ctx, at); err != nil {
			t.Fatal(err)
		}
		for {
			sent, err := b.out.sendNext(ctx, "hook")
			if err != nil {
				t.Fatal(err)
			}
			if !sent {
				break
			}
		}
	}
	step(t0.Add(10 * time.Second))
	if n := len(rcv.messages()); n != 0 {
		t.Fatalf("%d messages while pve1 is within its grace", n)
	}
	step(t0.Add(40 * time.Second))
	if n := len(rcv.messages()); n != 1 {
		t.Fatalf("%d messages after pve1's grace; want its FIRING", n)
	}
	// tower-a sees the firing alert (it follows) and a person acknowledges
	// it there.
	if err := a.syncShared(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acknowledge(ctx, "heartbeat/pve1", "mika", "on it"); err != nil {
		t.Fatalf("acknowledging on tower-a: %v", err)
	}
	// Past the repeat interval tower-b decides again: no repeat.
	step(t0.Add(3 * time.Minute))
	if n := len(rcv.messages()); n != 1 {
		t.Fatalf("%d messages after the acknowledgement on tower-a; want only the FIRING (no repeat)", n)
	}
	b.mu.Lock()
	ack := b.alerts["heartbeat/pve1"].Ack
	b.mu.Unlock()
	if ack == nil || ack.By != "mika" {
		t.Fatalf("tower-b's alert ack = %+v; want mika's", ack)
	}
}

// cutProxy forwards TCP to target until cut, which closes every
// connection and refuses new ones: a network partition between a tower
// and PostgreSQL.
type cutProxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	cut   bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l}
	t.Cleanup(func() { l.Close(); p.partition() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

// restore lets connections through again.
func (p *cutProxy) restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *cutProxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// taggingTransport marks each request with the tower that sent it.
type taggingTransport struct{ tower string }

func (tt taggingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-Tower", tt.tower)
	return http.DefaultTransport.RoundTrip(r)
}

// A leader that loses PostgreSQL but not the receiver stops sending within
// one lease; the other tower takes over and sends the rest, none twice.
func TestSharedPartitionedLeaderStopsSending(t *testing.T) {
	pgURL := testload.PostgresSchema(t)
	const pending = 300
	var mu sync.Mutex
	byID := map[string]int{}
	last := map[string]time.Time{}  // tower → its latest send
	first := map[string]time.Time{} // outbox id → its first receipt
	var log []string
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range log {
				t.Log(l)
			}
		}
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if json.NewDecoder(r.Body).Decode(&p) != nil || len(p.Alerts) == 0 {
			http.Error(w, "bad payload", 400)
			return
		}
		<-time.After(5 * time.Millisecond) // sends stay pending long enough to cut mid-way
		mu.Lock()
		defer mu.Unlock()
		id := p.Alerts[0].Labels["outbox_id"]
		if id == "" {
			// The tower's own page that it cannot reach its database,
			// sent beside the outbox (degraded.go): not a notification.
			return
		}
		byID[id]++
		if byID[id] == 1 {
			first[id] = time.Now()
		}
		last[r.Header.Get("X-Test-Tower")] = time.Now()
		log = append(log, fmt.Sprintf("%s %s id=%s key=%s", time.Now().Format("15:04:05.000"), r.Header.Get("X-Test-Tower"), id, p.Alerts[0].Labels["key"]))
	}))
	t.Cleanup(srv.Close)
	received := func() int { mu.Lock(); defer mu.Unlock(); return len(byID) }

	// tower-a reaches PostgreSQL through the proxy the test cuts.
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.l.Addr().String()
	open := func(name, store string) *Tower {
		cfg, err := ParseConfig([]byte(`
name: `+name+`
listen: 127.0.0.1:0
data_dir: `+t.TempDir()+`
store: `+store+`
lease: 1s
agents:
  - {name: pve1, token: `+tokenA+`}
channels:
  - {name: hook, type: webhook, url: `+srv.URL+`}
`), name+".yaml")
		if err != nil {
			t.Fatal(err)
		}
		tw, err := New(cfg, Options{HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: taggingTransport{name}}})
		if err != nil {
			t.Fatal(err)
		}
		return tw
	}
	a := open("tower-a", viaProxy.String())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { _ = a.Run(ctx) })
	deadline := time.Now().Add(20 * time.Second)
	for !a.leads() {
		if time.Now().After(deadline) {
			t.Fatal("tower-a never took the lease")
		}
		<-time.After(20 * time.Millisecond)
	}
	b := open("tower-b", pgURL)
	wg.Go(func() { _ = b.Run(ctx) })

	now := time.Now()
	var msgs []Enqueue
	for i := range pending {
		m := notify.Message{Key: fmt.Sprintf("load/%04d", i), Title: "load", State: notify.Firing, Severity: "high", Started: now, Now: now}
		msgs = append(msgs, Enqueue{AlertKey: m.Key, Msg: m, Channels: []string{"hook"}, Created: now, Due: now})
	}
	if err := b.store.SaveAlerts(context.Background(), now, []AlertChange{{Alert: Alert{Key: "load", Host: "pve1", Kind: "load"}, Messages: msgs}}); err != nil {
		t.Fatal(err)
	}
	a.out.wake()
	for received() < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("tower-a sent %d messages in 20 s", received())
		}
		<-time.After(5 * time.Millisecond)
	}
	cutAt := time.Now()
	proxy.partition()
	mu.Lock()
	log = append(log, cutAt.Format("15:04:05.000")+" cut")
	mu.Unlock()
	deadline = time.Now().Add(60 * time.Second)
	for received() < pending {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages arrived after the partition", received(), pending)
		}
		<-time.After(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if stopped := last["tower-a"].Sub(cutAt); stopped > time.Second {
		t.Errorf("tower-a sent %s after it lost PostgreSQL; the lease is 1s", stopped)
	}
	if last["tower-b"].IsZero() {
		t.Error("tower-b sent nothing: the partitioned leader sent everything?")
	}
	// The one message tower-a had sent but not yet recorded when the
	// partition came is sent again by tower-b after its claim's send
	// timeout, with the same outbox id, for the receiver to drop.
	again := 0
	for id, n := range byID {
		if n > 1 {
			again += n - 1
			if n > 2 || first[id].After(cutAt) {
				t.Errorf("outbox id %s received %d times, first %s after the cut", id, n, first[id].Sub(cutAt))
			}
		}
	}
	if again > 1 {
		t.Errorf("%d messages came again; at most the one in flight at the partition may", again)
	}
	t.Logf("tower-a's last send %s after the cut; tower-b sent the rest", last["tower-a"].Sub(cutAt).Round(time.Millisecond))
}

// While PostgreSQL cannot be reached the tower keeps taking agents'
// batches into its own spool, says so (status page, /metrics), and writes
// them to PostgreSQL when it answers again: no record lost or doubled.
// The outage is 5 s of every connection to PostgreSQL refused and cut (a
// proxy), so that the cluster other tests use stays up.
func TestSharedPostgresOutageSpoolsIngest(t *testing.T) {
	pgURL := testload.PostgresSchema(t)
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.l.Addr().String()
	const agents, perBatch = 10, 5
	var agentsYAML strings.Builder
	for i := range agents {
		fmt.Fprintf(&agentsYAML, "  - {name: a%02d, token: tok-outage-%012d}\n", i, i)
	}
	cfg, err := ParseConfig([]byte(`
name: tower-a
listen: 127.0.0.1:0
data_dir: `+t.TempDir()+`
store: `+viaProxy.String()+`
lease: 1s
api_token: `+apiToken+`
peer_token: peer-token-outage-aaaaaaaa
agents:
`+agentsYAML.String()), "outage.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tw, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { _ = tw.Run(ctx) })

	seq := make([]uint64, agents)
	sent, refused := 0, 0
	round := func() {
		for i := range agents {
			var seqs []uint64
			for range perBatch {
				seq[i]++
				seqs = append(seqs, seq[i])
			}
			rec, reply := post(t, tw.Handler(), fmt.Sprintf("tok-outage-%012d", i), batch(fmt.Sprintf("a%02d", i), "s1", seqs...))
			if rec.Code != http.StatusOK || reply.Acked != seq[i] {
				refused++
				t.Errorf("a%02d's batch up to %d: %d %s, acked %d", i, seq[i], rec.Code, rec.Body, reply.Acked)
				continue
			}
			sent += perBatch
		}
	}
	for range 5 {
		round()
	}
	proxy.partition()
	outage := time.Now()
	for time.Since(outage) < 5*time.Second {
		round()
		<-time.After(100 * time.Millisecond)
	}
	if tw.in.spool.pending() == 0 {
		t.Fatal("nothing was spooled while PostgreSQL was unreachable")
	}
	// It says so: the status page's banner and /metrics.
	deadline := time.Now().Add(20 * time.Second)
	for {
		why, _ := webBackend{tw.http}.Degraded()
		if strings.Contains(why, "keeps the agents' reports on its own disk") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("degraded reason %q; want one saying the reports are kept on the tower's disk", why)
		}
		<-time.After(50 * time.Millisecond)
	}
	if code, body := serve(t, tw.Handler(), "/metrics"); !strings.Contains(body, "hinomi_tower_ingest_spooled_batches ") ||
		strings.Contains(body, "hinomi_tower_ingest_spooled_batches 0\n") || !strings.Contains(body, "hinomi_tower_database_unwritable 1") {
		t.Errorf("/metrics (%d) does not show the spool and the unreachable database:\n%s", code, grepLines(body, "spooled|unwritable"))
	}
	// Its peers still hear from it, and hear that it is degraded: the
	// towers' heartbeat needs no database.
	req := httptest.NewRequest(http.MethodGet, "/api/v1/peer", nil)
	req.Header.Set("Authorization", "Bearer peer-token-outage-aaaaaaaa")
	peerRec := httptest.NewRecorder()
	tw.Handler().ServeHTTP(peerRec, req)
	var peer struct {
		Degraded string `json:"degraded"`
	}
	if err := json.Unmarshal(peerRec.Body.Bytes(), &peer); peerRec.Code != http.StatusOK || err != nil || !strings.Contains(peer.Degraded, "PostgreSQL unreachable") {
		t.Errorf("a peer's poll during the outage: %d %s; want 200 saying PostgreSQL is unreachable", peerRec.Code, peerRec.Body)
	}
	proxy.restore()
	for range 3 {
		round()
	}
	deadline = time.Now().Add(60 * time.Second)
	for tw.in.spool.pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d batches still spooled 60 s after PostgreSQL came back", tw.in.spool.pending())
		}
		<-time.After(50 * time.Millisecond)
	}
	st := tw.store.(*pgStore)
	var n, distinct int
	if err := st.pool.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT (agent, seq)) FROM records").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != sent || distinct != sent || refused != 0 {
		t.Fatalf("PostgreSQL holds %d records (%d distinct); %d were sent and acknowledged, %d refused", n, distinct, sent, refused)
	}
	t.Logf("%d records from %d agents, %s of the outage spooled, all in PostgreSQL once", sent, agents, 5*time.Second)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if regexp.MustCompile(sub).MatchString(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
