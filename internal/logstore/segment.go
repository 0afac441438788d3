package logstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"

	"github.com/klauspost/compress/zstd"
)

// A segment file is a run of blocks, each written whole and fsync'd before
// the next:
//
//	"HLB1"  metaLen u32  dataLen u32  metaCRC u32  dataCRC u32   (little endian)
//	meta:   version, count, minT, maxT, minPri, walGen, rawLen, hosts, units,
//	        sources, bloom filter of the words
//	data:   zstd-compressed: the count of entries, the length of each line,
//	        the lines one after the other, then each entry's meta (codec.go)
//
// A block describes itself (time range, hosts, units, words), so a search
// reads the metas from memory and the bloom filters from the file, and
// decompresses only the blocks that may match. Keeping the lines together
// lets a word search scan a whole block's text at once and decode the meta
// of the lines that hold the word only.

const (
	blockMagic     = "HLB1"
	blockPrefixLen = 20
	blockVersion   = 2
	// maxBlockPart bounds what a reader accepts for one block's meta or
	// data, so a corrupt length cannot make it allocate gigabytes.
	maxBlockPart = 256 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// blockMeta is what the store keeps in memory about a block.
type blockMeta struct {
	seg              uint64 // the segment's sequence number
	off              int64  // where the block starts in the segment
	metaLen, dataLen uint32
	dataCRC          uint32
	count            int
	minT, maxT       int64
	minPri           int // the lowest known priority; -1 when none is known
	walGen           uint64
	rawLen           int64
	hosts, units     []string
	sources          []string
	bloomOff         int64 // absolute offset of the bloom filter in the segment
	bloomLen         int
	diskLen          int64
	order            int // position among all blocks, to break ties in time
}

func (b *blockMeta) end() int64 { return b.off + b.diskLen }

// blockBuilder turns entries sorted by time into a block.
type blockBuilder struct {
	raw    []byte
	lens   []byte
	lines  []byte
	metas  []byte
	lower  []byte
	tokens map[uint64]struct{}
	enc    *zstd.Encoder
}

// build encodes entries (sorted by time) as one block, ready to write.
func (bb *blockBuilder) build(entries []Entry, walGen uint64) ([]byte, blockMeta) {
	bb.lens, bb.lines, bb.metas = bb.lens[:0], bb.lines[:0], bb.metas[:0]
	if bb.tokens == nil {
		bb.tokens = make(map[uint64]struct{}, 1<<15)
	}
	clear(bb.tokens)
	m := blockMeta{count: len(entries), minPri: -1, walGen: walGen}
	hosts, units, sources := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i := range entries {
		e := &entries[i]
		t := e.Time.UnixNano()
		if i == 0 || t < m.minT {
			m.minT = t
		}
		if i == 0 || t > m.maxT {
			m.maxT = t
		}
		if e.Priority >= 0 && (m.minPri < 0 || e.Priority < m.minPri) {
			m.minPri = e.Priority
		}
		hosts[e.Host] = true
		units[e.Unit] = true
		sources[e.Source] = true
		bb.lens = binary.AppendUvarint(bb.lens, uint64(len(e.Line)))
		bb.lines = append(bb.lines, e.Line...)
		bb.metas = appendEntryMeta(bb.metas, e)
		bb.lower = lowerInto(bb.lower[:0], []byte(e.Line))
		forEachToken(bb.lower, func(tok []byte) { bb.tokens[hashToken(tok)] = struct{}{} })
	}
	bb.raw = binary.AppendUvarint(bb.raw[:0], uint64(len(entries)))
	bb.raw = append(bb.raw, bb.lens...)
	bb.raw = append(bb.raw, bb.lines...)
	bb.raw = append(bb.raw, bb.metas...)
	m.rawLen = int64(len(bb.raw))
	m.hosts, m.units, m.sources = sortedKeys(hosts), sortedKeys(units), sortedKeys(sources)
	bl := newBloom(len(bb.tokens))
	for h := range bb.tokens {
		bl.add(h)
	}

	meta := binary.AppendUvarint(nil, blockVersion)
	meta = binary.AppendUvarint(meta, uint64(m.count))
	meta = binary.AppendVarint(meta, m.minT)
	meta = binary.AppendVarint(meta, m.maxT)
	meta = binary.AppendVarint(meta, int64(m.minPri))
	meta = binary.AppendUvarint(meta, m.walGen)
	meta = binary.AppendUvarint(meta, uint64(m.rawLen))
	for _, list := range [][]string{m.hosts, m.units, m.sources} {
		meta = binary.AppendUvarint(meta, uint64(len(list)))
		for _, s := range list {
			meta = appendString(meta, s)
		}
	}
	bloomStart := len(meta)
	meta = bl.appendTo(meta)

	out := make([]byte, blockPrefixLen, blockPrefixLen+len(meta)+len(bb.raw)/4)
	out = append(out, meta...)
	out = bb.enc.EncodeAll(bb.raw, out)
	data := out[blockPrefixLen+len(meta):]
	copy(out, blockMagic)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(meta)))
	binary.LittleEndian.PutUint32(out[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(out[12:], crc32.Checksum(meta, crcTable))
	m.dataCRC = crc32.Checksum(data, crcTable)
	binary.LittleEndian.PutUint32(out[16:], m.dataCRC)
	m.metaLen, m.dataLen = uint32(len(meta)), uint32(len(data))
	m.bloomOff = int64(blockPrefixLen + bloomStart) // relative until placed
	m.bloomLen = len(meta) - bloomStart
	m.diskLen = int64(len(out))
	return out, m
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parseBlockMeta reads a block's prefix and meta (b holds at least both).
func parseBlockMeta(prefix, meta []byte) (blockMeta, error) {
	var m blockMeta
	if len(prefix) < blockPrefixLen || string(prefix[:4]) != blockMagic {
		return m, fmt.Errorf("%w: no block magic", errCorrupt)
	}
	m.metaLen = binary.LittleEndian.Uint32(prefix[4:])
	m.dataLen = binary.LittleEndian.Uint32(prefix[8:])
	metaCRC := binary.LittleEndian.Uint32(prefix[12:])
	m.dataCRC = binary.LittleEndian.Uint32(prefix[16:])
	if uint32(len(meta)) != m.metaLen || crc32.Checksum(meta, crcTable) != metaCRC {
		return m, fmt.Errorf("%w: block meta checksum", errCorrupt)
	}
	d := decoder{b: meta}
	if v := d.uvarint(); d.err == nil && v != blockVersion {
		return m, fmt.Errorf("logstore: block version %d (this hinomi reads %d)", v, blockVersion)
	}
	m.count = int(d.uvarint())
	m.minT = d.varint()
	m.maxT = d.varint()
	m.minPri = int(d.varint())
	m.walGen = d.uvarint()
	m.rawLen = int64(d.uvarint())
	for _, list := range []*[]string{&m.hosts, &m.units, &m.sources} {
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			return m, errCorrupt
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			*list = append(*list, string(d.bytes()))
		}
	}
	if d.err != nil {
		return m, d.err
	}
	m.bloomOff = int64(blockPrefixLen + len(meta) - len(d.b))
	m.bloomLen = len(d.b)
	readBloom(&d)
	if d.err != nil {
		return m, d.err
	}
	m.diskLen = blockPrefixLen + int64(m.metaLen) + int64(m.dataLen)
	return m, nil
}

// scanSegment reads the metas of the blocks of a segment file. It stops at
// the first block that is cut short or fails its checksum (the last block's
// data is checked too) and returns where the good blocks end.
func scanSegment(r io.ReaderAt, size int64, seq uint64) (metas []blockMeta, good int64, err error) {
	var prefix [blockPrefixLen]byte
	var off int64
	for off < size {
		if size-off < blockPrefixLen {
			return metas, off, fmt.Errorf("%w: a block cut short at offset %d", errCorrupt, off)
		}
		if _, err := r.ReadAt(prefix[:], off); err != nil {
			return metas, off, err
		}
		metaLen := int64(binary.LittleEndian.Uint32(prefix[4:]))
		dataLen := int64(binary.LittleEndian.Uint32(prefix[8:]))
		if metaLen > maxBlockPart || dataLen > maxBlockPart || off+blockPrefixLen+metaLen+dataLen > size {
			return metas, off, fmt.Errorf("%w: a block cut short at offset %d", errCorrupt, off)
		}
		meta := make([]byte, metaLen)
		if _, err := r.ReadAt(meta, off+blockPrefixLen); err != nil {
			return metas, off, err
		}
		m, err := parseBlockMeta(prefix[:], meta)
		if err != nil {
			return metas, off, fmt.Errorf("block at offset %d: %w", off, err)
		}
		m.seg, m.off = seq, off
		m.bloomOff += off
		if m.end() == size {
			// The last block: its data must be whole too (a torn write).
			if _, err := readBlockData(r, &m); err != nil {
				return metas, off, fmt.Errorf("block at offset %d: %w", off, err)
			}
		}
		metas = append(metas, m)
		off = m.end()
	}
	return metas, off, nil
}

// readBlockData reads and checks a block's compressed data.
func readBlockData(r io.ReaderAt, m *blockMeta) ([]byte, error) {
	data := make([]byte, m.dataLen)
	if _, err := r.ReadAt(data, m.off+blockPrefixLen+int64(m.metaLen)); err != nil {
		return nil, err
	}
	if crc32.Checksum(data, crcTable) != m.dataCRC {
		return nil, fmt.Errorf("%w: block data checksum", errCorrupt)
	}
	return data, nil
}

// readBloomAt reads a block's bloom filter.
func readBloomAt(r io.ReaderAt, m *blockMeta) (bloom, error) {
	buf := make([]byte, m.bloomLen)
	if _, err := r.ReadAt(buf, m.bloomOff); err != nil {
		return bloom{}, err
	}
	d := decoder{b: buf}
	bl := readBloom(&d)
	return bl, d.err
}

// decodeBlock decompresses a block's data into raw, which is returned.
func decodeBlock(dec *zstd.Decoder, data, raw []byte, m *blockMeta) ([]byte, error) {
	if m.rawLen > maxBlockPart {
		return raw, errCorrupt
	}
	if int64(cap(raw)) < m.rawLen {
		raw = make([]byte, 0, m.rawLen)
	}
	out, err := dec.DecodeAll(data, raw[:0])
	if err != nil {
		return raw, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	return out, nil
}

// blockView splits a block's raw data into its parts.
type blockView struct {
	n    int
	ends []int // line i is text[ends[i-1]:ends[i]]
	text []byte
	meta []byte
}

func (v *blockView) parse(raw []byte) error {
	d := decoder{b: raw}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(raw)) {
		return errCorrupt
	}
	v.n = int(n)
	v.ends = v.ends[:0]
	total := 0
	for range v.n {
		l := d.uvarint()
		if d.err != nil || l > uint64(len(raw)) {
			return errCorrupt
		}
		total += int(l)
		if total > len(raw) {
			return errCorrupt
		}
		v.ends = append(v.ends, total)
	}
	if total > len(d.b) {
		return errCorrupt
	}
	v.text, v.meta = d.b[:total], d.b[total:]
	return nil
}

func (v *blockView) line(i int) []byte {
	start := 0
	if i > 0 {
		start = v.ends[i-1]
	}
	return v.text[start:v.ends[i]:v.ends[i]]
}

// scanEntries decodes every entry of a block's raw data.
func scanEntries(raw []byte, fn func(r *rawEntry)) error {
	var v blockView
	if err := v.parse(raw); err != nil {
		return err
	}
	d := decoder{b: v.meta}
	var r rawEntry
	for i := range v.n {
		if !d.rawMeta(&r) {
			return d.err
		}
		r.seq = i
		r.line = v.line(i)
		fn(&r)
	}
	return nil
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x.seg", seq) }

// syncDir makes a directory's entries (new or removed files) durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
