package tower

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/testload"
	"github.com/hinomi/hinomi/internal/wire"
)

// linesBatch is an agent's log spool batch: records from..to, each of
// perRecord lines "word REC.I".
func linesBatch(agent, spool, word string, from, to uint64, perRecord int, at time.Time) []byte {
	env := wire.Envelope{Agent: agent, Spool: spool, Sent: at}
	for seq := from; seq <= to; seq++ {
		var ls wire.Lines
		for i := range perRecord {
			ls.Lines = append(ls.Lines, wire.Line{Time: at.Add(time.Duration(seq)*time.Second + time.Duration(i)*time.Millisecond),
				Source: "file:/var/log/app.log", Unit: "app.log", Priority: -1, Text: fmt.Sprintf("%s %d.%d", word, seq, i)})
		}
		data, _ := json.Marshal(ls)
		env.Records = append(env.Records, wire.Record{Seq: seq, Kind: wire.KindLines, Time: at, Data: data})
	}
	b, _ := json.Marshal(env)
	return b
}

func postLines(t *testing.T, h http.Handler, token string, body []byte) (*httptest.ResponseRecorder, wire.Reply) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, wire.LinesPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var reply wire.Reply
	_ = json.Unmarshal(rec.Body.Bytes(), &reply)
	return rec, reply
}

// search runs a query through the tower's API handler.
func search(t *testing.T, h http.Handler, v url.Values) []LogLine {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/logs?"+v.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("search %v: %d %s", v, rec.Code, rec.Body)
	}
	var out []LogLine
	dec := json.NewDecoder(rec.Body)
	for {
		var l LogLine
		if err := dec.Decode(&l); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
}

func lineCounts(lines []LogLine) map[string]int {
	m := map[string]int{}
	for _, l := range lines {
		m[l.Line]++
	}
	return m
}

// logBackends are the log stores a test runs on: the embedded one, and
// VictoriaLogs when HINOMI_TEST_VICTORIALOGS names a server (scripts/test
// starts one).
func logBackends(t *testing.T) map[string]string {
	b := map[string]string{"embedded": "embedded"}
	if u := os.Getenv("HINOMI_TEST_VICTORIALOGS"); u != "" {
		b["victorialogs"] = "victorialogs:" + u
	} else {
		t.Log("VictoriaLogs skipped: HINOMI_TEST_VICTORIALOGS is not set")
	}
	return b
}

// TestLogIngestResendAfterCrash: a batch the log store took but whose
// acknowledgement never reached the agent (the tower was killed between
// the two) is sent again to the restarted tower, together with newer
// records: nothing is stored twice, nothing is missing. On both backends.
func TestLogIngestResendAfterCrash(t *testing.T) {
	sqliteOnly(t, "one tower's own log store")
	for name, store := range logBackends(t) {
		t.Run(name, func(t *testing.T) {
			// A server shared by every run: words, spools and times of this run's own.
			run := strconv.FormatInt(time.Now().UnixNano(), 36)
			word, spool := "wombat"+run, "sp"+run
			at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
			dir := t.TempDir()
			config := "data_dir: " + dir + "\napi_token: " + apiToken + "\nagents:\n  - {name: pve1, token: " + tokenA + "}\nlogs: {store: '" + store + "'}\n"
			c := &clock{now: at.Add(time.Hour)}
			tw := openTower(t, c, config)
			h := tw.Handler()
			if rec, reply := postLines(t, h, tokenA, linesBatch("pve1", spool, word, 1, 3, 50, at)); rec.Code != 200 || reply.Acked != 3 {
				t.Fatalf("first batch: %d %s", rec.Code, rec.Body)
			}
			// An ordinary resend (the reply was lost): acknowledged, not stored again.
			if rec, reply := postLines(t, h, tokenA, linesBatch("pve1", spool, word, 1, 3, 50, at)); rec.Code != 200 || reply.Acked != 3 {
				t.Fatalf("resend: %d %s", rec.Code, rec.Body)
			}
			// VictoriaLogs makes lines searchable within about a second; a
			// restarted tower comes later than that.
			waitFor(t, "the first lines searchable", func() bool {
				return len(search(t, h, url.Values{"q": {word}, "limit": {"100000"}})) == 150
			})
			if err := tw.closeLogs(); err != nil {
				t.Fatal(err)
			}
			// The restarted tower knows nothing of what it acknowledged.
			tw2 := openTower(t, c, config)
			t.Cleanup(func() { _ = tw2.closeLogs() })
			h2 := tw2.Handler()
			if rec, reply := postLines(t, h2, tokenA, linesBatch("pve1", spool, word, 2, 5, 50, at)); rec.Code != 200 || reply.Acked != 5 {
				t.Fatalf("resend after the restart: %d %s", rec.Code, rec.Body)
			}
			var got map[string]int
			waitFor(t, "every line searchable", func() bool {
				got = lineCounts(search(t, h2, url.Values{"q": {word}, "limit": {"100000"}}))
				return len(got) >= 250
			})
			for seq := 1; seq <= 5; seq++ {
				for i := range 50 {
					if n := got[fmt.Sprintf("%s %d.%d", word, seq, i)]; n != 1 {
						t.Fatalf("%s %d.%d stored %d times; want once", word, seq, i, n)
					}
				}
			}
			if len(got) != 250 {
				t.Errorf("%d distinct lines; want 250", len(got))
			}
		})
	}
}

