package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// recover rebuilds the spool's memory from dir: it reads the state file,
// checks every segment frame by frame, cuts off damaged tails, deletes
// what is empty or fully acknowledged, and writes the state back.
func (s *Spool) recover() error {
	if err := os.Remove(filepath.Join(s.dir, stateTmpName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b, err := os.ReadFile(filepath.Join(s.dir, stateName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Nothing acknowledged yet: everything found is pending.
	case err != nil:
		return err
	default:
		if s.st, err = unmarshalState(b); err != nil {
			// Redelivering is better than refusing to start; the
			// tower dedupes.
			s.st = state{Corrupt: 1, CorruptBytes: uint64(len(b))}
		}
	}

	entries, err := os.ReadDir(s.dir) // sorted by name, so by sequence number
	if err != nil {
		return err
	}
	high := max(s.st.High, s.st.Floor)
	for _, e := range entries {
		first, ok := parseSegName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		prevLast := uint64(0)
		if n := len(s.segs); n > 0 {
			prevLast = s.segs[n-1].last
		}
		g, err := s.recoverSegment(first, prevLast)
		if err != nil {
			return err
		}
		if g != nil {
			s.segs = append(s.segs, g)
			high = max(high, g.last)
		}
	}
	s.next = high + 1

	// Fully acknowledged or dropped segments whose deletion was cut short.
	// The last stays: it holds the highest sequence number.
	for len(s.segs) > 1 && s.segs[0].last <= s.st.Floor {
		if err := removeFile(s.path(s.segs[0].first)); err != nil {
			return err
		}
		s.segs = slices.Delete(s.segs, 0, 1)
	}
	for _, g := range s.segs {
		s.total += g.size
	}
	if n := len(s.segs); n > 0 {
		if g := s.segs[n-1]; g.last == high && g.size < s.opt.SegmentSize {
			if s.w, err = os.OpenFile(s.path(g.first), os.O_RDWR, 0); err != nil {
				return err
			}
		}
	}
	s.seek()
	// Also makes the deletions and truncations above durable.
	return s.saveStateLocked()
}

// recoverSegment checks the segment file starting at first and cuts it
// after its last good frame. It returns nil if nothing good is left, having
// deleted the file. prevLast is the last sequence number of the segment
// before.
func (s *Spool) recoverSegment(first, prevLast uint64) (*segment, error) {
	path := s.path(first)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	hdr := make([]byte, segHdrLen)
	n, err := f.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	hdr = hdr[:n]
	var lost int64 // bytes of damage in a file that goes
	switch {
	case string(hdr) == segMagic[:n] && n < len(segMagic):
		// Created, then killed before the header was written: it never
		// held a record, so nothing is lost.
	case n == len(segMagic) && string(hdr[:n-1]) == segMagic[:n-1] && hdr[n-1] != segMagic[n-1]:
		return nil, fmt.Errorf("%s: unsupported segment format version %d", segName(first), hdr[n-1])
	case string(hdr) != segMagic || first <= prevLast:
		// Not a segment, or one overlapping its predecessor: both can
		// only come from damage.
		lost = size
	default:
		sc := scanner{r: f, off: segHdrLen, end: size, seq: first, chunk: 1 << 20}
		for {
			_, _, _, err := sc.next()
			if err == io.EOF || errors.Is(err, errBadFrame) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", segName(first), err)
			}
		}
		lost = size - sc.off
		if sc.seq == first {
			break // no good record: the file goes
		}
		g := &segment{first: first, last: sc.seq - 1, size: sc.off}
		if lost > 0 {
			s.st.Corrupt++
			s.st.CorruptBytes += uint64(lost)
			if err := f.Truncate(g.size); err != nil {
				return nil, err
			}
			if err := f.Sync(); err != nil {
				return nil, err
			}
			g.durable = g.size
		}
		return g, nil
	}
	if lost > 0 {
		s.st.Corrupt++
		s.st.CorruptBytes += uint64(lost)
	}
	return nil, removeFile(path)
}
