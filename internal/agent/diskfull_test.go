package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
	towersrv "github.com/hinomi/hinomi/internal/tower"
	"github.com/hinomi/hinomi/internal/wire"
)

// receiver is a webhook endpoint that keeps the messages it gets.
type receiver struct {
	mu   sync.Mutex
	msgs []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.msgs = append(r.msgs, string(b))
	r.mu.Unlock()
}

func (r *receiver) find(sub string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.Contains(m, sub) {
			return m
		}
	}
	return ""
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestSpoolDiskFull: the agent's spool sits on a small file system that
// fills up. Thousands of records that cannot be spooled cost one error
// line, not one each; the agent counts them as lost and tells the tower
// with every batch; the tower shows the count on the host and pages
// "pve1 lost N records: its spool's disk is full" through its channel.
func TestSpoolDiskFull(t *testing.T) {
	mnt := testload.MountTmpfs(t, "1m")
	rcv := &receiver{}
	hook := httptest.NewServer(rcv)
	t.Cleanup(hook.Close)

	const agentToken, apiToken = "agent-token-0123456789abcdef", "api-token-0123456789abcdef"
	base := startTower(t, apiToken, `
agents:
  - name: pve1
    token: `+agentToken+`
channels:
  - name: ops
    type: webhook
    url: `+hook.URL+`
`)

	var logs syncBuffer
	a, err := New(Config{Towers: []string{base}, Token: agentToken, Name: "pve1", StateDir: filepath.Join(mnt, "state"),
		Kmsg: "-", Interval: 250 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.retryMin = 50 * time.Millisecond
	actx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan struct{})
	go func() { _ = a.Run(actx); close(agentDone) }()
	defer func() { stopAgent(); <-agentDone }()

	hosts := func() []towersrv.Host {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/hosts", nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ Hosts []towersrv.Host }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v.Hosts
	}
	host := func() towersrv.Host {
		for _, h := range hosts() {
			if h.Name == "pve1" {
				return h
			}
		}
		return towersrv.Host{}
	}
	waitFor(t, "the tower to hear from pve1", 30*time.Second, func() bool { return host().Spool != "" })

	free := testload.FillDisk(t, mnt)
	freed := false
	defer func() {
		if !freed {
			free()
		}
	}()
	// Many records while the disk is full (bounded: 3,000 in at most 10 s).
	const attempts = 3000
	start := time.Now()
	lost := 0
	for i := range attempts {
		if time.Since(start) > 10*time.Second {
			break
		}
		if !a.append(wire.KindStatus, wire.Status{Event: "test", Message: fmt.Sprint(i)}) {
			lost++
		}
	}
	took := time.Since(start)
	if lost < attempts/2 {
		t.Fatalf("only %d of %d records failed on a full disk", lost, attempts)
	}
	st := a.towers[0].spool.Stats()
	if st.Lost < uint64(lost) {
		t.Fatalf("spool counts %d lost; want at least %d", st.Lost, lost)
	}
	// The page goes out at the first batch that says records were lost,
	// with the count then.
	want := regexp.MustCompile(`"title":"pve1 lost ([0-9]+) records: its spool's disk is full"`)

	// The tower shows the count and pages with it.
	waitFor(t, "the tower to show the lost count", 30*time.Second, func() bool {
		h := host()
		return h.Lost >= st.Lost && h.LostReason == "its spool's disk is full"
	})
	var page string
	waitFor(t, "the page", 30*time.Second, func() bool { page = rcv.find("pve1 lost"); return page != "" })
	m := want.FindStringSubmatch(page)
	if m == nil || m[1] == "0" || !strings.Contains(page, `"severity":"medium"`) {
		t.Fatalf("page %s: want a medium alert titled %s", page, want)
	}

	out := logs.String()
	if n := strings.Count(out, "cannot spool a record"); n != 1 {
		t.Errorf("%d lines about records that could not be spooled for %d failures in %s; want 1:\n%s", n, lost, took.Round(time.Millisecond), out)
	}
	var errLines int
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			errLines++
		}
	}
	if n := strings.Count(out, "tower unreachable"); n > 0 {
		t.Errorf("%d lines call the tower unreachable while it answered:\n%s", n, out)
	}
	if errLines > 10 {
		t.Errorf("%d warning and error lines for %d records on a full disk; want at most 10:\n%s", errLines, lost, out)
	}
	t.Logf("%d records lost in %s: %d warning/error lines; page %q", lost, took.Round(time.Millisecond), errLines, m[0])

	// Space returns: the agent says once what the outage cost.
	free()
	freed = true
	if !a.append(wire.KindStatus, wire.Status{Event: "test", Message: "after"}) {
		t.Fatal("a record could not be spooled once space returned")
	}
	// The agent's own cycles may have lost a record or two after st was
	// read (a finding that changed while the disk was still full): the
	// line counts every one, as the spool does now that nothing is lost.
	final := a.towers[0].spool.Stats().Lost
	if out := logs.String(); !strings.Contains(out, "spooling records again") || !strings.Contains(out, fmt.Sprintf("lost=%d", final)) || final < st.Lost {
		t.Errorf("no line saying spooling works again with lost=%d (at least %d):\n%s", final, st.Lost, out)
	}
}
