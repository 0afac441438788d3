package logstore

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// fuzz budget: 30000x
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "error", `"disk full" -host:db1`, "host:a unit:b.service source:kmsg priority:err",
		`-"x y" priority:9`, `unit:"my unit"`, `"unterminated`, "- x", `a"b`, `"\"quoted\\"`, "-priority:warning ÉCOLE"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			return
		}
		// What parses prints back to a query that parses to the same.
		q2, err := ParseQuery(q.String())
		if err != nil {
			t.Fatalf("ParseQuery(%q) = %+v, whose String %q fails: %v", s, q, q.String(), err)
		}
		if !reflect.DeepEqual(q, q2) {
			t.Fatalf("ParseQuery(%q) = %+v; its String %q parses to %+v", s, q, q.String(), q2)
		}
		if _, err := compile(q); err != nil {
			t.Fatalf("compile(ParseQuery(%q)): %v", s, err)
		}
		_ = LogsQL(q)
	})
}

func FuzzReadWAL(f *testing.F) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rec := appendWALRecord(nil, seqLines(t0, 0, 3))
	rec = appendWALRecord(rec, []Entry{{Time: t0, Host: "h", Line: "x", Fields: map[string]string{"a": "b"}}})
	f.Add(rec)
	f.Add(rec[:len(rec)-3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		good, err := readWAL(b, func(es []Entry) { n += len(es) })
		if good < 0 || good > len(b) || (err == nil && good != len(b)) {
			t.Fatalf("readWAL: good %d of %d, err %v", good, len(b), err)
		}
		// What was read whole reads the same again.
		m := 0
		if g2, err := readWAL(b[:good], func(es []Entry) { m += len(es) }); err != nil || g2 != good || m != n {
			t.Fatalf("rereading the good part: %d, %v, %d entries; want %d, nil, %d", g2, err, m, good, n)
		}
	})
}

// fuzz budget: 40000x
func FuzzReadSegment(f *testing.F) {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxBlockPart))
	defer dec.Close()
	bb := blockBuilder{enc: enc}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	b1, _ := bb.build(seqLines(t0, 0, 5), 1)
	b2, _ := bb.build(seqLines(t0, 5, 2), 2)
	seg := append(append([]byte{}, b1...), b2...)
	f.Add(seg)
	f.Add(seg[:len(seg)-7])
	f.Add(b1[:30])
	f.Fuzz(func(t *testing.T, b []byte) {
		metas, good, err := scanSegment(bytes.NewReader(b), int64(len(b)), 1)
		if good < 0 || good > int64(len(b)) || (err == nil && good != int64(len(b))) {
			t.Fatalf("scanSegment: good %d of %d, err %v", good, len(b), err)
		}
		var raw []byte
		for i := range metas {
			m := &metas[i]
			data, err := readBlockData(bytes.NewReader(b), m)
			if err != nil {
				continue
			}
			if raw, err = decodeBlock(dec, data, raw, m); err != nil {
				continue
			}
			_ = scanEntries(raw, func(r *rawEntry) { _ = r.entry() })
		}
	})
}
