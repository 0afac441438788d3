package logstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// backend opens a fresh store for one test; flush makes what was appended
// searchable (VictoriaLogs makes lines searchable about a second after it
// accepts them).
type backend struct {
	name  string
	open  func(t *testing.T) Store
	flush func(t *testing.T)
}

// backends lists the stores every contract test runs against: the embedded
// one always, VictoriaLogs when HINOMI_TEST_VICTORIALOGS names a server.
func backends(t *testing.T) []backend {
	bs := []backend{{
		name: "embedded",
		open: func(t *testing.T) Store {
			s, err := OpenEmbedded(t.TempDir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		flush: func(*testing.T) {},
	}}
	vl := os.Getenv("HINOMI_TEST_VICTORIALOGS")
	if vl == "" {
		t.Log("VictoriaLogs backend skipped: HINOMI_TEST_VICTORIALOGS is not set (scripts/test starts a server and sets it)")
		return bs
	}
	return append(bs, backend{
		name: "victorialogs",
		open: func(t *testing.T) Store {
			s, err := Open(t.Context(), "victorialogs:"+vl, "", Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		flush: func(t *testing.T) {
			resp, err := http.Get(vl + "/internal/force_flush")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("force_flush: %s", resp.Status)
			}
		},
	})
}

// window gives each test an hour of its own, so that tests sharing one
// VictoriaLogs server see only their own lines: a random hour between 2021
// and 2025.
func window(t *testing.T) time.Time {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	h := binary.LittleEndian.Uint64(b[:]) % (4 * 365 * 24)
	return time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h) * time.Hour)
}

// line makes an entry i seconds into the window.
func line(t0 time.Time, i int, host, unit string, pri int, text string) Entry {
	return Entry{Time: t0.Add(time.Duration(i) * time.Second), Host: host, Source: "journal", Unit: unit, Priority: pri, Line: text}
}

// search runs query (the query language) in the test's window, with the
// window's bounds unless set.
func search(t *testing.T, s Store, t0 time.Time, query string, edit func(*Query)) []Entry {
	t.Helper()
	q, err := ParseQuery(query)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", query, err)
	}
	q.Since, q.Until = t0, t0.Add(time.Hour)
	if edit != nil {
		edit(&q)
	}
	var got []Entry
	if err := s.Search(t.Context(), q, func(e Entry) bool { got = append(got, e); return true }); err != nil {
		t.Fatalf("Search(%q): %v", query, err)
	}
	return got
}

func lines(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Line
	}
	return out
}

var basicLines = []struct {
	host, unit string
	pri        int
	text       string
}{
	{"web1", "nginx.service", 6, "GET /index.html 200"},
	{"web1", "nginx.service", 3, "upstream timed out (110: Connection timed out) while reading response header"},
	{"db1", "postgresql.service", 3, "ERROR: could not extend file: No space left on device"},
	{"db1", "postgresql.service", 6, "checkpoint complete: wrote 120 buffers"},
	{"db1", "kernel", 2, "EXT4-fs error (device sda1): ext4_find_entry: reading directory lblock 0"},
	{"web2", "sshd.service", 6, "Accepted publickey for deploy from 10.0.0.5 port 52814"},
	{"web2", "sshd.service", 5, "errors are only a word here, no distress"},
	{"web2", "", -1, "kernel: Out of memory: Killed process 4242 (java)"},
	{"web1", "nginx.service", 4, "connection TIMED out, retrying"},
	{"db1", "postgresql.service", 6, "database system is ready to accept connections"},
}