// TestLogIngestBounds: an agent past its rate has the rest counted in a
// stored line; a long line is cut with a marker; invalid UTF-8 is made
// valid; a batch of another kind, or of another agent, is refused.
func TestLogIngestBounds(t *testing.T) {
	sqliteOnly(t, "one tower's own log store")
	c := &clock{now: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)}
	tw := openTower(t, c, "data_dir: "+t.TempDir()+"\napi_token: "+apiToken+
		"\nagents:\n  - {name: pve1, token: "+tokenA+"}\n  - {name: pve2, token: "+tokenB+"}\nlogs: {rate_limit: 10, burst: 100}\n")
	t.Cleanup(func() { _ = tw.closeLogs() })
	h := tw.Handler()
	if rec, _ := postLines(t, h, tokenA, linesBatch("pve1", "sp", "flood", 1, 3, 100, c.Now())); rec.Code != 200 {
		t.Fatalf("flood: %d %s", rec.Code, rec.Body)
	}
	stored := len(search(t, h, url.Values{"q": {"flood"}, "host": {"pve1"}, "limit": {"1000"}}))
	dropped := 0
	for _, l := range search(t, h, url.Values{"q": {"dropped"}, "host": {"pve1"}}) {
		n, _ := strconv.Atoi(l.Fields["dropped"])
		dropped += n
		if !strings.Contains(l.Line, "limit of 10 lines a second") {
			t.Errorf("dropped line %q", l.Line)
		}
	}
	if stored != 100 || dropped != 200 {
		t.Errorf("%d stored, %d counted as dropped; want the burst of 100 stored and 200 counted", stored, dropped)
	}

	c.Set(c.Now().Add(time.Minute)) // the bucket is full again
	long := strings.Repeat("ä", logstore.MaxLine)
	env := wire.Envelope{Agent: "pve2", Spool: "s", Sent: c.Now()}
	data, _ := json.Marshal(wire.Lines{Lines: []wire.Line{
		{Time: c.Now(), Source: "journal", Unit: "x.service", Priority: 42, Text: "longline " + long},
		{Time: c.Now(), Source: "journal", Unit: "x.service", Priority: 3, Text: "badutf8 \xff\xfe end"},
	}})
	env.Records = []wire.Record{{Seq: 1, Kind: wire.KindLines, Time: c.Now(), Data: data}}
	body, _ := json.Marshal(env)
	if rec, _ := postLines(t, h, tokenB, body); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	got := search(t, h, url.Values{"host": {"pve2"}})
	if len(got) != 2 {
		t.Fatalf("%d lines; want 2", len(got))
	}
	for _, l := range got {
		switch {
		case strings.HasPrefix(l.Line, "longline"):
			if len(l.Line) > logstore.MaxLine || !strings.HasSuffix(l.Line, "[cut]") || l.Priority != -1 {
				t.Errorf("long line: %d bytes, priority %d, ends %q; want at most %d, cut, priority unknown", len(l.Line), l.Priority, l.Line[len(l.Line)-10:], logstore.MaxLine)
			}
		case strings.HasPrefix(l.Line, "badutf8"):
			if !utf8.ValidString(l.Line) || !strings.HasSuffix(l.Line, "\uFFFD end") || l.Priority != 3 {
				t.Errorf("invalid UTF-8 line %q priority %d", l.Line, l.Priority)
			}
		}
	}

	for _, c := range []struct {
		token string
		body  []byte
		code  int
	}{
		{tokenA, batch("pve1", "s", 1), http.StatusBadRequest},                            // a status record
		{tokenA, linesBatch("pve2", "s", "x", 1, 1, 1, time.Now()), http.StatusForbidden}, // another agent's name
		{"nope-nope-nope-nope", linesBatch("pve1", "s", "x", 1, 1, 1, time.Now()), http.StatusUnauthorized},
	} {
		if rec, _ := postLines(t, h, c.token, c.body); rec.Code != c.code {
			t.Errorf("got %d %s; want %d", rec.Code, rec.Body, c.code)
		}
	}
}

