package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// payloadFor is the payload the tests store under seq: its length varies
// and its content is checkable.
func payloadFor(seq uint64) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"pad":%q}`, seq, strings.Repeat("x", int(seq%37)))
}

func frameSize(seq uint64) int64 { return frameHdrLen + int64(len(payloadFor(seq))) }

func open(t testing.TB, dir string, o Options) *Spool {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func appendN(t testing.TB, s *Spool, n int) {
	t.Helper()
	for range n {
		want := s.Stats().NextSeq
		seq, err := s.Append(payloadFor(want))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if seq != want {
			t.Fatalf("Append got seq %d; want %d", seq, want)
		}
	}
}

func closeT(t testing.TB, s *Spool) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func peekAll(t testing.TB, s *Spool) []Record {
	t.Helper()
	recs, err := s.Peek(0, 0)
	if err != nil {
		t.Fatalf("Peek: %v", err)
	}
	return recs
}

// checkRecords fails unless recs hold exactly the sequence numbers want,
// in order, with intact payloads.
func checkRecords(t testing.TB, recs []Record, want []uint64) {
	t.Helper()
	got := make([]uint64, len(recs))
	for i, r := range recs {
		got[i] = r.Seq
		if !bytes.Equal(r.Data, payloadFor(r.Seq)) {
			t.Errorf("record %d: payload %q; want %q", r.Seq, r.Data, payloadFor(r.Seq))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got seqs %v; want %v", got, want)
	}
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAppendPeekAckAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{MaxBytes: 1 << 20, SegmentSize: 1024})
	const n = 300
	appendN(t, s, n)
	if st := s.Stats(); st.Segments < 10 || st.Pending != n || st.NextSeq != n+1 {
		t.Fatalf("after %d appends: %+v; want >= 10 segments, %d pending", n, st, n)
	}
	if got := len(segFiles(t, dir)); got != s.Stats().Segments {
		t.Fatalf("%d segment files; Stats says %d", got, s.Stats().Segments)
	}
	var total int64
	for seq := uint64(1); seq <= n; seq++ {
		total += frameSize(seq)
	}
	if got := s.Stats().PendingBytes; got != total {
		t.Fatalf("PendingBytes %d; want %d", got, total)
	}

	next := uint64(1)
	for batch := 1; next <= n; batch = batch%13 + 1 {
		recs, err := s.Peek(batch, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, recs, seqRange(next, min(next+uint64(batch)-1, n)))
		// Peeking again without an Ack hands out the same records.
		again, err := s.Peek(batch, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, again, seqRange(next, min(next+uint64(batch)-1, n)))
		last := recs[len(recs)-1].Seq
		if err := s.Ack(last); err != nil {
			t.Fatal(err)
		}
		for seq := next; seq <= last; seq++ {
			total -= frameSize(seq)
		}
		next = last + 1
		st := s.Stats()
		if st.Pending != int(n-last) || st.PendingBytes != total || st.Acked != last {
			t.Fatalf("after Ack(%d): %+v; want %d pending, %d bytes", last, st, n-last, total)
		}
		if files := len(segFiles(t, dir)); files != st.Segments {
			t.Fatalf("after Ack(%d): %d segment files; Stats says %d", last, files, st.Segments)
		}
	}
	if recs := peekAll(t, s); len(recs) != 0 {
		t.Fatalf("Peek after acking everything returned %d records", len(recs))
	}
	// The segment being appended to stays, so the sequence survives.
	if st := s.Stats(); st.Segments != 1 {
		t.Fatalf("after acking everything: %d segments; want 1", st.Segments)
	}
}

func TestPeekMaxBytes(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	appendN(t, s, 20)
	for _, maxBytes := range []int{1, 30, 100, 1000} {
		recs, err := s.Peek(0, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		for _, r := range recs {
			size += len(r.Data)
		}
		if len(recs) == 0 || recs[0].Seq != 1 || (len(recs) > 1 && size > maxBytes) {
			t.Errorf("Peek(0, %d): %d records, %d bytes", maxBytes, len(recs), size)
		}
		if len(recs) < 20 && size+len(payloadFor(uint64(len(recs)+1))) <= maxBytes {
			t.Errorf("Peek(0, %d) stopped early at %d records, %d bytes", maxBytes, len(recs), size)
		}
	}
}

func TestReopenKeepsPendingAndSequence(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxBytes: 1 << 20, SegmentSize: 512}
	s := open(t, dir, o)
	appendN(t, s, 50)
	if err := s.Ack(20); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)

	s = open(t, dir, o)
	checkRecords(t, peekAll(t, s), seqRange(21, 50))
	if st := s.Stats(); st.Acked != 20 || st.NextSeq != 51 || st.Pending != 30 {
		t.Fatalf("after reopen: %+v", st)
	}
	appendN(t, s, 1)
	// Acknowledge everything, then reopen: the sequence must not restart.
	if err := s.Ack(51); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	s = open(t, dir, o)
	if st := s.Stats(); st.NextSeq != 52 || st.Pending != 0 {
		t.Fatalf("after acking all and reopening: %+v", st)
	}
}

func TestAck(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	if err := s.Ack(1); !errors.Is(err, ErrNotAppended) {
		t.Fatalf("Ack(1) on an empty spool: %v; want ErrNotAppended", err)
	}
	appendN(t, s, 10)
	if err := s.Ack(11); !errors.Is(err, ErrNotAppended) {
		t.Fatalf("Ack(11) after 10 appends: %v; want ErrNotAppended", err)
	}
	for _, seq := range []uint64{5, 3, 0, 5} {
		if err := s.Ack(seq); err != nil {
			t.Fatalf("Ack(%d): %v", seq, err)
		}
	}
	if st := s.Stats(); st.Acked != 5 || st.Pending != 5 {
		t.Fatalf("after Ack(5), Ack(3): %+v", st)
	}
	checkRecords(t, peekAll(t, s), seqRange(6, 10))
	// Acknowledging without peeking first still finds the position.
	if err := s.Ack(8); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, peekAll(t, s), seqRange(9, 10))
}

func TestTooLarge(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: 4096})
	if _, err := s.Append(make([]byte, 1025)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of 1025 bytes with MaxBytes 4096: %v; want ErrTooLarge", err)
	}
	if _, err := s.Append(make([]byte, 1024)); err != nil {
		t.Fatalf("Append of 1024 bytes with MaxBytes 4096: %v", err)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{MaxBytes: 100},
		{MaxBytes: -1},
		{MaxBytes: 4096, SegmentSize: 4096},
		{SegmentSize: -1},
	} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open with %+v succeeded; want an error", o)
		}
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 1)
	closeT(t, s)
	if _, err := s.Append(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := s.Peek(1, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Peek after Close: %v", err)
	}
	if err := s.Ack(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack after Close: %v", err)
	}
	if err := s.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSyncOption(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{Sync: true, MaxBytes: 1 << 20, SegmentSize: 256})
	appendN(t, s, 20)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	s = open(t, dir, Options{})
	checkRecords(t, peekAll(t, s), seqRange(1, 20))
}

func TestBoundDropsOldest(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxBytes: 4096, SegmentSize: 1024}
	s := open(t, dir, o)
	const n = 500
	for range n {
		appendN(t, s, 1)
		if st := s.Stats(); st.Bytes > o.MaxBytes {
			t.Fatalf("%d bytes spooled; bound is %d", st.Bytes, o.MaxBytes)
		}
	}
	st := s.Stats()
	if st.Dropped == 0 || st.Dropped+uint64(st.Pending) != n {
		t.Fatalf("after %d appends into 4 KiB: %+v; want dropped + pending = %d", n, st, n)
	}
	var droppedBytes int64
	for seq := uint64(1); seq <= st.Dropped; seq++ {
		droppedBytes += frameSize(seq)
	}
	if st.DroppedBytes != droppedBytes {
		t.Fatalf("DroppedBytes %d; want %d", st.DroppedBytes, droppedBytes)
	}
	checkRecords(t, peekAll(t, s), seqRange(st.Dropped+1, n))
	var onDisk int64
	for _, f := range segFiles(t, dir) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		onDisk += fi.Size()
	}
	if onDisk != st.Bytes || onDisk > o.MaxBytes {
		t.Fatalf("segment files hold %d bytes; Stats says %d, bound %d", onDisk, st.Bytes, o.MaxBytes)
	}

	// Acknowledged records are not counted as dropped. The segment being
	// appended to when everything was acknowledged takes the next
	// records, so dropping it drops those.
	if err := s.Ack(n); err != nil {
		t.Fatal(err)
	}
	before := segFiles(t, dir)[0]
	for segFiles(t, dir)[0] == before {
		appendN(t, s, 1)
	}
	recs := peekAll(t, s)
	first, next := recs[0].Seq, s.Stats().NextSeq
	checkRecords(t, recs, seqRange(first, next-1))
	want := st
	for seq := uint64(n + 1); seq < first; seq++ {
		want.Dropped++
		want.DroppedBytes += frameSize(seq)
	}
	if got := s.Stats(); got.Dropped != want.Dropped || got.DroppedBytes != want.DroppedBytes || got.Pending != len(recs) {
		t.Fatalf("after dropping an acknowledged segment: %+v; want dropped %d (%d bytes), %d pending", got, want.Dropped, want.DroppedBytes, len(recs))
	}
	closeT(t, s)

	s = open(t, dir, o)
	if got := s.Stats(); got.Dropped != want.Dropped || got.DroppedBytes != want.DroppedBytes || got.Pending != len(recs) {
		t.Fatalf("after reopen: %+v; want dropped %d (%d bytes), %d pending", got, want.Dropped, want.DroppedBytes, len(recs))
	}
	checkRecords(t, peekAll(t, s), seqRange(first, next-1))
}

// TestBoundPartlyAcked drops a segment whose first records were acknowledged.
func TestBoundPartlyAcked(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: 2048, SegmentSize: 1024})
	appendN(t, s, 3)
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	for s.Stats().Dropped == 0 {
		appendN(t, s, 1)
	}
	st := s.Stats()
	recs := peekAll(t, s)
	first := recs[0].Seq
	if st.Dropped != first-3 || uint64(st.Pending) != st.NextSeq-first {
		t.Fatalf("%+v, first pending %d; want %d dropped", st, first, first-3)
	}
	var want int64
	for seq := uint64(3); seq < first; seq++ {
		want += frameSize(seq)
	}
	if st.DroppedBytes != want {
		t.Fatalf("DroppedBytes %d; want %d", st.DroppedBytes, want)
	}
}

func TestLeftoverTempFileRemoved(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, stateTmpName)
	if err := os.WriteFile(tmp, []byte("half a state"), 0o600); err != nil {
		t.Fatal(err)
	}
	open(t, dir, Options{})
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there after Open: %v", tmp, err)
	}
}

// TestConcurrent runs an appender and a shipper against each other.
func TestConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"roomy", Options{MaxBytes: 64 << 20, SegmentSize: 4096}},
		{"dropping", Options{MaxBytes: 8192, SegmentSize: 1024}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, t.TempDir(), tc.o)
			const n = 20000
			appended := make(chan struct{}, 1)
			errc := make(chan error, 1)
			go func() {
				defer close(appended)
				for seq := uint64(1); seq <= n; seq++ {
					if _, err := s.Append(payloadFor(seq)); err != nil {
						errc <- err
						return
					}
					select {
					case appended <- struct{}{}:
					default:
					}
				}
			}()
			rng := rand.New(rand.NewPCG(1, 2))
			var last uint64
			var received int
			for last < n {
				recs, err := s.Peek(1+rng.IntN(200), 1+rng.IntN(8192))
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) == 0 {
					if _, ok := <-appended; !ok && s.Stats().Pending == 0 {
						break
					}
					continue
				}
				for _, r := range recs {
					if r.Seq <= last || !bytes.Equal(r.Data, payloadFor(r.Seq)) {
						t.Fatalf("after %d got record %d %q", last, r.Seq, r.Data)
					}
					if tc.o.MaxBytes > 1<<20 && r.Seq != last+1 {
						t.Fatalf("after %d got %d with nothing dropped", last, r.Seq)
					}
					last = r.Seq
				}
				received += len(recs)
				if err := s.Ack(last); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case err := <-errc:
				t.Fatal(err)
			default:
			}
			st := s.Stats()
			if last != n || st.Pending != 0 || uint64(received)+st.Dropped < n {
				t.Fatalf("shipped %d up to %d; %+v", received, last, st)
			}
		})
	}
}

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
