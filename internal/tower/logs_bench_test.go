package tower

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/wire"
)

// BenchmarkTowerLogIngest measures lines a second through the tower's log
// ingest, end to end: 8 agents post, back to back for 10 s, gzip batches of
// 16 records of 500 syslog-like lines (as an agent's log spool sends them)
// to a real tower over HTTP on 127.0.0.1; the tower decodes, rate-limits,
// cuts and appends them to its embedded log store and answers once they
// are synced. In the same run, the baseline: the same lines appended to an
// embedded store directly, in batches of 8,000 from 8 goroutines, the
// store's own ceiling.
//
//	go test -run '^$' -bench TowerLogIngest -benchtime 1x ./internal/tower
func BenchmarkTowerLogIngest(b *testing.B) {
	const (
		agents    = 8
		records   = 16
		perRecord = 500
		span      = 10 * time.Second
	)
	line := func(agent, seq, i int) string {
		return fmt.Sprintf("Dec  2 03:00:%02d sim%d app[4242]: request %08d from 192.0.2.%d served in %d ms status=200 bytes=5120",
			i%60, agent, seq*perRecord+i, i%250, i%97)
	}
	at := time.Now().Add(-time.Hour)
	batch := func(agent, from int) []byte {
		env := wire.Envelope{Agent: fmt.Sprintf("sim%d", agent), Spool: "bench", Sent: at}
		for r := range records {
			seq := from + r
			ls := wire.Lines{Lines: make([]wire.Line, perRecord)}
			for i := range perRecord {
				ls.Lines[i] = wire.Line{Time: at.Add(time.Duration(seq*perRecord+i) * time.Microsecond), Source: "file:/var/log/app.log",
					Unit: "app.log", Priority: -1, Text: line(agent, seq, i)}
			}
			data, _ := json.Marshal(ls)
			env.Records = append(env.Records, wire.Record{Seq: uint64(seq), Kind: wire.KindLines, Time: at, Data: data})
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		_ = json.NewEncoder(zw).Encode(env)
		_ = zw.Close()
		return buf.Bytes()
	}
	var cfg bytes.Buffer
	fmt.Fprintf(&cfg, "data_dir: %s\nlogs: {rate_limit: 1000000, burst: 10000000}\nagents:\n", b.TempDir())
	for a := range agents {
		fmt.Fprintf(&cfg, "  - {name: sim%d, token: tok-bench-logs-%08d}\n", a, a)
	}
	c, err := ParseConfig(cfg.Bytes(), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	tw, err := New(c, Options{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(tw.Handler())
	b.Cleanup(func() {
		srv.Close()
		_ = tw.closeLogs()
		tw.store.Close()
	})
	client := &http.Client{Timeout: time.Minute}

	for b.Loop() {
		var lines, refused atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for a := range agents {
			wg.Go(func() {
				for seq := 1; time.Since(start) < span; seq += records {
					req, _ := http.NewRequest(http.MethodPost, srv.URL+wire.LinesPath, bytes.NewReader(batch(a, seq)))
					req.Header.Set("Authorization", fmt.Sprintf("Bearer tok-bench-logs-%08d", a))
					req.Header.Set("Content-Encoding", "gzip")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						refused.Add(1)
						seq -= records // sent again, as an agent would
						continue
					}
					lines.Add(records * perRecord)
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		tower := float64(lines.Load()) / took.Seconds()

		// The baseline: the store alone, the same lines, no HTTP, no JSON.
		st, err := logstore.OpenEmbedded(b.TempDir(), logstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		var direct atomic.Int64
		start = time.Now()
		for a := range agents {
			wg.Go(func() {
				for seq := 1; time.Since(start) < span; seq += records {
					entries := make([]logstore.Entry, 0, records*perRecord)
					for r := range records {
						for i := range perRecord {
							entries = append(entries, logstore.Entry{Time: at.Add(time.Duration((seq+r)*perRecord+i) * time.Microsecond),
								Host: fmt.Sprintf("sim%d", a), Source: "file:/var/log/app.log", Unit: "app.log", Priority: -1, Line: line(a, seq+r, i)})
						}
					}
					if err := st.Append(context.Background(), entries); err != nil {
						b.Error(err)
						return
					}
					direct.Add(int64(len(entries)))
				}
			})
		}
		wg.Wait()
		base := float64(direct.Load()) / time.Since(start).Seconds()
		_ = st.Close()
		b.ReportMetric(tower, "lines/s")
		b.ReportMetric(base, "store-lines/s")
		b.Logf("through the tower's log ingest: %.0f lines/s (%d lines in %s, %d batches refused and sent again); "+
			"the embedded store alone, same run: %.0f lines/s; ratio %.2f",
			tower, lines.Load(), took.Round(time.Millisecond), refused.Load(), base, tower/base)
	}
}

// BenchmarkSyslogReceiver measures syslog messages a second into the log
// store: 4 senders write RFC 3164 lines over TCP, newline-framed, as fast
// as the tower takes them (TCP pushes back), for 10 s; the figure is the
// lines stored, counted by the store. The baseline, in the same run: the
// same senders to a listener that only splits the stream into lines (the
// transport's own ceiling on this machine).
//
//	go test -run '^$' -bench SyslogReceiver -benchtime 1x ./internal/tower
func BenchmarkSyslogReceiver(b *testing.B) {
	const senders, span = 4, 10 * time.Second
	c, err := ParseConfig([]byte("data_dir: "+b.TempDir()+"\nlogs: {rate_limit: 1000000, burst: 10000000}\nsyslog: {tcp: [127.0.0.1:0]}\n"), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	tw, err := New(c, Options{})
	if err != nil {
		b.Fatal(err)
	}
	addrs, err := tw.ListenSyslog()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tw.runSyslog(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
		_ = tw.closeLogs()
		tw.store.Close()
	})
	send := func(addr string, sent *atomic.Int64, start time.Time) {
		var wg sync.WaitGroup
		for s := range senders {
			wg.Go(func() {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				w := bufio.NewWriterSize(conn, 64<<10)
				for n := 0; time.Since(start) < span; n++ {
					fmt.Fprintf(w, "<30>Dec  2 03:00:%02d nas%d smbd[811]: connect to service share%d initially as user u%d (uid=%d, gid=100) (pid %d)\n",
						n%60, s, n%50, n%1000, 1000+n%1000, 811+n%100)
					sent.Add(1)
				}
				_ = w.Flush()
			})
		}
		wg.Wait()
	}
	for b.Loop() {
		// The baseline: a listener that splits the stream into lines.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var split atomic.Int64
		var readers sync.WaitGroup
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				readers.Go(func() {
					defer c.Close()
					sc := bufio.NewScanner(c)
					for sc.Scan() {
						split.Add(1)
					}
				})
			}
		}()
		var baseSent atomic.Int64
		t0 := time.Now()
		send(l.Addr().String(), &baseSent, t0)
		l.Close()
		readers.Wait()
		base := float64(split.Load()) / time.Since(t0).Seconds()

		var sent atomic.Int64
		start := time.Now()
		send(addrs[0].String(), &sent, start)
		st, err := tw.logStore(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		var stored int64
		deadline := time.Now().Add(time.Minute)
		for stored < sent.Load() && time.Now().Before(deadline) {
			stats, err := st.Stats(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			stored = stats.Lines
			time.Sleep(100 * time.Millisecond) // polling the count
		}
		took := time.Since(start)
		rate := float64(stored) / took.Seconds()
		b.ReportMetric(rate, "messages/s")
		b.ReportMetric(base, "split-lines/s")
		b.Logf("%d syslog messages sent over TCP by %d senders, %d stored in %s: %.0f messages/s; "+
			"the transport alone (lines split, nothing kept), same run: %.0f lines/s; ratio %.2f",
			sent.Load(), senders, stored, took.Round(time.Millisecond), rate, base, rate/base)
	}
}
