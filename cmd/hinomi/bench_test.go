package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
	"github.com/hinomi/hinomi/internal/wire"
)

// procUsage reads a process's CPU time and peak RSS from /proc.
func procUsage(t testing.TB, pid int) (cpu time.Duration, peakRSS int64) {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status); m != nil {
		kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
		peakRSS = kb << 10
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, peakRSS
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkTowerThousandAgents runs the real tower binary with 1,000
// simulated agents reporting every 10 s (a batch with a finding change in
// one report of twenty), two webhook receivers (one healthy, one that never
// answers), and 20 agents that stop: it reports ingest latency, how long
// after its last report each stopped agent was notified (target: grace +
// 1 s at p99), how long the notification took after the host became
// overdue, and the tower's CPU and peak RSS. It also runs one real agent
// at the default interval and reports its CPU share and peak RSS.
//
// It runs with the SQLite store, then, in the same run, with three towers
// sharing the PostgreSQL store ($HINOMI_TEST_POSTGRES; the agents spread
// over them), and prints PostgreSQL's figures against SQLite's.
//
//	go test -run '^$' -bench TowerThousandAgents -benchtime 1x ./cmd/hinomi
func BenchmarkTowerThousandAgents(b *testing.B) {
	var sqlite, pg thousandFigures
	b.Run("sqlite", func(b *testing.B) { sqlite = benchThousandAgents(b, "", 1) })
	b.Run("postgres", func(b *testing.B) { pg = benchThousandAgents(b, testload.PostgresSchema(b), 3) })
	if sqlite.ingestP99 > 0 && pg.ingestP99 > 0 {
		b.Logf("PostgreSQL (3 towers) against SQLite (1 tower), same run: ingest p99 %s vs %s (×%.2f); last report → notification p99 %s vs %s (×%.2f)",
			pg.ingestP99, sqlite.ingestP99, pg.ingestP99.Seconds()/sqlite.ingestP99.Seconds(),
			pg.detectP99.Round(time.Millisecond), sqlite.detectP99.Round(time.Millisecond), pg.detectP99.Seconds()/sqlite.detectP99.Seconds())
	}
}

// thousandFigures are the figures one store's run is compared by.
type thousandFigures struct{ ingestP99, detectP99 time.Duration }

// benchThousandAgents is one run of BenchmarkTowerThousandAgents: with
// store "" the tower's default (SQLite), else towers of that store.
func benchThousandAgents(b *testing.B, store string, towers int) thousandFigures {
	const (
		agents   = 1000
		stopping = 20
		interval = 10 * time.Second
		grace    = 15 * time.Second
		run      = 45 * time.Second
	)
	dir := b.TempDir()
	addr := freePort(b)

	var mu sync.Mutex
	notified := map[string]time.Time{}
	arrived := make(chan struct{}, agents)
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Status string `json:"status"`
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		if p.Status == "firing" && len(p.Alerts) > 0 {
			mu.Lock()
			if _, ok := notified[p.Alerts[0].Labels["host"]]; !ok {
				notified[p.Alerts[0].Labels["host"]] = time.Now()
				arrived <- struct{}{}
			}
			mu.Unlock()
		}
	}))
	defer healthy.Close()
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "grace: %s\nalerts: {min_severity: high}\nchannels:\n  - {name: healthy, type: webhook, url: %s}\n  - {name: hung, type: webhook, url: %s}\n",
		grace, healthy.URL, hung.URL)
	if store != "" {
		fmt.Fprintf(&cfg, "store: %s\n", store)
	}
	cfg.WriteString("agents:\n")
	tokens := make([]string, agents+1)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("bench-token-%06d-xxxxxxxx", i)
		fmt.Fprintf(&cfg, "  - {name: sim%04d, token: %s}\n", i, tokens[i])
	}
	urls := make([]string, towers)
	procs := make([]*proc, towers)
	for k := range towers {
		if k > 0 {
			addr = freePort(b)
		}
		cfgPath := filepath.Join(dir, fmt.Sprintf("tower-%d.yaml", k))
		text := fmt.Sprintf("name: tower-%d\nlisten: %s\ndata_dir: %s\n", k, addr, filepath.Join(dir, fmt.Sprintf("tower-%d", k))) + cfg.String()
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
		procs[k] = start(b, "tower", "--config", cfgPath)
		procs[k].waitLine(b, regexp.MustCompile(`tower listening`), 20*time.Second)
		urls[k] = "http://" + addr
	}
	tower, url := procs[0], urls[0]
	cpu0, _ := procUsage(b, tower.cmd.Process.Pid)

	// One real agent at the default interval, reporting as sim1000.
	agentProc := start(b, "agent", "--tower", url, "--token", tokens[agents], "--name", fmt.Sprintf("sim%04d", agents),
		"--state-dir", filepath.Join(dir, "agent"))
	agentStart := time.Now()
	agentCPU0, _ := procUsage(b, agentProc.cmd.Process.Pid)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var latMu sync.Mutex
	var lats []time.Duration
	lastOK := make([]time.Time, agents)
	var failures int
	stopAt := time.Now().Add(run / 3)
	var wg sync.WaitGroup
	b.ResetTimer()
	begin := time.Now()
	for i := range agents {
		wg.Go(func() {
			name := fmt.Sprintf("sim%04d", i)
			seq := uint64(0)
			// Spread the agents over the interval, like real ones.
			next := begin.Add(time.Duration(i) * interval / agents)
			for n := 0; ; n++ {
				if time.Until(next) > 0 {
					time.Sleep(time.Until(next)) // pacing a load generator, not waiting for state
				}
				if time.Since(begin) > run || i < stopping && time.Now().After(stopAt) {
					return
				}
				env := wire.Envelope{Agent: name, Spool: "bench", Sent: time.Now(), Interval: interval}
				if n%20 == i%20 {
					seq++
					f := finding.Finding{Key: "FM-B2/uid 0", Mode: "FM-B2", Severity: finding.Medium, Subject: "uid 0", Summary: "inotify watches 88% used", Runbook: "FM-B2"}
					data, _ := json.Marshal(wire.Findings{Open: []finding.Finding{f}})
					env.Records = append(env.Records, wire.Record{Seq: seq, Kind: wire.KindFindings, Time: time.Now(), Data: data})
				}
				body, _ := json.Marshal(env)
				req, _ := http.NewRequest(http.MethodPost, urls[i%towers]+wire.Path, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tokens[i])
				start := time.Now()
				resp, err := client.Do(req)
				lat := time.Since(start)
				ok := err == nil && resp.StatusCode == 200
				if resp != nil {
					resp.Body.Close()
				}
				latMu.Lock()
				if ok {
					lats = append(lats, lat)
					lastOK[i] = time.Now()
				} else {
					failures++
				}
				latMu.Unlock()
				next = next.Add(interval)
			}
		})
	}
	wg.Wait()
	// Let the last silences be noticed and delivered.
	wait := time.NewTimer(3 * grace)
	for got := 0; got < stopping; got++ {
		select {
		case <-arrived:
		case <-wait.C:
			got = stopping
		}
	}
	wait.Stop()
	b.StopTimer()
	cpu1, rss := procUsage(b, tower.cmd.Process.Pid)
	agentCPU1, agentRSS := procUsage(b, agentProc.cmd.Process.Pid)
	agentElapsed := time.Since(agentStart)
	elapsed := time.Since(begin)

	var detect, deliver []time.Duration
	mu.Lock()
	for i := range stopping {
		at, ok := notified[fmt.Sprintf("sim%04d", i)]
		if !ok {
			b.Errorf("sim%04d stopped but no notification arrived", i)
			continue
		}
		detect = append(detect, at.Sub(lastOK[i]))
		deliver = append(deliver, at.Sub(lastOK[i].Add(grace)))
	}
	mu.Unlock()
	b.ReportMetric(float64(percentile(lats, 0.5).Microseconds())/1000, "ingest-p50-ms")
	b.ReportMetric(float64(percentile(lats, 0.99).Microseconds())/1000, "ingest-p99-ms")
	b.ReportMetric(percentile(detect, 0.99).Seconds(), "silence-to-notification-p99-s")
	b.ReportMetric(percentile(deliver, 0.99).Seconds(), "overdue-to-notification-p99-s")
	b.ReportMetric(100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), "tower-cpu-%")
	b.ReportMetric(float64(rss)/(1<<20), "tower-peak-RSS-MB")
	b.ReportMetric(100*(agentCPU1-agentCPU0).Seconds()/agentElapsed.Seconds(), "agent-cpu-%")
	b.ReportMetric(float64(agentRSS)/(1<<20), "agent-peak-RSS-MB")
	b.Logf("%d agents every %s for %s: %d batches accepted, %d failed; ingest p50 %s p99 %s; %d stopped agents: last report → notification p50 %s p99 %s (grace %s; target ≤ grace + 1 s), overdue → notification p99 %s, with a second receiver hanging; tower CPU %.1f%% of one core, peak RSS %.1f MB; real agent at the default interval: CPU %.2f%% of one core over %s, peak RSS %.1f MB",
		agents, interval, run, len(lats), failures, percentile(lats, 0.5), percentile(lats, 0.99), stopping,
		percentile(detect, 0.5).Round(time.Millisecond), percentile(detect, 0.99).Round(time.Millisecond), grace,
		percentile(deliver, 0.99).Round(time.Millisecond), 100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), float64(rss)/(1<<20),
		100*(agentCPU1-agentCPU0).Seconds()/agentElapsed.Seconds(), agentElapsed.Round(time.Second), float64(agentRSS)/(1<<20))
	return thousandFigures{ingestP99: percentile(lats, 0.99), detectP99: percentile(detect, 0.99)}
}
