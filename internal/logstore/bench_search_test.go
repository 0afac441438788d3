package logstore

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkLogSearch10M stores 10 million lines (7 days of 100 hosts) and
// times word queries: the console's search (newest first, the default limit
// of 1000) and a count of every match, against grep -c -i -w over the same
// lines as plain files (one per host) and, when HINOMI_TEST_VICTORIALOGS
// names a server, VictoriaLogs holding the same lines. Each query runs
// three times on the store, once with grep and VictoriaLogs. Opt-in: it
// takes about ten minutes (HINOMI_BENCH_LOGSEARCH=1).
func BenchmarkLogSearch10M(b *testing.B) {
	if os.Getenv("HINOMI_BENCH_LOGSEARCH") == "" {
		b.Skip("opt-in, it takes about ten minutes: HINOMI_BENCH_LOGSEARCH=1 (HINOMI_BENCH_LOGS_DIR=DIR keeps the stored lines between runs)")
	}
	n := 10_000_000
	if s := os.Getenv("HINOMI_BENCH_LOGS_LINES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := os.Getenv("HINOMI_BENCH_LOGS_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	templates := benchTemplates(b)
	const span = 7 * 24 * time.Hour
	storeDir := filepath.Join(dir, fmt.Sprintf("store-%d", n))
	plainDir := filepath.Join(dir, fmt.Sprintf("plain-%d", n))
	marker := filepath.Join(dir, fmt.Sprintf("complete-%d", n))
	// lines regenerates the benchmark's lines, the same every time.
	lines := func(t0 time.Time, fn func(batch []Entry) bool) {
		g := newLineGen(templates, 7)
		step := span / time.Duration(n)
		batch := make([]Entry, 0, 1000)
		for i := range n {
			// Up to 2 s late: blocks overlap a little, as agents' batches do.
			t := t0.Add(time.Duration(i)*step - time.Duration(g.rng.IntN(2000))*time.Millisecond)
			batch = append(batch, g.next(t))
			if len(batch) == cap(batch) || i == n-1 {
				if !fn(batch) {
					return
				}
				batch = batch[:0]
			}
		}
	}

	var t0 time.Time
	if b2, err := os.ReadFile(marker); err == nil {
		t0, err = time.Parse(time.RFC3339, strings.TrimSpace(string(b2)))
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "reusing %d lines in %s\n", n, dir)
	} else {
		t0 = time.Now().Add(-span - time.Hour).Truncate(time.Hour).UTC()
		os.RemoveAll(storeDir)
		os.RemoveAll(plainDir)
		if err := os.MkdirAll(plainDir, 0o750); err != nil {
			b.Fatal(err)
		}
		s, err := OpenEmbedded(storeDir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		files := map[string]*bufio.Writer{}
		var closers []*os.File
		start := time.Now()
		done := 0
		var buf []byte
		lines(t0, func(batch []Entry) bool {
			if err := s.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			for i := range batch {
				w := files[batch[i].Host]
				if w == nil {
					f, err := os.Create(filepath.Join(plainDir, batch[i].Host+".log"))
					if err != nil {
						b.Fatal(err)
					}
					closers = append(closers, f)
					w = bufio.NewWriterSize(f, 1<<16)
					files[batch[i].Host] = w
				}
				buf = plainLine(buf[:0], &batch[i])
				w.Write(buf)
			}
			done += len(batch)
			if done%1_000_000 == 0 {
				fmt.Fprintf(os.Stderr, "stored %d of %d lines (%.0f lines/s)\n", done, n, float64(done)/time.Since(start).Seconds())
			}
			return true
		})
		for _, w := range files {
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		for _, f := range closers {
			f.Close()
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "stored %d lines in %s\n", n, time.Since(start).Round(time.Second))
		if err := os.WriteFile(marker, []byte(t0.Format(time.RFC3339)+"\n"), 0o640); err != nil {
			b.Fatal(err)
		}
	}

	s, err := OpenEmbedded(storeDir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	st, err := s.Stats(context.Background())
	if err != nil || st.Lines != int64(n) {
		b.Fatalf("store: %+v, %v; want %d lines", st, err, n)
	}
	var plainBytes int64
	entries, _ := os.ReadDir(plainDir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			plainBytes += fi.Size()
		}
	}

	vlURL := os.Getenv("HINOMI_TEST_VICTORIALOGS")
	var vl *VictoriaLogs
	vlLines := int64(0)
	if vlURL != "" {
		vs, err := OpenVictoriaLogs(context.Background(), vlURL, Options{HTTPClient: &http.Client{Timeout: 5 * time.Minute}})
		if err != nil {
			b.Fatal(err)
		}
		vl = vs.(*VictoriaLogs)
		window := fmt.Sprintf("_time:[%s, %s)", t0.Add(-time.Hour).Format(time.RFC3339), t0.Add(span+time.Hour).Format(time.RFC3339))
		vlLines = vlCount(b, vl, window)
		if vlLines != int64(n) {
			if vlLines != 0 {
				b.Fatalf("VictoriaLogs holds %d lines of this benchmark's window, not 0 or %d: give it an empty data directory", vlLines, n)
			}
			vlLoad(b, vl, n, lines, t0)
			vlLines = vlCount(b, vl, window)
		}
		fmt.Fprintf(os.Stderr, "VictoriaLogs holds %d lines\n", vlLines)
	}

	words := benchWords(b, n, lines, t0)
	type sample struct{ store, storeAll, grep, vl, vlAll []time.Duration }
	var smp sample
	var report []string
	ctx := context.Background()
	for _, w := range words {
		q, err := ParseQuery(w.word)
		if err != nil {
			b.Fatal(err)
		}
		var got, all int
		for range 3 {
			q.Newest, q.Limit = true, 0
			start := time.Now()
			got = 0
			if err := s.Search(ctx, q, func(Entry) bool { got++; return true }); err != nil {
				b.Fatal(err)
			}
			smp.store = append(smp.store, time.Since(start))
			q.Newest, q.Limit = false, math.MaxInt
			start = time.Now()
			all = 0
			if err := s.Search(ctx, q, func(Entry) bool { all++; return true }); err != nil {
				b.Fatal(err)
			}
			smp.storeAll = append(smp.storeAll, time.Since(start))
		}
		start := time.Now()
		out, _ := exec.Command("grep", "-c", "-i", "-w", "-r", "--", w.word, plainDir).Output()
		smp.grep = append(smp.grep, time.Since(start))
		grepCount := 0
		for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			if i := strings.LastIndexByte(l, ':'); i >= 0 {
				c, _ := strconv.Atoi(l[i+1:])
				grepCount += c
			}
		}
		vlGot, vlAll := -1, int64(-1)
		if vl != nil {
			// Once: VictoriaLogs takes seconds a query on 10 million lines.
			for range 1 {
				q.Newest, q.Limit = true, 0
				start := time.Now()
				vlGot = 0
				if err := vl.Search(ctx, q, func(Entry) bool { vlGot++; return true }); err != nil {
					b.Fatal(err)
				}
				smp.vl = append(smp.vl, time.Since(start))
				start = time.Now()
				vlAll = vlCount(b, vl, "i("+strconv.Quote(w.word)+")")
				smp.vlAll = append(smp.vlAll, time.Since(start))
			}
		}
		report = append(report, fmt.Sprintf("%-8s %-20s sample %5d  store %4d shown, %8d in all; grep -c %8d; VictoriaLogs %4d shown, %8d in all",
			w.kind, w.word, w.count, got, all, grepCount, vlGot, vlAll))
	}
	for _, r := range report {
		fmt.Fprintln(os.Stderr, r)
	}
	p := func(ds []time.Duration, q float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[int(math.Ceil(q*float64(len(ds))))-1]
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(p(smp.store, 0.95)), "p95-ms")
	b.ReportMetric(ms(p(smp.store, 0.5)), "p50-ms")
	b.ReportMetric(ms(p(smp.storeAll, 0.95)), "count-p95-ms")
	b.ReportMetric(ms(p(smp.grep, 0.95)), "grep-p95-ms")
	b.ReportMetric(float64(p(smp.grep, 0.95))/float64(p(smp.storeAll, 0.95)), "x-grep-count")
	b.ReportMetric(float64(st.DiskBytes)/float64(n)*1e6/(1<<20), "MB-per-1M-lines")
	b.ReportMetric(float64(plainBytes)/float64(n)*1e6/(1<<20), "plain-MB-per-1M-lines")
	if vl != nil {
		b.ReportMetric(ms(p(smp.vl, 0.95)), "vl-p95-ms")
		b.ReportMetric(ms(p(smp.vlAll, 0.95)), "vl-count-p95-ms")
		b.ReportMetric(float64(p(smp.vl, 0.95))/float64(p(smp.store, 0.95)), "x-vl")
		b.ReportMetric(float64(p(smp.vlAll, 0.95))/float64(p(smp.storeAll, 0.95)), "x-vl-count")
		if size, err := vl.dataSize(ctx); err == nil {
			b.ReportMetric(float64(size)/float64(vlLines)*1e6/(1<<20), "vl-MB-per-1M-lines")
		}
	}
	b.Logf("%d lines, %d word queries: store p50 %v p95 %v (newest 1000), count of all p95 %v; grep -c p95 %v; VictoriaLogs p95 %v, count p95 %v",
		n, len(words), p(smp.store, 0.5), p(smp.store, 0.95), p(smp.storeAll, 0.95), p(smp.grep, 0.95), p(smp.vl, 0.95), p(smp.vlAll, 0.95))
}

type benchWord struct {
	kind, word string
	count      int
}

// benchWords picks query words by how often they occur in the first
// 200,000 lines: 8 rare (1 line in 10,000 or fewer), 8 uncommon (about 1
// line in 1,000) and 8 common (1 line in 40 or more); words of letters only, not
// host or unit names.
func benchWords(b *testing.B, n int, lines func(time.Time, func([]Entry) bool), t0 time.Time) []benchWord {
	counts := map[string]int{}
	seen := 0
	// Sample the whole span: rare words come in bursts.
	lines(t0, func(batch []Entry) bool {
		seen += len(batch)
		if seen%(1000*max(1, n/200_000)) != 0 {
			return true
		}
		for i := range batch {
			words := map[string]bool{}
			lower := lowerInto(nil, []byte(batch[i].Line))
			forEachToken(lower, func(tok []byte) {
				if len(tok) >= 5 && strings.IndexFunc(string(tok), func(r rune) bool { return r < 'a' || r > 'z' }) < 0 {
					words[string(tok)] = true
				}
			})
			for w := range words {
				counts[w]++
			}
		}
		return true
	})
	skip := map[string]bool{"journal": true, "kernel": true, "container": true, "service": true}
	for _, u := range benchUnits {
		for _, p := range strings.FieldsFunc(u, func(r rune) bool { return r == '.' || r == ':' }) {
			skip[p] = true
		}
	}
	type wc struct {
		w string
		c int
	}
	var all []wc
	for w, c := range counts {
		if !skip[w] && !strings.HasPrefix(w, "node") {
			all = append(all, wc{w, c})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].c != all[j].c {
			return all[i].c < all[j].c
		}
		return all[i].w < all[j].w
	})
	pick := func(kind string, lo, hi int) []benchWord {
		var in []wc
		for _, x := range all {
			if x.c >= lo && x.c <= hi {
				in = append(in, x)
			}
		}
		var out []benchWord
		for i := 0; i < 8 && len(in) > 0; i++ {
			x := in[i*len(in)/8]
			out = append(out, benchWord{kind, x.w, x.c})
		}
		return out
	}
	words := pick("rare", 1, 20)
	words = append(words, pick("uncommon", 100, 400)...)
	words = append(words, pick("common", 5_000, 1<<30)...)
	if len(words) < 20 {
		b.Fatalf("only %d query words found", len(words))
	}
	return words
}

