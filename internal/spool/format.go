package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk format, all integers little-endian.
//
// A segment file is named after the sequence number of its first record,
// zero-padded to 20 digits ("00000000000000000001.seg"). It starts with the
// 8-byte magic segMagic, then holds frames back to back:
//
//	length u32 | crc u32 | seq u64 | payload (length bytes)
//
// crc is CRC-32C (Castagnoli) over length, seq and payload, so a damaged
// header is caught as well as a damaged payload. Within a segment the
// sequence numbers are consecutive from the one in the file name; a frame
// that breaks that, or whose length runs past the end of the file, or whose
// crc does not match, ends the readable part of the segment.
//
// The state file "state" is written whole (temp file, fsync, rename, fsync
// of the directory):
//
//	magic [8] | acked | floor | high | dropped | droppedBytes | corrupt | corruptBytes | lost | lostBytes (u64 each) | crc u32
//
// A state file of version 1 (magic ending in \x01) has no lost and
// lostBytes; it is read as having lost nothing.
const (
	segMagic     = "HNSPOOL\x01"
	segHdrLen    = int64(len(segMagic))
	frameHdrLen  = 16
	segExt       = ".seg"
	segNameLen   = 20
	stateName    = "state"
	stateTmpName = "state.tmp"
	stateMagic   = "HNSTATE\x02"
	stateLen     = len(stateMagic) + 9*8 + 4
	stateMagicV1 = "HNSTATE\x01"
	stateLenV1   = len(stateMagicV1) + 7*8 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameCRC is the checksum stored in a frame header.
func frameCRC(hdr, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, hdr[0:4])
	c = crc32.Update(c, castagnoli, hdr[8:16])
	return crc32.Update(c, castagnoli, payload)
}

// appendFrame appends the frame for (seq, payload) to b.
func appendFrame(b []byte, seq uint64, payload []byte) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = append(b, payload...)
	hdr := b[start : start+frameHdrLen]
	binary.LittleEndian.PutUint32(hdr[4:], frameCRC(hdr, b[start+frameHdrLen:]))
	return b
}

func segName(first uint64) string {
	return fmt.Sprintf("%0*d%s", segNameLen, first, segExt)
}

// parseSegName returns the first sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segExt)
	if !ok || len(digits) != segNameLen {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// errBadFrame marks the end of the readable part of a segment: a torn,
// garbled or out-of-sequence frame.
var errBadFrame = errors.New("bad frame")

// scanner reads the frames of one segment from off to end, checking each.
// Payloads alias buffers that are never written again, so callers may keep
// them without copying.
type scanner struct {
	r      io.ReaderAt
	off    int64  // offset of the next frame
	end    int64  // end of the bytes to read
	seq    uint64 // sequence number the next frame must carry
	chunk  int    // how much to read ahead
	buf    []byte
	bufOff int64
}

// next returns the next frame's sequence number, payload and size on disk.
// It returns io.EOF at end, errBadFrame at a frame that fails a check, or
// an I/O error.
func (sc *scanner) next() (uint64, []byte, int64, error) {
	if sc.off >= sc.end {
		return 0, nil, 0, io.EOF
	}
	hdr, err := sc.bytes(frameHdrLen)
	if err != nil {
		return 0, nil, 0, err
	}
	n := int64(binary.LittleEndian.Uint32(hdr[0:]))
	sum := binary.LittleEndian.Uint32(hdr[4:])
	seq := binary.LittleEndian.Uint64(hdr[8:])
	if seq != sc.seq || n > sc.end-sc.off-frameHdrLen {
		return 0, nil, 0, errBadFrame
	}
	frame, err := sc.bytes(frameHdrLen + n)
	if err != nil {
		return 0, nil, 0, err
	}
	payload := frame[frameHdrLen:]
	if frameCRC(frame, payload) != sum {
		return 0, nil, 0, errBadFrame
	}
	sc.off += frameHdrLen + n
	sc.seq++
	return seq, payload[:n:n], frameHdrLen + n, nil
}

// bytes returns the n bytes at sc.off, reading ahead if they are not
// buffered. Bytes past sc.end make it errBadFrame (a torn frame).
func (sc *scanner) bytes(n int64) ([]byte, error) {
	if n > sc.end-sc.off {
		return nil, errBadFrame
	}
	if lo := sc.off - sc.bufOff; sc.buf != nil && lo >= 0 && lo+n <= int64(len(sc.buf)) {
		return sc.buf[lo : lo+n], nil
	}
	size := min(max(n, int64(sc.chunk)), sc.end-sc.off)
	buf := make([]byte, size)
	if _, err := sc.r.ReadAt(buf, sc.off); err != nil {
		if errors.Is(err, io.EOF) {
			// The file is shorter than we were told: it was truncated
			// under us. That is damage, not a clean end.
			return nil, errBadFrame
		}
		return nil, err
	}
	sc.buf, sc.bufOff = buf, sc.off
	return buf[:n], nil
}

// state is what the state file keeps.
type state struct {
	Acked        uint64 // every record <= Acked was delivered
	Floor        uint64 // every record <= Floor was delivered or dropped; >= Acked
	High         uint64 // highest sequence number assigned when the state was written
	Dropped      uint64
	DroppedBytes uint64
	Corrupt      uint64
	CorruptBytes uint64
	Lost         uint64 // records Append could not store (a write failed: a full disk)
	LostBytes    uint64
}

func (st state) marshal() []byte {
	b := make([]byte, 0, stateLen)
	b = append(b, stateMagic...)
	for _, v := range []uint64{st.Acked, st.Floor, st.High, st.Dropped, st.DroppedBytes, st.Corrupt, st.CorruptBytes, st.Lost, st.LostBytes} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadState = errors.New("corrupt state file")

func unmarshalState(b []byte) (state, error) {
	n := 9
	switch {
	case len(b) == stateLen && string(b[:len(stateMagic)]) == stateMagic:
	case len(b) == stateLenV1 && string(b[:len(stateMagicV1)]) == stateMagicV1:
		n = 7
	default:
		return state{}, errBadState
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return state{}, errBadState
	}
	var v [9]uint64
	for i := range n {
		v[i] = binary.LittleEndian.Uint64(body[len(stateMagic)+8*i:])
	}
	st := state{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]}
	if st.Floor < st.Acked {
		return state{}, errBadState
	}
	return st, nil
}

// writeStateFile replaces dir/state atomically and durably.
func writeStateFile(dir string, st state) error {
	tmp := filepath.Join(dir, stateTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(st.marshal())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, stateName))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write spool state: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	if err := syncPath(dir); err != nil {
		return fmt.Errorf("sync spool directory: %w", err)
	}
	return nil
}

// syncPath fsyncs a file or directory by name.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
