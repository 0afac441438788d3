package logstore

import (
	"encoding/binary"
	"errors"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The entry codec, shared by the WAL and the blocks. An entry's meta is the
// time (Unix nanoseconds, zig-zag varint), host, source, unit
// (length-prefixed), priority (varint), the count of fields and each key and
// value; the WAL follows it with the line, a block keeps its lines apart
// (segment.go).

var errCorrupt = errors.New("logstore: corrupt record")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendEntry(b []byte, e *Entry) []byte {
	b = appendEntryMeta(b, e)
	return appendString(b, e.Line)
}

func appendEntryMeta(b []byte, e *Entry) []byte {
	b = binary.AppendVarint(b, e.Time.UnixNano())
	b = appendString(b, e.Host)
	b = appendString(b, e.Source)
	b = appendString(b, e.Unit)
	b = binary.AppendVarint(b, int64(e.Priority))
	b = binary.AppendUvarint(b, uint64(len(e.Fields)))
	if len(e.Fields) > 0 {
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b = appendString(b, k)
			b = appendString(b, e.Fields[k])
		}
	}
	return b
}

// decoder reads entries from a buffer; every length is checked against
// what is left, so any input ends in an error rather than a panic.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next length-prefixed string, pointing into the buffer.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

// rawEntry is an entry whose strings still point into a decoded block, so
// a search copies only the lines it returns.
type rawEntry struct {
	t                  int64
	host, source, unit []byte
	priority           int
	line               []byte
	nfields            int
	fields             []byte // the encoded keys and values
	seq                int    // order of arrival, to break ties in time
}

// rawMeta reads an entry's meta (all but the line).
func (d *decoder) rawMeta(r *rawEntry) bool {
	r.t = d.varint()
	r.host = d.bytes()
	r.source = d.bytes()
	r.unit = d.bytes()
	r.priority = int(d.varint())
	nf := d.uvarint()
	if d.err != nil {
		return false
	}
	if nf > uint64(len(d.b)) {
		d.err = errCorrupt
		return false
	}
	r.nfields = int(nf)
	start := d.b
	for i := 0; i < r.nfields; i++ {
		d.bytes()
		d.bytes()
	}
	if d.err != nil {
		return false
	}
	r.fields = start[:len(start)-len(d.b)]
	return true
}

// entry copies r into an Entry.
func (r *rawEntry) entry() Entry {
	return Entry{
		Time:     time.Unix(0, r.t).UTC(),
		Host:     string(r.host),
		Source:   string(r.source),
		Unit:     string(r.unit),
		Priority: r.priority,
		Line:     string(r.line),
		Fields:   r.fieldMap(),
	}
}

func (r *rawEntry) fieldMap() map[string]string {
	if r.nfields == 0 {
		return nil
	}
	f := make(map[string]string, r.nfields)
	d := decoder{b: r.fields}
	for range r.nfields {
		k := d.bytes()
		v := d.bytes()
		f[string(k)] = string(v)
	}
	return f
}

// entry reads a whole entry, as the WAL holds it.
func (d *decoder) entry() (Entry, bool) {
	var r rawEntry
	if !d.rawMeta(&r) {
		return Entry{}, false
	}
	r.line = d.bytes()
	if d.err != nil {
		return Entry{}, false
	}
	return r.entry(), true
}

// sanitize makes e safe to store: valid UTF-8 everywhere (invalid bytes
// become U+FFFD), a line no longer than MaxLine, a priority in -1..7, and a
// time (now when the caller gave none). It reports what it changed.
func sanitize(e Entry, now func() time.Time) (out Entry, invalid, cut bool) {
	fix := func(s string) string {
		if utf8.ValidString(s) {
			return s
		}
		invalid = true
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	e.Host = fix(e.Host)
	e.Source = fix(e.Source)
	e.Unit = fix(e.Unit)
	e.Line = fix(e.Line)
	if len(e.Line) > MaxLine {
		e.Line = CutLine(e.Line)
		cut = true
	}
	if e.Priority < -1 || e.Priority > 7 {
		e.Priority = -1
	}
	if e.Time.IsZero() {
		e.Time = now()
	}
	if len(e.Fields) > 0 {
		f := make(map[string]string, len(e.Fields))
		for k, v := range e.Fields {
			f[fix(k)] = fix(v)
		}
		e.Fields = f
	}
	return e, invalid, cut
}
