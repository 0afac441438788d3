package signatures

import (
	"bufio"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/logline"
)

// corpus builds a log of at least size bytes from real benign lines (the
// captures under ../logline/testdata/benign) with the catalogue's real
// distress examples mixed in, one every `every` lines.
func corpus(tb testing.TB, c *Catalogue, size, every int) string {
	tb.Helper()
	var benign [][]byte
	err := filepath.WalkDir("../logline/testdata/benign", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".md") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(l) > 0 && l[0] != '#' {
				benign = append(benign, l)
			}
		}
		return nil
	})
	if err != nil || len(benign) == 0 {
		tb.Fatalf("benign corpora: %v (%d lines)", err, len(benign))
	}
	var distress []string
	for _, s := range c.Sigs {
		for _, ex := range s.Examples {
			distress = append(distress, ex.Line)
		}
	}
	path := filepath.Join(tb.TempDir(), "corpus.log")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	written, n := 0, 0
	for written < size {
		var l []byte
		if n%every == every-1 {
			l = []byte(distress[(n/every)%len(distress)])
		} else {
			l = benign[n%len(benign)]
		}
		w.Write(l)
		w.WriteByte('\n')
		written += len(l) + 1
		n++
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// naive is the approach of tools that test every line against every
// signature's expression in turn (node-problem-detector's log monitor):
// normalise each line, then try each pattern.
func naive(c *Catalogue, r io.Reader) (events int, lines int) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), logline.MaxLine)
	for sc.Scan() {
		lines++
		e := logline.Parse(sc.Bytes(), nil, logline.Context{})
		for _, s := range c.Sigs {
			if s.re != nil {
				if s.re.MatchString(e.Message) {
					events++
				}
			} else if _, ok := s.Match(e.Message); ok {
				events++
			}
		}
	}
	return events, lines
}

// BenchmarkScanCorpus scans a 200 MB corpus of real log lines with the
// whole catalogue, and a 20 MB prefix of it the naive way, in the same
// run. Run with -cpu 1 for the one-core figure:
//
//	go test -run '^$' -bench ScanCorpus -benchtime 1x -cpu 1 ./internal/signatures
func BenchmarkScanCorpus(b *testing.B) {
	c := loadBuiltin(b)
	m := NewMatcher(c)
	const size, naiveSize = 200 << 20, 20 << 20
	path := corpus(b, c, size, 20_000)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	head := make([]byte, naiveSize)
	if _, err := io.ReadFull(f, head); err != nil {
		b.Fatal(err)
	}
	f.Close()
	small := head[:bytes.LastIndexByte(head, '\n')+1]

	// sysGrowth is how much memory the runtime takes from the system while
	// scanning limit bytes of the corpus from disk: flat memory means the
	// same figure for 20 MB and for 200 MB.
	sysGrowth := func(limit int64) uint64 {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := m.Scan(io.LimitReader(f, limit), "corpus", func(Event) {}); err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.Sys - before.Sys
	}

	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		st, err := m.Scan(f, "corpus", func(Event) {})
		took := time.Since(start)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		nev, nlines := naive(c, bytes.NewReader(small))
		naiveTook := time.Since(start)

		mbs := float64(st.Bytes) / (1 << 20) / took.Seconds()
		naiveMBs := float64(len(small)) / (1 << 20) / naiveTook.Seconds()
		b.ReportMetric(mbs, "MB/s")
		b.ReportMetric(float64(st.Lines)/took.Seconds(), "lines/s")
		b.ReportMetric(naiveMBs, "naive-MB/s")
		b.ReportMetric(mbs/naiveMBs, "x-faster-than-naive")
		heapSmall, heapBig := sysGrowth(naiveSize), sysGrowth(size)
		b.ReportMetric(float64(heapBig)/(1<<20), "mem-growth-MB-200MB-input")
		b.ReportMetric(float64(heapSmall)/(1<<20), "mem-growth-MB-20MB-input")
		b.Logf("%d signatures; matcher: %.0f MB, %d lines, %d events in %.3f s = %.0f MB/s, %.2fM lines/s; naive over %.0f MB: %d lines, %d events in %.3f s = %.1f MB/s; ratio %.0fx; memory taken from the system while scanning 20 MB %.1f MB, 200 MB %.1f MB",
			len(c.Sigs), float64(st.Bytes)/(1<<20), st.Lines, st.Events, took.Seconds(), mbs, float64(st.Lines)/took.Seconds()/1e6,
			float64(len(small))/(1<<20), nlines, nev, naiveTook.Seconds(), naiveMBs, mbs/naiveMBs, float64(heapSmall)/(1<<20), float64(heapBig)/(1<<20))
	}
}
