package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hinomi/hinomi/internal/testload"
)

// A record Append cannot write because the disk is full is counted as
// lost, and the count survives a restart once space returns.
func TestDiskFullCountsLost(t *testing.T) {
	mnt := testload.MountTmpfs(t, "256k")
	dir := filepath.Join(mnt, "spool")
	s, err := Open(dir, Options{MaxBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append([]byte("before")); err != nil {
		t.Fatal(err)
	}
	free := testload.FillDisk(t, mnt)
	rec := make([]byte, 8<<10)
	failed, lostBytes := 0, int64(0)
	for range 50 {
		if _, err := s.Append(rec); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("append on a full disk: %v; want ENOSPC", err)
			}
			failed++
			lostBytes += frameHdrLen + int64(len(rec))
		}
	}
	if failed == 0 {
		t.Fatal("no append failed on a full disk")
	}
	st := s.Stats()
	if st.Lost != uint64(failed) || st.LostBytes != lostBytes || st.Dropped != 0 {
		t.Fatalf("stats lost %d (%d bytes), dropped %d; want lost %d (%d bytes), dropped 0", st.Lost, st.LostBytes, st.Dropped, failed, lostBytes)
	}
	// What was stored before is still there, in order.
	recs, err := s.Peek(0, 0)
	if err != nil || len(recs) == 0 || string(recs[0].Data) != "before" {
		t.Fatalf("peek after a full disk: %d records, %v", len(recs), err)
	}
	free()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{MaxBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Stats().Lost; got != uint64(failed) {
		t.Fatalf("lost after reopening: %d; want %d", got, failed)
	}
	if _, err := s.Append([]byte("after")); err != nil {
		t.Fatalf("append once space returned: %v", err)
	}
}

// A state file written before lost records were counted (version 1) is
// read as it was, with nothing lost.
func TestStateVersion1(t *testing.T) {
	b := []byte(stateMagicV1)
	for _, v := range []uint64{3, 5, 9, 2, 200, 1, 16} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	st, err := unmarshalState(b)
	if err != nil {
		t.Fatal(err)
	}
	want := state{Acked: 3, Floor: 5, High: 9, Dropped: 2, DroppedBytes: 200, Corrupt: 1, CorruptBytes: 16}
	if st != want {
		t.Fatalf("got %+v; want %+v", st, want)
	}
	want.Lost, want.LostBytes = 7, 700
	if st, err := unmarshalState(want.marshal()); err != nil || st != want {
		t.Fatalf("round trip: got %+v, %v; want %+v", st, err, want)
	}
}