// TestLogStoreDiskFull: with the log store's disk full, ingest refuses
// the lines with a clear error (the agent keeps them), /metrics and the
// status banner say so; once there is room the resend is stored once.
func TestLogStoreDiskFull(t *testing.T) {
	sqliteOnly(t, "one tower's own log store")
	dir := t.TempDir()
	small := testload.MountTmpfs(t, "4m")
	if err := os.Symlink(small, filepath.Join(dir, "logs")); err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)}
	tw := openTower(t, c, "data_dir: "+dir+"\napi_token: "+apiToken+"\nagents:\n  - {name: pve1, token: "+tokenA+"}\n")
	t.Cleanup(func() { _ = tw.closeLogs() })
	h := tw.Handler()
	if rec, _ := postLines(t, h, tokenA, linesBatch("pve1", "sp", "before", 1, 1, 10, c.Now())); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	free := testload.FillDisk(t, small)
	body := linesBatch("pve1", "sp", "during", 2, 3, 200, c.Now())
	rec, reply := postLines(t, h, tokenA, body)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(reply.Error, "disk is full") || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("with the disk full: %d %q; want 503 saying the disk is full, with Retry-After", rec.Code, reply.Error)
	}
	if why, _ := tw.bannerReason(); !strings.Contains(why, "cannot store log lines: its disk is full") {
		t.Errorf("banner %q", why)
	}
	if m := metricsText(t, h); !strings.Contains(m, "hinomi_tower_log_store_unwritable 1") {
		t.Errorf("metrics do not say the log store is unwritable:\n%s", grepLines(m, "log_store"))
	}
	free()
	if rec, reply := postLines(t, h, tokenA, body); rec.Code != 200 || reply.Acked != 3 {
		t.Fatalf("after freeing: %d %s", rec.Code, rec.Body)
	}
	got := lineCounts(search(t, h, url.Values{"q": {"during"}, "limit": {"10000"}}))
	if len(got) != 400 {
		t.Errorf("%d distinct lines after the resend; want 400", len(got))
	}
	for l, n := range got {
		if n != 1 {
			t.Errorf("%q stored %d times", l, n)
		}
	}
	if why, _ := tw.bannerReason(); why != "" {
		t.Errorf("banner still %q", why)
	}
	if m := metricsText(t, h); !strings.Contains(m, "hinomi_tower_log_store_unwritable 0") {
		t.Errorf("metrics:\n%s", grepLines(m, "log_store"))
	}
}

func metricsText(t *testing.T, h http.Handler) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Body.String()
}

