package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzOpen opens a spool whose only segment file holds arbitrary bytes.
// Open must not panic, and what it reports must match what it hands out.
// fuzz budget: 3000x (scripts/test runs each target for a count of executions)
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(dir, Options{MaxBytes: 1 << 20, SegmentSize: 1 << 19})
	if err != nil {
		f.Fatal(err)
	}
	appendN(f, s, 5)
	closeT(f, s)
	valid, err := os.ReadFile(segFiles(f, dir)[0])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(append(valid[:len(valid):len(valid)], 0, 0, 0, 0, 0))
	f.Add([]byte(segMagic))
	f.Add([]byte(segMagic[:3]))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{})
		if err != nil {
			if strings.Contains(err.Error(), "unsupported segment format version") {
				return
			}
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		st := s.Stats()
		recs := peekAll(t, s)
		var size int64
		for i, r := range recs {
			if r.Seq != uint64(i+1) {
				t.Fatalf("record %d has seq %d", i, r.Seq)
			}
			size += frameHdrLen + int64(len(r.Data))
		}
		wantBytes := size
		if len(recs) > 0 {
			wantBytes += segHdrLen
		}
		if st.Pending != len(recs) || st.PendingBytes != size || st.NextSeq != uint64(len(recs))+1 ||
			st.Bytes != wantBytes || st.Corrupt > 1 || st.CorruptBytes+wantBytes > int64(len(data)) {
			t.Fatalf("%+v with %d records of %d bytes from %d bytes", st, len(recs), size, len(data))
		}
		seq, err := s.Append([]byte("after"))
		if err != nil || seq != st.NextSeq {
			t.Fatalf("Append: seq %d, %v; want %d", seq, err, st.NextSeq)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(dir, Options{})
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		if got := s.Stats(); got.Corrupt != st.Corrupt || got.Pending != st.Pending+1 || got.NextSeq != seq+1 {
			t.Fatalf("second Open: %+v; first %+v", got, st)
		}
	})
}