func TestContract(t *testing.T) {
	cases := []struct {
		name  string
		query string
		edit  func(*Query)
		want  []string // the lines, in order
	}{
		{"a word, any case, whole words only", "error", nil, []string{
			"ERROR: could not extend file: No space left on device",
			"EXT4-fs error (device sda1): ext4_find_entry: reading directory lblock 0"}},
		{"two words", "timed out", nil, []string{
			"upstream timed out (110: Connection timed out) while reading response header",
			"connection TIMED out, retrying"}},
		{"a phrase", `"connection timed out"`, nil, []string{
			"upstream timed out (110: Connection timed out) while reading response header",
			"connection TIMED out, retrying"}},
		{"a phrase keeps its word order", `"out timed"`, nil, nil},
		{"a word with punctuation is a phrase", "EXT4-fs", nil, []string{
			"EXT4-fs error (device sda1): ext4_find_entry: reading directory lblock 0"}},
		{"negation", "timed -upstream", nil, []string{"connection TIMED out, retrying"}},
		{"a negated phrase", `timed -"timed out (110"`, nil, []string{"connection TIMED out, retrying"}},
		{"host", "host:db1 -checkpoint", nil, []string{
			"ERROR: could not extend file: No space left on device",
			"EXT4-fs error (device sda1): ext4_find_entry: reading directory lblock 0",
			"database system is ready to accept connections"}},
		{"hosts, any of", "host:web2 host:nothere accepted", nil, []string{
			"Accepted publickey for deploy from 10.0.0.5 port 52814"}},
		{"not a host", "-host:db1 -host:web1", nil, []string{
			"Accepted publickey for deploy from 10.0.0.5 port 52814",
			"errors are only a word here, no distress",
			"kernel: Out of memory: Killed process 4242 (java)"}},
		{"unit", "unit:sshd.service", nil, []string{
			"Accepted publickey for deploy from 10.0.0.5 port 52814",
			"errors are only a word here, no distress"}},
		{"priority by name: err and worse, not unknown", "priority:err", nil, []string{
			"upstream timed out (110: Connection timed out) while reading response header",
			"ERROR: could not extend file: No space left on device",
			"EXT4-fs error (device sda1): ext4_find_entry: reading directory lblock 0"}},
		{"priority by number", "priority:2", nil, []string{
			"EXT4-fs error (device sda1): ext4_find_entry: reading directory lblock 0"}},
		{"not a priority", "-priority:5 host:web2", nil, []string{
			"Accepted publickey for deploy from 10.0.0.5 port 52814",
			"kernel: Out of memory: Killed process 4242 (java)"}},
		{"source", "source:kmsg", nil, nil},
		{"time range, half open", "", func(q *Query) {
			q.Since, q.Until = q.Since.Add(2*time.Second), q.Since.Add(4*time.Second)
		}, []string{
			"ERROR: could not extend file: No space left on device",
			"checkpoint complete: wrote 120 buffers"}},
		{"limit, oldest first", "host:db1", func(q *Query) { q.Limit = 2 }, []string{
			"ERROR: could not extend file: No space left on device",
			"checkpoint complete: wrote 120 buffers"}},
		{"limit, newest first", "host:db1", func(q *Query) { q.Limit = 2; q.Newest = true }, []string{
			"database system is ready to accept connections",
			"EXT4-fs error (device sda1): ext4_find_entry: reading directory lblock 0"}},
		{"nothing matches", "zebra", nil, nil},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			t0 := window(t)
			var es []Entry
			for i, l := range basicLines {
				es = append(es, line(t0, i, l.host, l.unit, l.pri, l.text))
			}
			// Two Appends, the second first in time: the order comes from
			// the times, not from arrival.
			if err := s.Append(t.Context(), es[5:]); err != nil {
				t.Fatal(err)
			}
			if err := s.Append(t.Context(), es[:5]); err != nil {
				t.Fatal(err)
			}
			b.flush(t)
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					got := lines(search(t, s, t0, c.query, c.edit))
					if !slices.Equal(got, c.want) {
						t.Errorf("query %q:\ngot  %q\nwant %q", c.query, got, c.want)
					}
				})
			}
			t.Run("every field comes back", func(t *testing.T) {
				got := search(t, s, t0, `"Out of memory"`, nil)
				want := es[7]
				if len(got) != 1 || !got[0].Time.Equal(want.Time) || got[0].Host != want.Host ||
					got[0].Source != want.Source || got[0].Unit != want.Unit || got[0].Priority != want.Priority {
					t.Errorf("got %+v; want %+v", got, want)
				}
			})
		})
	}
}

