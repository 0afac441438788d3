package spool

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// spooled creates a closed spool holding records 1..n in segments of about
// segSize bytes and returns its directory and the path of its last segment.
func spooled(t *testing.T, n int, segSize int64) (dir, last string) {
	t.Helper()
	dir = t.TempDir()
	s := open(t, dir, Options{MaxBytes: 1 << 20, SegmentSize: segSize})
	appendN(t, s, n)
	closeT(t, s)
	files := segFiles(t, dir)
	return dir, files[len(files)-1]
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestTornLastRecord cuts the last segment at every byte of its last
// record, as a crash in the middle of writing it would, with and without
// the state file.
func TestTornLastRecord(t *testing.T) {
	const n = 30
	base, last := spooled(t, n, 1024)
	end := fileSize(t, last)
	start := end - frameSize(n)
	for _, keepState := range []bool{true, false} {
		for cut := start; cut < end; cut++ {
			t.Run(fmt.Sprintf("state=%v/cut=%d", keepState, cut-start), func(t *testing.T) {
				dir := copyDir(t, base)
				truncate(t, filepath.Join(dir, filepath.Base(last)), cut)
				if !keepState {
					if err := os.Remove(filepath.Join(dir, stateName)); err != nil {
						t.Fatal(err)
					}
				}
				s := open(t, dir, Options{})
				checkRecords(t, peekAll(t, s), seqRange(1, n-1))
				wantCorrupt := uint64(1)
				if cut == start {
					wantCorrupt = 0 // a clean cut between records
				}
				// The state file remembers that n was handed out; without
				// it n was never seen complete and may be used again.
				wantNext := uint64(n)
				if keepState {
					wantNext = n + 1
				}
				st := s.Stats()
				if st.Corrupt != wantCorrupt || st.CorruptBytes != cut-start || st.NextSeq != wantNext {
					t.Fatalf("%+v; want Corrupt %d (%d bytes), NextSeq %d", st, wantCorrupt, cut-start, wantNext)
				}
				appendN(t, s, 1)
				closeT(t, s)

				s = open(t, dir, Options{})
				checkRecords(t, peekAll(t, s), append(seqRange(1, n-1), wantNext))
				if got := s.Stats(); got.Corrupt != wantCorrupt {
					t.Fatalf("after a second Open: Corrupt %d; want %d (not counted twice)", got.Corrupt, wantCorrupt)
				}
			})
		}
	}
}

// TestTornOnlyRecord cuts a segment holding one record at every byte,
// including inside the segment header.
func TestTornOnlyRecord(t *testing.T) {
	const n = 5
	base, last := spooled(t, n, 40) // one record per segment
	end := fileSize(t, last)
	if end != segHdrLen+frameSize(n) {
		t.Fatalf("last segment has %d bytes; want one record", end)
	}
	for cut := range end {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := copyDir(t, base)
			truncate(t, filepath.Join(dir, filepath.Base(last)), cut)
			s := open(t, dir, Options{})
			checkRecords(t, peekAll(t, s), seqRange(1, n-1))
			st := s.Stats()
			wantCorrupt := uint64(0)
			if cut > segHdrLen {
				wantCorrupt = 1
			}
			if st.Corrupt != wantCorrupt || st.NextSeq != n+1 || st.Segments != n-1 {
				t.Fatalf("%+v; want Corrupt %d, NextSeq %d, %d segments", st, wantCorrupt, n+1, n-1)
			}
			if _, err := os.Stat(filepath.Join(dir, filepath.Base(last))); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("empty segment left behind: %v", err)
			}
			appendN(t, s, 1)
		})
	}
}

func TestGarbageTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 100)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	for name, garbage := range map[string][]byte{
		"random":    random,
		"zeros":     make([]byte, 4096), // what a file system may show after power loss
		"header":    appendFrame(nil, 11, []byte("next record"))[:frameHdrLen],
		"wrong seq": appendFrame(nil, 12, []byte("a record out of sequence")),
	} {
		t.Run(name, func(t *testing.T) {
			dir, last := spooled(t, 10, 1<<19)
			f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(garbage); err != nil {
				t.Fatal(err)
			}
			f.Close()
			s := open(t, dir, Options{})
			checkRecords(t, peekAll(t, s), seqRange(1, 10))
			if st := s.Stats(); st.Corrupt != 1 || st.CorruptBytes != int64(len(garbage)) || st.NextSeq != 11 {
				t.Fatalf("%+v; want Corrupt 1 (%d bytes), NextSeq 11", st, len(garbage))
			}
			appendN(t, s, 1)
			closeT(t, s)
			s = open(t, dir, Options{})
			checkRecords(t, peekAll(t, s), seqRange(1, 11))
			if st := s.Stats(); st.Corrupt != 1 {
				t.Fatalf("after a second Open: %+v; want Corrupt 1", st)
			}
		})
	}
}

// TestDamageInOlderSegment flips one bit in a record of the first segment:
// the rest of that segment is lost, the later segments are not.
func TestDamageInOlderSegment(t *testing.T) {
	const n, damaged = 60, 3
	// Offset of record `damaged` in the first segment.
	off := segHdrLen
	for seq := uint64(1); seq < damaged; seq++ {
		off += frameSize(seq)
	}
	for _, tc := range []struct {
		name string
		at   int64 // byte within the frame
	}{
		{"length", 1},
		{"crc", 5},
		{"seq", 8},
		{"payload", frameHdrLen + 3},
		{"payload end", frameSize(damaged) - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := spooled(t, n, 512)
			first := segFiles(t, dir)[0]
			b, err := os.ReadFile(first)
			if err != nil {
				t.Fatal(err)
			}
			b[off+tc.at] ^= 0x10
			if err := os.WriteFile(first, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s := open(t, dir, Options{})
			// The second segment's name is its first sequence number.
			second, _ := parseSegName(filepath.Base(segFiles(t, dir)[1]))
			checkRecords(t, peekAll(t, s), append(seqRange(1, damaged-1), seqRange(second, n)...))
			st := s.Stats()
			if st.Corrupt != 1 || st.CorruptBytes != int64(len(b))-off || st.NextSeq != n+1 {
				t.Fatalf("%+v; want Corrupt 1 (%d bytes), NextSeq %d", st, int64(len(b))-off, n+1)
			}
			if st.Pending != int(damaged-1+n-second+1) {
				t.Fatalf("Pending %d; want %d", st.Pending, damaged-1+n-second+1)
			}
		})
	}
}

// TestDamageFoundByPeek damages a record after Open; Peek must cut it
// off instead of failing forever.
func TestDamageFoundByPeek(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{MaxBytes: 1 << 20, SegmentSize: 512})
	appendN(t, s, 40)
	first := segFiles(t, dir)[0]
	f, err := os.OpenFile(first, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := segHdrLen + frameSize(1) + frameHdrLen // payload of record 2
	if _, err := f.WriteAt([]byte{'!'}, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	recs := peekAll(t, s)
	checkRecords(t, recs, seqRange(1, 1))
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	recs = peekAll(t, s)
	second, _ := parseSegName(filepath.Base(segFiles(t, dir)[1]))
	checkRecords(t, recs, seqRange(second, 40))
	if st := s.Stats(); st.Corrupt != 1 || st.Pending != len(recs) {
		t.Fatalf("%+v; want Corrupt 1, %d pending", st, len(recs))
	}
}

func TestStateFile(t *testing.T) {
	const n = 60
	for _, tc := range []struct {
		name        string
		damage      func(t *testing.T, path string, older []byte)
		wantCorrupt uint64
	}{
		{"missing", func(t *testing.T, path string, _ []byte) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"bit flip", func(t *testing.T, path string, _ []byte) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[10] ^= 1
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"truncated", func(t *testing.T, path string, _ []byte) { truncate(t, path, 20) }, 1},
		{"empty", func(t *testing.T, path string, _ []byte) { truncate(t, path, 0) }, 1},
		{"older than segments", func(t *testing.T, path string, older []byte) {
			if err := os.WriteFile(path, older, 0o600); err != nil {
				t.Fatal(err)
			}
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{MaxBytes: 1 << 20, SegmentSize: 512})
			appendN(t, s, 10)
			if err := s.Ack(5); err != nil {
				t.Fatal(err)
			}
			older, err := os.ReadFile(filepath.Join(dir, stateName))
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, s, n-10)
			if err := s.Ack(25); err != nil {
				t.Fatal(err)
			}
			closeT(t, s)
			firstKept, _ := parseSegName(filepath.Base(segFiles(t, dir)[0]))

			tc.damage(t, filepath.Join(dir, stateName), older)
			s = open(t, dir, Options{})
			// Acknowledged records still on disk come again: at least once.
			from := firstKept
			if tc.name == "older than segments" {
				from = max(from, 6) // it still knows of Ack(5)
			}
			checkRecords(t, peekAll(t, s), seqRange(from, n))
			if st := s.Stats(); st.NextSeq != n+1 || st.Corrupt != tc.wantCorrupt {
				t.Fatalf("%+v; want NextSeq %d, Corrupt %d", st, n+1, tc.wantCorrupt)
			}
		})
	}
}

