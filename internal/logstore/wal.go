package logstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The write-ahead log holds the entries not yet in a block. Each Append
// writes one record and fsyncs it (Appends that arrive during an fsync share
// the next one):
//
//	length u32  crc u32  payload: count (uvarint), then the entries
//
// A WAL file belongs to a generation; a block records the generation it
// flushed, and on open the generations after the last block's are replayed.
// A record cut short or failing its checksum ends the log there (a torn
// write of a killed process); it was never acknowledged.

const walHeaderLen = 8

// maxWALRecord bounds one record (an Append of many long lines).
const maxWALRecord = 1 << 30

func walName(gen uint64) string { return fmt.Sprintf("wal-%016x.log", gen) }

// appendWALRecord encodes entries as one record.
func appendWALRecord(b []byte, entries []Entry) []byte {
	start := len(b)
	b = append(b, make([]byte, walHeaderLen)...)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for i := range entries {
		b = appendEntry(b, &entries[i])
	}
	payload := b[start+walHeaderLen:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crcTable))
	return b
}

// readWAL decodes the records of a WAL file's contents, calling fn for each
// record's entries, and returns how many bytes hold whole, valid records.
func readWAL(b []byte, fn func([]Entry)) (good int, err error) {
	off := 0
	for off < len(b) {
		if len(b)-off < walHeaderLen {
			return off, fmt.Errorf("%w: a WAL record cut short at offset %d", errCorrupt, off)
		}
		n := int(binary.LittleEndian.Uint32(b[off:]))
		sum := binary.LittleEndian.Uint32(b[off+4:])
		if n > maxWALRecord || n > len(b)-off-walHeaderLen {
			return off, fmt.Errorf("%w: a WAL record cut short at offset %d", errCorrupt, off)
		}
		payload := b[off+walHeaderLen : off+walHeaderLen+n]
		if crc32.Checksum(payload, crcTable) != sum {
			return off, fmt.Errorf("%w: WAL record checksum at offset %d", errCorrupt, off)
		}
		d := decoder{b: payload}
		count := d.uvarint()
		if d.err != nil || count > uint64(len(payload)) {
			return off, fmt.Errorf("%w: WAL record at offset %d", errCorrupt, off)
		}
		entries := make([]Entry, 0, count)
		for i := uint64(0); i < count; i++ {
			e, ok := d.entry()
			if !ok {
				return off, fmt.Errorf("%w: WAL record at offset %d", errCorrupt, off)
			}
			entries = append(entries, e)
		}
		fn(entries)
		off += walHeaderLen + n
	}
	return off, nil
}