// TestLogSearchAroundAndFollow: around=T&window= is every host's lines
// in the window before T; a follow from a search's cursor gets each line
// stored later exactly once. On both backends.
func TestLogSearchAroundAndFollow(t *testing.T) {
	sqliteOnly(t, "one tower's own log store")
	for name, store := range logBackends(t) {
		t.Run(name, func(t *testing.T) {
			run := strconv.FormatInt(time.Now().UnixNano(), 36)
			emu, kiwi, h1, h2 := "emu"+run, "kiwi"+run, "pve1"+run, "pve2"+run
			at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
			c := &clock{now: at.Add(time.Hour)}
			tw := openTower(t, c, "data_dir: "+t.TempDir()+"\napi_token: "+apiToken+
				"\nagents:\n  - {name: "+h1+", token: "+tokenA+"}\n  - {name: "+h2+", token: "+tokenB+"}\nlogs: {store: '"+store+"'}\n")
			t.Cleanup(func() { _ = tw.closeLogs() })
			h := tw.Handler()
			// h1's lines at +1s..+5s, h2's at +2s..+4s (1 ms apart within).
			postLines(t, h, tokenA, linesBatch(h1, "a", emu, 1, 5, 3, at))
			postLines(t, h, tokenB, linesBatch(h2, "b", kiwi, 2, 4, 3, at))
			around := url.Values{"around": {at.Add(3 * time.Second).Format(time.RFC3339Nano)}, "window": {"2s"}, "host": {h1, h2}}
			waitFor(t, "the lines searchable", func() bool { return len(search(t, h, url.Values{"host": {h1, h2}})) == 24 })
			hosts := map[string]int{}
			for _, l := range search(t, h, around) {
				hosts[l.Host]++
				if l.Time.Before(at.Add(time.Second)) || l.Time.After(at.Add(3*time.Second)) {
					t.Errorf("line at %s outside the window", l.Time)
				}
			}
			// [+1s, +3s]: h1's records 1, 2 and the first line of 3; h2's 2 and the first of 3.
			if hosts[h1] != 7 || hosts[h2] != 4 {
				t.Errorf("lines by host %v; want %s 7, %s 4", hosts, h1, h2)
			}

			req := httptest.NewRequest(http.MethodGet, "/api/v1/logs?q="+emu, nil)
			req.Header.Set("Authorization", "Bearer "+apiToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			cursor := rec.Header().Get(CursorHeader)
			if cursor == "" {
				t.Fatal("no cursor")
			}
			postLines(t, h, tokenA, linesBatch(h1, "a", emu, 6, 8, 3, at))
			postLines(t, h, tokenB, linesBatch(h2, "b", kiwi, 5, 6, 3, at))
			seen := map[string]int{}
			for range 3 { // the second and third polls find nothing new
				req := httptest.NewRequest(http.MethodGet, "/api/v1/logs?q="+emu+"&after="+url.QueryEscape(cursor), nil)
				req.Header.Set("Authorization", "Bearer "+apiToken)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				cursor = rec.Header().Get(CursorHeader)
				if rec.Header().Get(MissedHeader) != "" {
					t.Errorf("missed %s", rec.Header().Get(MissedHeader))
				}
				dec := json.NewDecoder(rec.Body)
				for dec.More() {
					var l LogLine
					if err := dec.Decode(&l); err != nil {
						t.Fatal(err)
					}
					seen[l.Line]++
				}
			}
			if len(seen) != 9 {
				t.Errorf("the follow got %d lines; want the 9 new %s lines: %v", len(seen), emu, seen)
			}
			for l, n := range seen {
				if n != 1 || !strings.HasPrefix(l, emu+" ") {
					t.Errorf("%q %d times", l, n)
				}
			}
		})
	}
}

// TestFollowRingBounds: the lines kept for follows are bounded in count
// and bytes; a follow that fell behind is told how many it missed, and
// one from another run of the tower starts over.
func TestFollowRingBounds(t *testing.T) {
	r := newRecentLines()
	cursor := r.cursor()
	m, err := logstore.NewMatcher(logstore.Query{MaxPriority: 7})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 60<<10)
	for i := range 1000 { // 60 MB of lines: past the byte bound
		r.add([]logstore.Entry{{Host: "h", Line: fmt.Sprintf("%d %s", i, big)}})
	}
	if r.bytes > followBytes || len(r.ring) >= 1000 {
		t.Fatalf("ring holds %d lines, %d bytes; want at most %d bytes", len(r.ring), r.bytes, followBytes)
	}
	got, next, missed := r.since(cursor, logstore.Query{Limit: 100000}, m)
	if missed == 0 || int(missed)+len(got) != 1000 || !strings.HasPrefix(got[len(got)-1].Line, "999 ") {
		t.Errorf("missed %d, got %d; want the dropped ones counted and the rest returned", missed, len(got))
	}
	if more, _, missed := r.since(next, logstore.Query{Limit: 100000}, m); len(more) != 0 || missed != 0 {
		t.Errorf("a caught-up follow got %d lines, missed %d", len(more), missed)
	}
	if _, _, missed := r.since("0123456789ab:5", logstore.Query{Limit: 10}, m); missed == 0 {
		t.Error("a cursor of another run of the tower was not reported")
	}
}

func TestLogsConfigErrors(t *testing.T) {
	_, err := ParseConfig([]byte("data_dir: /tmp/x\nagents: [{name: a, token: 0123456789abcdef0}]\n"+
		"logs: {store: loki, max_age: 5m, rate_limit: -1}\nsyslog: {udp: [nope], allow: [300.1.1.1], tls: [127.0.0.1:6514]}\n"), "tower.yaml")
	for _, want := range []string{
		"line 3: logs.store: want embedded (the default), victorialogs:http://HOST:9428 or off",
		"line 3: logs.max_age: at least 1h",
		"line 3: logs.rate_limit: lines a second, at least 1",
		"line 4: syslog.udp.0: want HOST:PORT",
		"line 4: syslog.tls: a TLS listener needs syslog.cert_file and key_file, or the tower's tls pair",
		"line 4: syslog.allow.0: want an address or a prefix",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v; want it to say %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "burst") {
		t.Errorf("a bad rate_limit also blamed burst: %v", err)
	}
	cfg, err := ParseConfig([]byte("data_dir: /tmp/x\nsyslog: {udp: [127.0.0.1:514]}\nlogs: {max_age: 7d}\n"), "tower.yaml")
	if err != nil {
		t.Fatalf("a tower of syslog senders only: %v", err)
	}
	if cfg.Logs.Store != "embedded" || cfg.Logs.MaxAge != Duration(7*24*time.Hour) || cfg.Logs.RateLimit != 5000 || cfg.Logs.Burst != 50000 {
		t.Errorf("defaults %+v", cfg.Logs)
	}
}