// vlCount counts the lines VictoriaLogs matches for a LogsQL filter.
func vlCount(b *testing.B, vl *VictoriaLogs, filter string) int64 {
	rows, err := vl.query(context.Background(), filter+" | stats count() n")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var row map[string]string
	if err := json.NewDecoder(rows).Decode(&row); err != nil && err != io.EOF {
		b.Fatal(err)
	}
	c, _ := strconv.ParseInt(row["n"], 10, 64)
	return c
}

// vlLoad sends the benchmark's lines to VictoriaLogs, from 2 writers,
// bounded by HINOMI_BENCH_VL_MINUTES (default 30).
func vlLoad(b *testing.B, vl *VictoriaLogs, n int, lines func(time.Time, func([]Entry) bool), t0 time.Time) {
	limit := 30 * time.Minute
	if s := os.Getenv("HINOMI_BENCH_VL_MINUTES"); s != "" {
		m, _ := strconv.Atoi(s)
		limit = time.Duration(m) * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	work := make(chan []Entry, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 2 {
		wg.Go(func() {
			for batch := range work {
				if err := vl.Append(ctx, batch); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	done := 0
	var big []Entry
	lines(t0, func(batch []Entry) bool {
		big = append(big, batch...)
		if len(big) >= 10_000 || done+len(big) == n {
			work <- big
			done += len(big)
			big = nil
			if done%1_000_000 == 0 {
				fmt.Fprintf(os.Stderr, "VictoriaLogs: sent %d of %d lines (%.0f lines/s)\n", done, n, float64(done)/time.Since(start).Seconds())
			}
		}
		return ctx.Err() == nil
	})
	close(work)
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("loading VictoriaLogs (bounded by %v, HINOMI_BENCH_VL_MINUTES): %v", limit, firstErr)
	}
	req, _ := http.NewRequest(http.MethodGet, vl.endpoint("/internal/force_flush", url.Values{}), nil)
	if resp, err := vl.client.Do(req); err == nil {
		resp.Body.Close()
	}
	fmt.Fprintf(os.Stderr, "VictoriaLogs: %d lines loaded in %s (%.0f lines/s)\n", done, time.Since(start).Round(time.Second), float64(done)/time.Since(start).Seconds())
}
