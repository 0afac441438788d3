package tower

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
	"github.com/hinomi/hinomi/internal/web"
)

// counter is a webhook endpoint that counts what it accepts.
type counter struct {
	srv *httptest.Server
	n   atomic.Int64
}

func newCounter(t *testing.T) *counter {
	c := &counter{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		c.n.Add(1)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// TestDiskFullDoesNotResend: the receiver accepts a message but the disk
// is full, so its delivery cannot be written. The channel must not send it
// again however often it is asked, must try writing it again only on the
// retry schedule, and writes it once space returns.
func TestDiskFullDoesNotResend(t *testing.T) {
	sqliteOnly(t, "a full disk under SQLite's file; PostgreSQL's outage is TestSharedPostgresOutageSpoolsIngest")
	r := newCounter(t)
	dir := testload.MountTmpfs(t, "8m")
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	tw := openTower(t, c, `
data_dir: `+dir+`
grace: 30s
agents:
  - name: pve1
    token: `+tokenA+`
alerts:
  never_reported: false
channels:
  - name: ops
    type: webhook
    url: `+r.srv.URL+`
`)
	ctx := context.Background()
	if rec, _ := post(t, tw.Handler(), tokenA, batch("pve1", "s1", 1)); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	c.Set(t0.Add(31 * time.Second))
	if err := tw.Evaluate(ctx, c.Now()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, tw, "SELECT count(*) FROM outbox WHERE state = 'due'"); n != 1 {
		t.Fatalf("%d due messages, want 1", n)
	}
	free := testload.FillDisk(t, dir)

	// The dispatcher asks again at once after a send; a hundred asks at
	// the same instant, then some a little later, send it only once.
	for range 100 {
		if _, err := tw.out.sendNext(ctx, "ops"); err != nil {
			break
		}
	}
	for range 100 {
		_, _ = tw.out.sendNext(ctx, "ops")
	}
	if got := int(r.n.Load()); got != 1 {
		t.Fatalf("receiver got %d copies, want 1", got)
	}
	var failures int
	tw.out.unrecMu.Lock()
	if u := tw.out.unrec["ops"]; u != nil {
		failures = u.failures
	}
	tw.out.unrecMu.Unlock()
	if failures != 1 {
		t.Errorf("the delivery was written %d times at the same instant, want once before its retry is due", failures)
	}
	// Its retries follow the schedule and still send nothing.
	for _, d := range []time.Duration{2 * time.Second, 5 * time.Second, time.Minute} {
		c.Set(c.Now().Add(d))
		if sent, err := tw.out.sendNext(ctx, "ops"); sent || err == nil {
			t.Errorf("+%s with the disk full: sent %v, err %v; want held with an error", d, sent, err)
		}
	}
	if got := int(r.n.Load()); got != 1 {
		t.Fatalf("receiver got %d copies, want 1", got)
	}

	free()
	c.Set(c.Now().Add(time.Minute))
	drain(t, tw, "ops")
	if got := int(r.n.Load()); got != 1 {
		t.Fatalf("receiver got %d copies after space returned, want 1", got)
	}
	if n := count(t, tw, "SELECT count(*) FROM outbox WHERE state = 'delivered' AND attempts = 1"); n != 1 {
		t.Errorf("%d messages recorded delivered after one attempt, want 1", n)
	}
}

// syncBuffer is a log destination tests read while the tower writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func serve(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestDiskFullDegraded: with its disk full the tower says it is degraded
// (healthz, metrics, status page), pages through its channel that it
// cannot write its database, keeps judging silence in memory (a host
// that still reports is not silent, one that stopped is paged), logs the
// failing writes once, and recovers by itself when space returns.
func TestDiskFullDegraded(t *testing.T) {
	r := newReceiver(t)
	dir := testload.MountTmpfs(t, "8m")
	t0 := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	cfg, err := ParseConfig([]byte(`
name: pve-tower
peer_token: peer-token-pppppppppp
data_dir: `+dir+`
grace: 30s
api_token: `+apiToken+`
agents:
  - name: pve1
    token: `+tokenA+`
  - name: pve2
    token: `+tokenB+`
alerts:
  never_reported: false
channels:
  - name: ops
    type: webhook
    url: `+r.srv.URL+`
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	tw, err := New(cfg, Options{Now: c.Now, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw.store.Close() })
	site, err := web.New(tw.Web(), web.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	pages := site.Handler()
	api := tw.Handler()
	ctx := context.Background()
	step := func(d time.Duration) {
		t.Helper()
		c.Set(c.Now().Add(d))
		_ = tw.Evaluate(ctx, c.Now())
		tw.watchStorage(ctx, c.Now())
	}
	// waitFor steps the engine until the receiver has a message holding
	// every want (and none of the refused), or fails after a deadline.
	waitFor := func(refuse string, want ...string) string {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for seen := 0; ; {
			msgs := r.messages()
			for _, m := range msgs[seen:] {
				b, _ := json.Marshal(m)
				s := string(b)
				ok := refuse == "" || !strings.Contains(s, refuse)
				for _, w := range want {
					ok = ok && strings.Contains(s, w)
				}
				if ok {
					return s
				}
			}
			seen = len(msgs)
			select {
			case <-r.seen:
			case <-time.After(100 * time.Millisecond):
				tw.watchStorage(ctx, c.Now())
			case <-deadline:
				t.Fatalf("no message with %q (without %q) among %d", want, refuse, len(r.messages()))
			}
		}
	}

	for _, tok := range []string{tokenA, tokenB} {
		name := map[string]string{tokenA: "pve1", tokenB: "pve2"}[tok]
		if rec, _ := post(t, api, tok, batch(name, "s1", 1)); rec.Code != 200 {
			t.Fatal(rec.Body.String())
		}
	}
	step(time.Second)
	if code, body := serve(t, api, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz before: %d %q", code, body)
	}
	free := testload.FillDisk(t, dir)

	// pve1 keeps reporting; nothing can be stored.
	var seq uint64 = 2
	report := func() {
		t.Helper()
		rec, _ := post(t, api, tokenA, batch("pve1", "s1", seq))
		seq++
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("batch with the disk full: %d, want 503", rec.Code)
		}
	}
	for range 50 {
		report()
	}
	step(time.Second)
	const why = "tower pve-tower cannot write its database: disk full"
	if code, body := serve(t, api, "/healthz"); code != 503 || !strings.Contains(body, why) {
		t.Errorf("healthz with the disk full: %d %q, want 503 saying %q", code, body, why)
	}
	if _, body := serve(t, api, "/metrics"); !strings.Contains(body, "hinomi_tower_database_unwritable 1") {
		t.Error("metrics do not show the database unwritable")
	}
	if _, body := serve(t, pages, "/"); !strings.Contains(body, "Monitoring is degraded") || !strings.Contains(body, why) {
		t.Error("status page has no degraded banner")
	}
	waitFor("", "Tower pve-tower cannot write its database: disk full")

	// A peer sees it in its poll, pages through its own channels and
	// sends in its place (it would otherwise leave that to pve-tower,
	// whose name sorts first).
	srv := httptest.NewServer(api)
	defer srv.Close()
	peer := newPolicyTower(t, "name: z\npeer_token: peer-token-zzzzzzzzzz\npeers:\n  - {name: pve-tower, url: \""+srv.URL+"\", token: peer-token-pppppppppp}\n"+
		"routes:\n  - {match: {}, channels: [ops]}\n")
	pctx, stopPolling := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() { defer close(polled); peer.tw.pollPeers(pctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for peer.tw.peers.degradedWhy("pve-tower") == "" {
		if time.Now().After(deadline) {
			t.Fatal("the peer never saw that pve-tower is degraded")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	stopPolling()
	<-polled
	peer.tw.peers.seen("pve-tower", peer.c.Now())
	peer.at(0)
	if s := peer.tw.senderPeer(peer.c.Now(), peer.tw.cfg.Load()); s != "" {
		t.Errorf("the peer leaves sending to %s, which cannot", s)
	}
	if got := subjects(peer.ops); len(got) != 1 || !strings.Contains(got[0], "Tower pve-tower is degraded: "+why) {
		t.Errorf("the peer sent %q, want its page that pve-tower is degraded", got)
	}

	// 45 s on, pve2 (silent since t0) is judged silent in memory and paged;
	// pve1, heard from all along though nothing was stored, is not.
	for range 4 {
		report()
		step(10 * time.Second)
	}
	msg := waitFor("heartbeat/pve1", "cannot write its database", "Host pve2 is silent (heartbeat/pve2)")
	if !strings.Contains(msg, "22:00:00 UTC") {
		t.Errorf("the in-memory page does not say since when pve2 is silent: %s", msg)
	}
	if n := strings.Count(logs.String(), "storing a batch"); n != 1 {
		t.Errorf("%d log lines for the failing batches in a minute, want 1", n)
	}

	free()
	step(10 * time.Second)
	waitFor("", "Tower pve-tower can write its database again")
	if code, body := serve(t, api, "/healthz"); code != 200 {
		t.Errorf("healthz after space returned: %d %q", code, body)
	}
	if _, body := serve(t, api, "/metrics"); !strings.Contains(body, "hinomi_tower_database_unwritable 0") {
		t.Error("metrics still show the database unwritable")
	}
	// Stored and sent through the outbox as usual again.
	report2, _ := post(t, api, tokenA, batch("pve1", "s1", seq))
	if report2.Code != 200 {
		t.Fatalf("batch after space returned: %d", report2.Code)
	}
	step(time.Second)
	drain(t, tw, "ops")
	waitFor("cannot write", "Host pve2 is silent")
}
