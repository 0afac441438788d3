package tower

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
	"github.com/hinomi/hinomi/internal/wire"
)

var storesRun = flag.Duration("stores.run", 30*time.Second, "BenchmarkIngestStores: how long each store's load runs")

// BenchmarkIngestStores is the ingest of 1,000 agents reporting every
// 10 s (100 batches a second; one batch in twenty carries a finding) on
// SQLite, one tower, and then, in the same run, on PostgreSQL
// ($HINOMI_TEST_POSTGRES), three towers in this process sharing it, each
// serving a third of the agents over real HTTP on 127.0.0.1 while its
// engine runs (lease, evaluation, following the others). It prints each
// store's p50, p99 and maximum at the client and of the store's write of
// a batch (SaveBatch) alone, and PostgreSQL's p99 against SQLite's.
//
//	go test -run '^$' -bench IngestStores -benchtime 1x ./internal/tower -args -stores.run=30s
func BenchmarkIngestStores(b *testing.B) {
	for b.Loop() {
		if f, err := os.ReadFile("/proc/loadavg"); err == nil {
			b.Logf("load average %s", strings.Join(strings.Fields(string(f))[:3], " "))
		}
		sqlite := ingestStoresRun(b, "", 1)
		b.ReportMetric(ms(sqlite.client.p99), "sqlite-p99-ms")
		if os.Getenv("HINOMI_TEST_POSTGRES") == "" {
			b.Log("HINOMI_TEST_POSTGRES is not set: SQLite alone")
			continue
		}
		pg := ingestStoresRun(b, testload.PostgresSchema(b), 3)
		b.ReportMetric(ms(pg.client.p99), "postgres-p99-ms")
		b.ReportMetric(pg.client.p99.Seconds()/sqlite.client.p99.Seconds(), "postgres/sqlite-p99")
		b.Logf("same run, 1,000 agents: PostgreSQL (3 towers) p99 %s against SQLite (1 tower) %s: ×%.2f (target < 20 ms)",
			pg.client.p99, sqlite.client.p99, pg.client.p99.Seconds()/sqlite.client.p99.Seconds())
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// latencies are a distribution's p50, p99 and maximum.
type latencies struct{ p50, p99, max time.Duration }

func latenciesOf(ds []time.Duration) latencies {
	if len(ds) == 0 {
		return latencies{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(float64(len(s))*p))] }
	return latencies{p50: at(0.5), p99: at(0.99), max: s[len(s)-1]}
}

func (l latencies) String() string {
	return fmt.Sprintf("p50 %s p99 %s max %s", l.p50.Round(10*time.Microsecond), l.p99.Round(10*time.Microsecond), l.max.Round(10*time.Microsecond))
}

// timedStore times the store's writes of batches.
type timedStore struct {
	Store
	mu   *sync.Mutex
	lats *[]time.Duration
}

func (s timedStore) SaveBatch(ctx context.Context, b Batch) (BatchResult, error) {
	start := time.Now()
	r, err := s.Store.SaveBatch(ctx, b)
	d := time.Since(start)
	s.mu.Lock()
	*s.lats = append(*s.lats, d)
	s.mu.Unlock()
	return r, err
}

type ingestFigures struct{ client, store latencies }

// ingestStoresRun runs the load against towers of one store ("" for
// SQLite) and returns the latencies at the client and of the store.
func ingestStoresRun(b *testing.B, store string, towers int) ingestFigures {
	const (
		agents   = 1000
		interval = 10 * time.Second
	)
	run := *storesRun
	var cfg strings.Builder
	cfg.WriteString("grace: 15s\nalerts: {min_severity: high}\nagents:\n")
	tokens := make([]string, agents)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("stores-token-%06d-xxxxxxxx", i)
		fmt.Fprintf(&cfg, "  - {name: sim%04d, token: %s}\n", i, tokens[i])
	}
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	defer func() {
		cancel()
		running.Wait()
	}()
	var mu sync.Mutex
	var lats, writes []time.Duration
	urls := make([]string, towers)
	for k := range towers {
		text := fmt.Sprintf("name: tower-%d\nlisten: 127.0.0.1:0\ndata_dir: %s\n", k, filepath.Join(dir, fmt.Sprint(k)))
		if store != "" {
			text += "store: " + store + "\n"
		}
		c, err := ParseConfig([]byte(text+cfg.String()), "stores.yaml")
		if err != nil {
			b.Fatal(err)
		}
		tw, err := New(c, Options{})
		if err != nil {
			b.Fatal(err)
		}
		// Ingest's writes, timed; the other parts keep the store itself.
		tw.store = timedStore{Store: tw.store, mu: &mu, lats: &writes}
		addr, err := tw.Listen()
		if err != nil {
			b.Fatal(err)
		}
		urls[k] = "http://" + addr.String()
		running.Go(func() {
			if err := tw.Run(ctx); err != nil {
				b.Error(err)
			}
		})
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	failed := 0
	begin := time.Now()
	var wg sync.WaitGroup
	for i := range agents {
		wg.Go(func() {
			name := fmt.Sprintf("sim%04d", i)
			seq := uint64(0)
			next := begin.Add(time.Duration(i) * interval / agents)
			for n := 0; ; n++ {
				time.Sleep(time.Until(next)) // pacing a load generator, not waiting for state
				if time.Since(begin) > run {
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
				ok := err == nil && resp.StatusCode == http.StatusOK
				if resp != nil {
					resp.Body.Close()
				}
				mu.Lock()
				if ok {
					lats = append(lats, lat)
				} else {
					failed++
				}
				mu.Unlock()
				next = next.Add(interval)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if failed > 0 {
		b.Errorf("%d batches refused or failed", failed)
	}
	f := ingestFigures{client: latenciesOf(lats), store: latenciesOf(writes)}
	what := "SQLite, 1 tower"
	if store != "" {
		what = fmt.Sprintf("PostgreSQL, %d towers", towers)
	}
	b.Logf("%s: %d batches in %s; at the client %s; the store's write %s", what, len(lats), run, f.client, f.store)
	return f
}
