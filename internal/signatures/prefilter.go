package signatures

import (
	"bytes"
	"encoding/binary"
)

// The anchor search. Every signature has literal anchors; most input holds
// none of them. For each anchor we pick its rarest 4-byte window and set a
// bit for it in a 2^20-bit filter (128 KiB, which stays in the CPU's
// cache). The scan hashes every 4-byte window of the input and tests one
// bit; only on a set bit does it look the window up exactly and compare the
// whole anchor. That is a few instructions a byte with no branch taken on
// benign text, several times faster than walking an automaton byte by byte.

const (
	window     = 4
	filterBits = 20
)

type candidate struct {
	anchor int32
	off    int32 // where the window starts inside the anchor
}

type anchorSet struct {
	anchors [][]byte
	filter  []uint64
	exact   map[uint32][]candidate
}

func hashWindow(w uint32) uint32 { return (w * 0x9E3779B1) >> (32 - filterBits) }

func newAnchorSet(anchors []string) *anchorSet {
	s := &anchorSet{filter: make([]uint64, 1<<filterBits/64), exact: map[uint32][]candidate{}}
	for i, a := range anchors {
		b := []byte(a)
		s.anchors = append(s.anchors, b)
		off := rarestWindow(b)
		w := binary.LittleEndian.Uint32(b[off:])
		h := hashWindow(w)
		s.filter[h>>6] |= 1 << (h & 63)
		s.exact[w] = append(s.exact[w], candidate{anchor: int32(i), off: int32(off)})
	}
	return s
}

// byteCost estimates how common a byte is in log text: windows made of
// rare bytes make selective filters.
func byteCost(c byte) int {
	switch {
	case c == ' ':
		return 100
	case bytes.IndexByte([]byte("etaoinsr"), c) >= 0:
		return 70
	case c >= 'a' && c <= 'z':
		return 45
	case c >= '0' && c <= '9':
		return 50
	case bytes.IndexByte([]byte(":.-_/=,[]()"), c) >= 0:
		return 35
	case c >= 'A' && c <= 'Z':
		return 15
	}
	return 5
}

// rarestWindow returns the offset of the anchor's least common window.
func rarestWindow(a []byte) int {
	best, bestCost := 0, 1<<30
	for off := 0; off+window <= len(a); off++ {
		cost := 0
		for _, c := range a[off : off+window] {
			cost += byteCost(c)
		}
		if cost < bestCost {
			best, bestCost = off, cost
		}
	}
	return best
}

// next returns the start of the first anchor occurrence in data at or
// after pos, or -1.
func (s *anchorSet) next(data []byte, pos int) int {
	filter := s.filter
	for i := pos; i+window <= len(data); i++ {
		w := binary.LittleEndian.Uint32(data[i:])
		h := hashWindow(w)
		if filter[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for _, c := range s.exact[w] {
			start := i - int(c.off)
			a := s.anchors[c.anchor]
			if start >= 0 && start+len(a) <= len(data) && bytes.Equal(data[start:start+len(a)], a) {
				return start
			}
		}
	}
	return -1
}

// each calls f with the index of every anchor that occurs in line (an
// anchor may be reported more than once).
func (s *anchorSet) each(line []byte, f func(anchor int)) {
	for i := 0; i+window <= len(line); i++ {
		w := binary.LittleEndian.Uint32(line[i:])
		h := hashWindow(w)
		if s.filter[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for _, c := range s.exact[w] {
			start := i - int(c.off)
			a := s.anchors[c.anchor]
			if start >= 0 && start+len(a) <= len(line) && bytes.Equal(line[start:start+len(a)], a) {
				f(int(c.anchor))
			}
		}
	}
}
