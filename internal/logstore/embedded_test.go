package logstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// small makes blocks of a few lines and segments of a few blocks, so that
// tests cross every boundary with little data.
var small = config{blockLines: 16, blockBytes: 4 << 10, segmentBytes: 8 << 10, headCap: 256}

func openSmall(t *testing.T, dir string, opts Options) *Embedded {
	t.Helper()
	s, err := openEmbedded(dir, opts, small)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func all(t *testing.T, s Store, newest bool) []Entry {
	t.Helper()
	var got []Entry
	q := Query{MaxPriority: 7, Limit: 1 << 30, Newest: newest}
	if err := s.Search(t.Context(), q, func(e Entry) bool { got = append(got, e); return true }); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestEmbeddedMatchesReference appends lines whose times jump back and
// forth across many blocks and compares searches with a plain filter and
// sort of the same lines.
func TestEmbeddedMatchesReference(t *testing.T) {
	s := openSmall(t, t.TempDir(), Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"alpha", "beta", "gamma", "delta", "error", "warn", "disk", "full"}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var ref []Entry
	used := map[int64]bool{}
	for batch := range 40 {
		var es []Entry
		for range 1 + rng.IntN(30) {
			var ns int64
			for ns == 0 || used[ns] {
				ns = rng.Int64N(int64(time.Hour))
			}
			used[ns] = true
			var b strings.Builder
			for range 1 + rng.IntN(5) {
				b.WriteString(words[rng.IntN(len(words))] + " ")
			}
			e := Entry{Time: t0.Add(time.Duration(ns)), Host: fmt.Sprintf("h%d", rng.IntN(4)), Source: "journal",
				Unit: fmt.Sprintf("u%d", rng.IntN(3)), Priority: rng.IntN(9) - 1, Line: b.String() + strconv.Itoa(batch)}
			es = append(es, e)
		}
		if err := s.Append(t.Context(), es); err != nil {
			t.Fatal(err)
		}
		ref = append(ref, es...)
	}
	slices.SortFunc(ref, func(a, b Entry) int { return a.Time.Compare(b.Time) })
	queries := []string{"", "error", "disk full", `"disk full"`, "-alpha", "host:h1", "unit:u2 beta", "priority:warning", "-priority:3 gamma", "host:h0 host:h3 -delta"}
	for _, qs := range queries {
		for _, newest := range []bool{false, true} {
			for _, limit := range []int{5, 10000} {
				q, err := ParseQuery(qs)
				if err != nil {
					t.Fatal(err)
				}
				q.Newest, q.Limit = newest, limit
				q.Since = t0.Add(10 * time.Minute)
				q.Until = t0.Add(50 * time.Minute)
				m, err := NewMatcher(q)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for i := range ref {
					e := ref[i]
					if newest {
						e = ref[len(ref)-1-i]
					}
					inTime := !e.Time.Before(q.Since) && e.Time.Before(q.Until)
					if inTime && m.Match(e) && len(want) < limit {
						want = append(want, e.Time.String()+" "+e.Line)
					}
				}
				var got []string
				if err := s.Search(t.Context(), q, func(e Entry) bool { got = append(got, e.Time.String()+" "+e.Line); return true }); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%q newest=%v limit=%d: got %d lines, want %d\ngot  %q\nwant %q", qs, newest, limit, len(got), len(want), got, want)
				}
			}
		}
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != int64(len(ref)) || !st.Oldest.Equal(ref[0].Time) || !st.Newest.Equal(ref[len(ref)-1].Time) {
		t.Errorf("Stats: %+v; want %d lines from %v to %v", st, len(ref), ref[0].Time, ref[len(ref)-1].Time)
	}
	if len(s.blocks) < 10 || len(s.segs) < 3 {
		t.Errorf("%d blocks in %d segments; the test means to cross many", len(s.blocks), len(s.segs))
	}
}

// seqLines makes n lines one second apart from t0, numbered from first.
func seqLines(t0 time.Time, first, n int) []Entry {
	es := make([]Entry, n)
	for i := range es {
		k := first + i
		es[i] = Entry{Time: t0.Add(time.Duration(k) * time.Second), Host: "h", Source: "journal", Priority: 6,
			Line: fmt.Sprintf("line %d of the test, with some words to make it long enough to fill blocks", k)}
	}
	return es
}

func checkSeq(t *testing.T, got []Entry, first, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d lines; want %d", len(got), n)
	}
	for i, e := range got {
		if want := fmt.Sprintf("line %d of", first+i); !strings.HasPrefix(e.Line, want) {
			t.Fatalf("line %d: got %q; want it to start %q", i, e.Line, want)
		}
	}
}

func TestEmbeddedReopen(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s, err := openEmbedded(dir, Options{}, small)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i += 10 {
		if err := s.Append(t.Context(), seqLines(t0, i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(t.Context(), seqLines(t0, 100, 1)); err == nil {
		t.Error("Append after Close: no error")
	}
	s = openSmall(t, dir, Options{})
	checkSeq(t, all(t, s, false), 0, 100)
	if err := s.Append(t.Context(), seqLines(t0, 100, 5)); err != nil {
		t.Fatal(err)
	}
	checkSeq(t, all(t, s, false), 0, 105)
	if _, err := OpenEmbedded(dir, Options{}); err == nil {
		t.Error("a second Open of the same directory: no error")
	}
}

func TestEmbeddedRetentionByAge(t *testing.T) {
	now := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	s := openSmall(t, t.TempDir(), Options{MaxAge: 24 * time.Hour, Now: func() time.Time { return now }})
	old := now.Add(-72 * time.Hour)
	for i := 0; i < 200; i += 20 {
		if err := s.Append(t.Context(), seqLines(old, i, 20)); err != nil {
			t.Fatal(err)
		}
	}
	fresh := now.Add(-time.Hour)
	for i := 1000; i < 1200; i += 20 {
		if err := s.Append(t.Context(), seqLines(fresh, i, 20)); err != nil {
			t.Fatal(err)
		}
	}
	got := all(t, s, false)
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Old lines may remain in the segment they share with fresh ones.
	if st.RetentionDropped < 150 {
		t.Errorf("RetentionDropped = %d; want most of the 200 old lines", st.RetentionDropped)
	}
	if st.Lines+st.RetentionDropped != 400 {
		t.Errorf("Lines %d + RetentionDropped %d; want 400", st.Lines, st.RetentionDropped)
	}
	n := 0
	for _, e := range got {
		if !e.Time.Before(fresh) {
			n++
		}
	}
	if n != 200 {
		t.Errorf("%d fresh lines kept; want all 200", n)
	}
}

func TestEmbeddedRetentionBySize(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 64 << 10
	cfg := small
	cfg.segmentBytes = maxBytes / 8
	s, err := openEmbedded(dir, Options{MaxBytes: maxBytes}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 4))
	total := 0
	for total < 5000 {
		es := seqLines(t0, total, 50)
		for i := range es {
			es[i].Line += fmt.Sprintf(" %x", rng.Uint64()) // incompressible enough
		}
		if err := s.Append(t.Context(), es); err != nil {
			t.Fatal(err)
		}
		total += 50
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var onDisk int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".seg") || strings.HasPrefix(e.Name(), "wal-") {
			onDisk += fi.Size()
		}
	}
	if st.DiskBytes > maxBytes || onDisk > maxBytes {
		t.Errorf("DiskBytes %d, files %d; want at most %d", st.DiskBytes, onDisk, maxBytes)
	}
	if st.RetentionDropped == 0 || st.Lines+st.RetentionDropped != int64(total) {
		t.Errorf("Lines %d + RetentionDropped %d; want %d with some dropped", st.Lines, st.RetentionDropped, total)
	}
	got := all(t, s, true)
	if len(got) == 0 || !strings.HasPrefix(got[0].Line, fmt.Sprintf("line %d of", total-1)) {
		t.Errorf("the newest line is not kept")
	}
	checkSeq(t, all(t, s, false), total-int(st.Lines), int(st.Lines))
	// The count of dropped lines survives a restart.
	s.Close()
	s2 := openSmall(t, dir, Options{MaxBytes: maxBytes})
	st2, err := s2.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st2.RetentionDropped != st.RetentionDropped || st2.Lines != st.Lines {
		t.Errorf("after reopening: %+v; want %+v", st2, st)
	}
}

// TestEmbeddedTornTail cuts the last block and the last WAL record short,
// as a crash in the middle of a write leaves them, and reopens.
func TestEmbeddedTornTail(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s, err := openEmbedded(dir, Options{}, small)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i += 10 {
		if err := s.Append(t.Context(), seqLines(t0, i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	// 40 lines: 32 in two blocks, 8 in the WAL. Keep the files as a crash
	// would leave them (no Close, which writes the WAL into a block).
	seg := filepath.Join(dir, segmentName(s.segs[len(s.segs)-1].seq))
	wal := s.wal.Name()
	s.mu.Lock()
	s.closed = true
	s.closeFiles()
	s.mu.Unlock()

	segData, _ := os.ReadFile(seg)
	walData, _ := os.ReadFile(wal)
	// A third block half written (its lines are still in the WAL), and a
	// record half written after the WAL's last whole one.
	lastBlock := s.blocks[len(s.blocks)-1]
	torn := append(slices.Clone(segData), segData[lastBlock.off:lastBlock.off+lastBlock.diskLen/2]...)
	if err := os.WriteFile(seg, torn, 0o640); err != nil {
		t.Fatal(err)
	}
	rec := appendWALRecord(nil, seqLines(t0, 40, 3))
	if err := os.WriteFile(wal, append(walData, rec[:len(rec)-5]...), 0o640); err != nil {
		t.Fatal(err)
	}

	s2 := openSmall(t, dir, Options{})
	checkSeq(t, all(t, s2, false), 0, 40)
	if fi, _ := os.Stat(seg); fi.Size() < int64(len(segData)) || fi.Size() >= int64(len(torn)) {
		t.Errorf("segment size %d after recovery; want the torn block cut (was %d, torn %d)", fi.Size(), len(segData), len(torn))
	}
	if err := s2.Append(t.Context(), seqLines(t0, 40, 10)); err != nil {
		t.Fatal(err)
	}
	checkSeq(t, all(t, s2, false), 0, 50)
}

func TestEmbeddedConcurrent(t *testing.T) {
	s := openSmall(t, t.TempDir(), Options{})
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const writers, batches, per = 4, 30, 7
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				first := (w*batches + b) * per
				if err := s.Append(t.Context(), seqLines(t0, first, per)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var prev time.Time
				err := s.Search(t.Context(), Query{MaxPriority: 7, Limit: 1 << 20}, func(e Entry) bool {
					if e.Time.Before(prev) {
						errs <- fmt.Errorf("out of order: %v after %v", e.Time, prev)
						return false
					}
					prev = e.Time
					return true
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkSeq(t, all(t, s, false), 0, writers*batches*per)
}

// TestEmbeddedDiskFull fills a small tmpfs: Append fails with ENOSPC,
// every acknowledged line is kept and searchable, and the store works on
// once space comes back.
func TestEmbeddedDiskFull(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	// The free space once filled: a ballast file, removed later.
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "logs")
	s, err := openEmbedded(store, Options{}, small)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(5, 6))
	acked := 0
	var full error
	for i := 0; i < 100000 && full == nil; i++ {
		es := seqLines(t0, acked, 10)
		for j := range es {
			es[j].Line += fmt.Sprintf(" %x%x", rng.Uint64(), rng.Uint64())
		}
		if err := s.Append(t.Context(), es); err != nil {
			full = err
			break
		}
		acked += 10
	}
	if full == nil {
		t.Fatal("the disk never filled")
	}
	if !errors.Is(full, syscall.ENOSPC) || !strings.Contains(full.Error(), "full") {
		t.Fatalf("Append on a full disk: %v; want an error that says so and is syscall.ENOSPC", full)
	}
	t.Logf("full after %d lines: %v", acked, full)
	checkSeq(t, all(t, s, false), 0, acked)
	// Still full: still refused, nothing half kept.
	if err := s.Append(t.Context(), seqLines(t0, acked, 10)); err == nil {
		// Room for one more batch may have been freed by a cut record.
		acked += 10
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(t.Context(), seqLines(t0, acked, 10)); err != nil {
		t.Fatalf("Append once space is back: %v", err)
	}
	acked += 10
	checkSeq(t, all(t, s, false), 0, acked)
	if err := s.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
	s2 := openSmall(t, store, Options{})
	checkSeq(t, all(t, s2, false), 0, acked)
}

// TestEmbeddedKill9 runs a child process that appends as fast as it can
// and prints each acknowledged batch; the test kills it with SIGKILL,
// reopens the store and finds every acknowledged line.
func TestEmbeddedKill9(t *testing.T) {
	if dir := os.Getenv("HINOMI_LOGSTORE_CHILD"); dir != "" {
		appendForever(dir)
		return
	}
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEmbeddedKill9$")
		cmd.Env = append(os.Environ(), "HINOMI_LOGSTORE_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		acked := -1
		deadline := time.Now().Add(30 * time.Second)
		// Kill it at a point that differs each round, mid-stream.
		killAt := 300 + round*700
		for sc.Scan() && time.Now().Before(deadline) {
			if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "acked ")); err == nil {
				acked = n
			}
			if acked >= killAt {
				break
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Lines acknowledged between the last read and the kill count too.
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "acked ")); err == nil {
				acked = n
			}
		}
		cmd.Wait()
		if acked < killAt {
			t.Fatalf("round %d: the child acknowledged %d lines before the deadline; want %d", round, acked, killAt)
		}
		s, err := openEmbedded(dir, Options{}, small)
		if err != nil {
			t.Fatal(err)
		}
		got := all(t, s, false)
		s.Close()
		// Every acknowledged line, in order; lines written but not yet
		// acknowledged may be there too.
		if len(got) < acked {
			t.Fatalf("round %d: %d lines after kill -9; %d were acknowledged", round, len(got), acked)
		}
		checkSeq(t, got[:acked], 0, acked)
		t.Logf("round %d: %d acknowledged, %d found", round, acked, len(got))
		// The next round's child goes on from what is stored.
		os.WriteFile(filepath.Join(dir, "next"), []byte(strconv.Itoa(len(got))), 0o600)
	}
}

// appendForever is the child of TestEmbeddedKill9.
func appendForever(dir string) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s, err := openEmbedded(dir, Options{}, small)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	next := 0
	if b, err := os.ReadFile(filepath.Join(dir, "next")); err == nil {
		next, _ = strconv.Atoi(string(b))
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; i < 1_000_000; i++ {
		n := 1 + i%13
		if err := s.Append(context.Background(), seqLines(t0, next, n)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		next += n
		fmt.Fprintf(w, "acked %d\n", next)
		w.Flush()
	}
	os.Exit(0)
}