func TestContractBadInput(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			t0 := window(t)
			atMax := "maxline " + strings.Repeat("x", MaxLine-len("maxline  tail")) + " tail"
			over := "overlong " + strings.Repeat("y ", 5<<20) // 10 MB
			binary := "binary \x00\x01\x02\x7f\xfe garbage \x1b[31mred\x1b[0m"
			es := []Entry{
				line(t0, 0, "h", "u", 6, "invalid \xff\xfe utf8 here"),
				line(t0, 1, "h", "u", 6, atMax),
				line(t0, 2, "h", "u", 6, over),
				line(t0, 3, "h", "u", 6, binary),
				{Time: t0.Add(4 * time.Second), Host: "h", Source: "syslog", Unit: "app", Priority: 42, Line: "priority out of range",
					Fields: map[string]string{"pid": "4242", "facility": "daemon", "host": "clash"}},
			}
			if len(atMax) != MaxLine {
				t.Fatalf("len(atMax) = %d", len(atMax))
			}
			if err := s.Append(t.Context(), es); err != nil {
				t.Fatal(err)
			}
			b.flush(t)
			if got := lines(search(t, s, t0, "invalid utf8", nil)); !slices.Equal(got, []string{"invalid \uFFFD utf8 here"}) {
				t.Errorf("invalid UTF-8: got %q", got)
			}
			if got := lines(search(t, s, t0, "maxline tail", nil)); len(got) != 1 || got[0] != atMax {
				t.Errorf("a line of MaxLine bytes: got %d lines, want it whole", len(got))
			}
			if got := lines(search(t, s, t0, "overlong", nil)); len(got) != 1 || len(got[0]) > MaxLine || !strings.HasSuffix(got[0], cutMarker) {
				t.Errorf("a line over MaxLine: got %d lines (len %d), want one cut to %d with the marker", len(got), len(got[0]), MaxLine)
			}
			if got := lines(search(t, s, t0, "binary garbage", nil)); len(got) != 1 || got[0] != strings.ToValidUTF8(binary, "\uFFFD") {
				t.Errorf("binary garbage: got %q; want %q", got, strings.ToValidUTF8(binary, "\uFFFD"))
			}
			got := search(t, s, t0, "range", nil)
			if len(got) != 1 || got[0].Priority != -1 || got[0].Fields["pid"] != "4242" || got[0].Fields["facility"] != "daemon" || got[0].Fields["host"] != "clash" || got[0].Host != "h" {
				t.Errorf("fields: got %+v; want priority -1 and the fields kept", got)
			}
			st, err := s.Stats(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if st.InvalidUTF8 != 2 || st.CutLines != 1 {
				t.Errorf("Stats: InvalidUTF8 %d, CutLines %d; want 2 and 1", st.InvalidUTF8, st.CutLines)
			}
		})
	}
}

func TestContractManyHosts(t *testing.T) {
	const hosts, per = 200, 5
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			t0 := window(t)
			var es []Entry
			for i := range hosts * per {
				h := fmt.Sprintf("node%03d", i%hosts)
				es = append(es, line(t0, i, h, "kubelet.service", 6, fmt.Sprintf("sync pod %d on %s", i, h)))
			}
			for i := 0; i < len(es); i += 100 {
				if err := s.Append(t.Context(), es[i:i+100]); err != nil {
					t.Fatal(err)
				}
			}
			b.flush(t)
			got := search(t, s, t0, "host:node042 sync", nil)
			if len(got) != per {
				t.Fatalf("host:node042: got %d lines; want %d", len(got), per)
			}
			for i, e := range got {
				if want := fmt.Sprintf("sync pod %d on node042", 42+i*hosts); e.Line != want {
					t.Errorf("line %d: got %q; want %q", i, e.Line, want)
				}
			}
			all := search(t, s, t0, "pod", func(q *Query) { q.Limit = 2 * hosts * per })
			if len(all) != hosts*per {
				t.Fatalf("all: got %d lines; want %d", len(all), hosts*per)
			}
			if !slices.IsSortedFunc(all, func(a, b Entry) int { return a.Time.Compare(b.Time) }) {
				t.Error("all: not in time order")
			}
			if def := search(t, s, t0, "pod", nil); len(def) != DefaultLimit {
				t.Errorf("no limit: got %d lines; want the default %d", len(def), DefaultLimit)
			}
		})
	}
}

func TestContractStopEarly(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			t0 := window(t)
			var es []Entry
			for i := range 50 {
				es = append(es, line(t0, i, "h", "", 6, fmt.Sprintf("tick %d", i)))
			}
			if err := s.Append(context.Background(), es); err != nil {
				t.Fatal(err)
			}
			b.flush(t)
			n := 0
			q := Query{MaxPriority: 7, Since: t0, Until: t0.Add(time.Hour)}
			if err := s.Search(t.Context(), q, func(Entry) bool { n++; return n < 3 }); err != nil {
				t.Fatal(err)
			}
			if n != 3 {
				t.Errorf("fn called %d times after returning false at 3", n)
			}
		})
	}
}