// crashDirEnv, when set, makes TestCrashSIGKILL the child that appends
// until it is killed.
const crashDirEnv = "HINOMI_SPOOL_CRASH_DIR"

// TestCrashSIGKILL kills a process appending to a spool and checks that
// every append it reported survives.
func TestCrashSIGKILL(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	const reports = 20000
	dir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSIGKILL$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()

	var reported []uint64
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		seq, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("child reported %q", sc.Text())
		}
		reported = append(reported, seq)
		if len(reported) == reports {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v after %d reports; want killed by SIGKILL", err, len(reported))
	}
	if len(reported) < reports {
		t.Fatalf("child reported %d appends; want at least %d", len(reported), reports)
	}

	s := open(t, dir, Options{SegmentSize: 64 << 10})
	recs := peekAll(t, s)
	last := reported[len(reported)-1]
	if uint64(len(recs)) < last {
		t.Fatalf("after the kill %d records; the child reported up to %d", len(recs), last)
	}
	// Records appended but not yet reported may be there too; every one
	// present must be whole and in sequence.
	checkRecords(t, recs, seqRange(1, uint64(len(recs))))
	for i, seq := range reported {
		if seq != uint64(i+1) {
			t.Fatalf("report %d is seq %d", i, seq)
		}
	}
	st := s.Stats()
	seq, err := s.Append(payloadFor(st.NextSeq))
	if err != nil || seq != uint64(len(recs))+1 {
		t.Fatalf("Append after the kill: seq %d, %v; want %d", seq, err, len(recs)+1)
	}
	t.Logf("killed after %d reports; %d records recovered, %d segments, corrupt %d", len(reported), len(recs), st.Segments, st.Corrupt)
}

func crashChild(dir string) {
	report := os.NewFile(3, "report")
	s, err := Open(dir, Options{SegmentSize: 64 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for want := s.Stats().NextSeq; ; want++ {
		seq, err := s.Append(payloadFor(want))
		if err != nil || seq != want {
			fmt.Fprintf(os.Stderr, "append %d: seq %d, %v\n", want, seq, err)
			os.Exit(2)
		}
		if _, err := fmt.Fprintf(report, "%d\n", seq); err != nil {
			os.Exit(0) // the parent is gone
		}
	}
}

func TestForeignSegmentFiles(t *testing.T) {
	overlapping := []byte(segMagic)
	overlapping = appendFrame(overlapping, 5, payloadFor(5))
	overlapping = appendFrame(overlapping, 6, payloadFor(6))
	for _, tc := range []struct {
		name    string
		first   uint64
		content []byte
		wantErr bool
	}{
		{"not a segment", 1000, []byte("hello, world"), false},
		{"overlapping", 5, overlapping, false},
		{"wrong first seq", 11, overlapping, false},
		{"newer version", 1000, []byte("HNSPOOL\x02 from the future"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := spooled(t, 10, 1<<19)
			path := filepath.Join(dir, segName(tc.first))
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, Options{})
			if tc.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded; want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			checkRecords(t, peekAll(t, s), seqRange(1, 10))
			if st := s.Stats(); st.Corrupt != 1 || st.NextSeq != 11 || st.Segments != 1 {
				t.Fatalf("%+v; want Corrupt 1, NextSeq 11, 1 segment", st)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s left behind: %v", path, err)
			}
		})
	}
}
