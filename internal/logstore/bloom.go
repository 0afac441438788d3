package logstore

import (
	"encoding/binary"
	"math"

	"github.com/cespare/xxhash/v2"
)

// A bloom filter of the words of a block: a search for a word reads only
// the blocks whose filter may hold it. About 10 bits a word give about 1 %
// false positives with 7 probes.
type bloom struct {
	bits []uint64
	k    uint32
}

const bloomBitsPerKey = 10

func newBloom(keys int) bloom {
	m := keys * bloomBitsPerKey
	if m < 64 {
		m = 64
	}
	k := uint32(math.Round(bloomBitsPerKey * math.Ln2))
	return bloom{bits: make([]uint64, (m+63)/64), k: k}
}

func (b bloom) add(h uint64) {
	n := uint64(len(b.bits)) * 64
	h1, h2 := h, h>>33|h<<31
	for i := uint32(0); i < b.k; i++ {
		p := (h1 + uint64(i)*h2) % n
		b.bits[p/64] |= 1 << (p % 64)
	}
}

func (b bloom) has(h uint64) bool {
	if len(b.bits) == 0 {
		return true
	}
	n := uint64(len(b.bits)) * 64
	h1, h2 := h, h>>33|h<<31
	for i := uint32(0); i < b.k; i++ {
		p := (h1 + uint64(i)*h2) % n
		if b.bits[p/64]&(1<<(p%64)) == 0 {
			return false
		}
	}
	return true
}

func (b bloom) appendTo(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(b.k))
	dst = binary.AppendUvarint(dst, uint64(len(b.bits)))
	for _, w := range b.bits {
		dst = binary.LittleEndian.AppendUint64(dst, w)
	}
	return dst
}

func readBloom(d *decoder) bloom {
	k := d.uvarint()
	n := d.uvarint()
	if d.err != nil {
		return bloom{}
	}
	if k == 0 || k > 32 || n > uint64(len(d.b))/8 {
		d.err = errCorrupt
		return bloom{}
	}
	b := bloom{bits: make([]uint64, n), k: uint32(k)}
	for i := range b.bits {
		b.bits[i] = binary.LittleEndian.Uint64(d.b[i*8:])
	}
	d.b = d.b[n*8:]
	return b
}

func hashToken(t []byte) uint64 { return xxhash.Sum64(t) }

// bloomHas is has on a filter as stored (appendTo), read in place; a
// filter it cannot read may hold anything.
func bloomHas(b []byte, h uint64) bool {
	d := decoder{b: b}
	k := d.uvarint()
	n := d.uvarint()
	if d.err != nil || k == 0 || k > 32 || n == 0 || n > uint64(len(d.b))/8 {
		return true
	}
	bits := d.b[:n*8]
	m := n * 64
	h1, h2 := h, h>>33|h<<31
	for i := uint64(0); i < k; i++ {
		p := (h1 + i*h2) % m
		if bits[p/8]&(1<<(p%8)) == 0 {
			return false
		}
	}
	return true
}
