package logstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// The benchmarks store realistic lines: the real log excerpts of the
// signature corpus (internal/signatures/testdata) and of the shared samples,
// with their numbers (pids, addresses, counters, times) redrawn for each
// line, from 100 hosts and their units.

func benchTemplates(b *testing.B) []string {
	var out []string
	seen := map[string]bool{}
	dirs := []string{"../signatures/testdata", os.Getenv("HINOMI_SAMPLES"), "../../../shared/samples", "../../../../shared/samples"}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		filepath.WalkDir(d, func(path string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			for l := range strings.SplitSeq(string(data), "\n") {
				l = strings.TrimSpace(l)
				if len(l) < 20 || strings.HasPrefix(l, "#") || seen[l] {
					continue
				}
				seen[l] = true
				out = append(out, CutLine(l))
			}
			return nil
		})
	}
	if len(out) < 1000 {
		b.Fatalf("only %d sample lines found", len(out))
	}
	sort.Strings(out)
	return out
}

var benchUnits = []string{"kernel", "systemd", "sshd.service", "dockerd.service", "containerd.service", "kubelet.service",
	"corosync.service", "pve-cluster.service", "nginx.service", "postgresql.service", "cron.service", "chronyd.service",
	"zfs-zed.service", "smartd.service", "container:api", "container:worker", "container:redis"}

// lineGen draws lines from the templates, some far more often than others
// (a Zipf distribution, as in real logs, where a few messages make most of
// the volume and most messages are rare).
type lineGen struct {
	rng       *rand.Rand
	zipf      *rand.Zipf
	templates []string
	buf       []byte
}

func newLineGen(templates []string, seed uint64) *lineGen {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t := slices.Clone(templates)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(t), func(i, j int) { t[i], t[j] = t[j], t[i] })
	return &lineGen{rng: rng, zipf: rand.NewZipf(rng, 1.1, 4, uint64(len(t)-1)), templates: t}
}

func (g *lineGen) next(t time.Time) Entry {
	// Rare messages come in bursts, as incidents do: template k (0 the most
	// frequent) speaks only in one hour out of 1+k/50.
	k := g.zipf.Uint64()
	for range 8 {
		if k < 50 || xxhash.Sum64String(strconv.FormatUint(k, 10)+t.Truncate(time.Hour).String())%(1+k/50) == 0 {
			break
		}
		k = g.zipf.Uint64()
	}
	tpl := g.templates[k]
	g.buf = g.buf[:0]
	for i := 0; i < len(tpl); i++ {
		c := tpl[i]
		if '0' <= c && c <= '9' {
			c = byte('0' + g.rng.IntN(10))
		}
		g.buf = append(g.buf, c)
	}
	host := g.rng.IntN(100)
	unit := benchUnits[(host+g.rng.IntN(6))%len(benchUnits)]
	src := "journal"
	if unit == "kernel" {
		src = "kmsg"
	} else if strings.HasPrefix(unit, "container:") {
		src = unit
	}
	pri := 6
	switch r := g.rng.IntN(100); {
	case r < 3:
		pri = 3
	case r < 10:
		pri = 4
	case r < 15:
		pri = 7
	}
	return Entry{Time: t, Host: fmt.Sprintf("node%02d", host), Source: src, Unit: unit, Priority: pri, Line: string(g.buf)}
}

// plainLine is how a line sits in a plain log file (the grep baseline).
func plainLine(dst []byte, e *Entry) []byte {
	dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, ' ')
	dst = append(dst, e.Host...)
	dst = append(dst, ' ')
	dst = append(dst, e.Unit...)
	dst = append(dst, ": "...)
	dst = append(dst, e.Line...)
	return append(dst, '\n')
}

// BenchmarkLogIngest appends 300,000 lines in batches of 500 from 4
// writers (agents' batches arriving at once) and compares with the floor of
// any durable store: the same lines appended to one plain file, fsync'd
// after each batch. It also prints the size on disk per million lines,
// against gzip of the plain lines.
func BenchmarkLogIngest(b *testing.B) {
	const total, batch, writers = 300_000, 500, 4
	templates := benchTemplates(b)
	g := newLineGen(templates, 1)
	t0 := time.Now().Add(-24 * time.Hour)
	lines := make([]Entry, total)
	for i := range lines {
		lines[i] = g.next(t0.Add(time.Duration(i) * time.Millisecond))
	}
	var plain []byte
	for i := range lines {
		plain = plainLine(plain, &lines[i])
	}
	for b.Loop() {
		dir := b.TempDir()
		s, err := OpenEmbedded(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				for i := w * batch; i < total; i += writers * batch {
					if err := s.Append(context.Background(), lines[i:min(i+batch, total)]); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		s2, err := OpenEmbedded(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		st, err := s2.Stats(context.Background())
		s2.Close()
		if err != nil || st.Lines != total {
			b.Fatalf("after ingest: %+v, %v; want %d lines", st, err, total)
		}

		// Baseline: one plain file, a write and an fsync per batch.
		f, err := os.Create(filepath.Join(b.TempDir(), "plain.log"))
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		var buf []byte
		for i := 0; i < total; i += batch {
			buf = buf[:0]
			for j := i; j < min(i+batch, total); j++ {
				buf = plainLine(buf, &lines[j])
			}
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		plainTook := time.Since(start)
		f.Close()

		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(plain)
		zw.Close()

		rate := float64(total) / took.Seconds()
		plainRate := float64(total) / plainTook.Seconds()
		perM := float64(st.DiskBytes) / total * 1e6 / (1 << 20)
		gzPerM := float64(gz.Len()) / total * 1e6 / (1 << 20)
		rawPerM := float64(len(plain)) / total * 1e6 / (1 << 20)
		b.ReportMetric(rate, "lines/s")
		b.ReportMetric(rate/50_000, "x-target-50k")
		b.ReportMetric(plainRate, "plain-fsync-lines/s")
		b.ReportMetric(rate/plainRate, "x-plain-fsync")
		b.ReportMetric(perM, "MB-per-1M-lines")
		b.ReportMetric(gzPerM, "gzip-MB-per-1M-lines")
		b.ReportMetric(perM/gzPerM, "x-gzip-size")
		b.ReportMetric(rawPerM, "raw-MB-per-1M-lines")
		b.Logf("%d lines from %d templates: %.0f lines/s (%.2f× the 50,000 target), plain file + fsync per batch %.0f lines/s; "+
			"on disk %.1f MB per million lines, gzip of the plain lines %.1f MB, raw %.1f MB",
			total, len(templates), rate, rate/50_000, plainRate, perM, gzPerM, rawPerM)
	}
}
