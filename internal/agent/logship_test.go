package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
	towersrv "github.com/hinomi/hinomi/internal/tower"
	"github.com/hinomi/hinomi/internal/wire"
)

const shipAPIToken = "api-token-for-ship-tests-0123456789"

// searchTower asks a tower's log search and returns its lines.
func searchTower(t *testing.T, base string, v url.Values) []towersrv.LogLine {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/logs?"+v.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+shipAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("search: %s", resp.Status)
	}
	var out []towersrv.LogLine
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l towersrv.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// TestAgentShipsFileLines: every line written to a followed file reaches
// the tower's log store once, with its source and host, the matched ones
// with their signature; the findings still arrive as before.
func TestAgentShipsFileLines(t *testing.T) {
	base := startTower(t, shipAPIToken, "agents: [{name: figgy, token: tok-figgy-0123456789}]\n")
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Towers: []string{base}, Token: "tok-figgy-0123456789", Name: "figgy", StateDir: filepath.Join(dir, "state"),
		Kmsg: "-", Interval: 200 * time.Millisecond, LogFiles: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	defer func() { stop(); <-done }()
	poll(t, "the file followed", func() bool { return a.filesFollowed.Load() == 1 })

	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		fmt.Fprintf(f, "app[42]: request %05d served shipword\n", i)
	}
	fmt.Fprintln(f, nfsDown)
	f.Close()

	var got []towersrv.LogLine
	poll(t, "every line in the tower's log store", func() bool {
		got = searchTower(t, base, url.Values{"q": {"shipword"}, "limit": {"100000"}})
		return len(got) >= n
	})
	seen := map[string]int{}
	for _, l := range got {
		seen[l.Line]++
		if l.Host != "figgy" || l.Source != "file:"+path || l.Priority != -1 {
			t.Fatalf("line %+v: want host figgy, source file:%s, priority -1", l, path)
		}
	}
	for i := range n {
		if c := seen[fmt.Sprintf("app[42]: request %05d served shipword", i)]; c != 1 {
			t.Fatalf("line %d stored %d times; want once", i, c)
		}
	}
	var matched []towersrv.LogLine
	poll(t, "the matched line with its signature", func() bool {
		matched = searchTower(t, base, url.Values{"q": {`"not responding"`}, "host": {"figgy"}})
		return len(matched) == 1
	})
	if matched[0].Fields["signature"] != "nfs-not-responding" || matched[0].Fields["seq"] != "" {
		t.Errorf("matched line fields %v; want its signature and no ingest bookkeeping", matched[0].Fields)
	}
}

func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * testload.ReadyTimeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, 2*testload.ReadyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLogShipFilter: the default ships journal lines up to info, and a
// unit or pattern narrows what goes.
func TestLogShipFilter(t *testing.T) {
	line := func(src, unit string, pri int, text string) *wire.Line {
		return &wire.Line{Source: src, Unit: unit, Priority: pri, Text: text}
	}
	def := newShipper(LogShip{})
	for _, c := range []struct {
		l    *wire.Line
		want bool
	}{
		{line("journal", "sshd.service", 6, "Accepted publickey"), true},
		{line("journal", "sshd.service", 7, "debug1: channel 0"), false},
		{line("kmsg", "kernel", 3, "I/O error"), true},
		{line("file:/var/log/app.log", "app.log", -1, "anything"), true},
	} {
		if got := def.wants(c.l); got != c.want {
			t.Errorf("default filter, %+v: %v; want %v", *c.l, got, c.want)
		}
	}
	narrow := newShipper(LogShip{Priority: 4, Units: []string{"sshd", "kernel"}, Match: regexp.MustCompile(`(?i)error|fail`)})
	for _, c := range []struct {
		l    *wire.Line
		want bool
	}{
		{line("journal", "sshd.service", 3, "error: kex_exchange_identification"), true},
		{line("journal", "sshd.service", 6, "error: but only info"), false},
		{line("journal", "cron.service", 3, "error in cron"), false},
		{line("kmsg", "kernel", 3, "Buffer I/O error on dev sda1"), true},
		{line("kmsg", "kernel", 3, "usb 1-1: new device"), false},
	} {
		if got := narrow.wants(c.l); got != c.want {
			t.Errorf("narrow filter, %+v: %v; want %v", *c.l, got, c.want)
		}
	}
	if newShipper(LogShip{Off: true}).wants(line("kmsg", "kernel", 0, "panic")) {
		t.Error("with shipping off a line was wanted")
	}
}

// TestJournalAndKmsgLines: the shipped line of a journal record and of a
// kernel record carry their time, unit and priority.
func TestJournalAndKmsgLines(t *testing.T) {
	rec := `{"__REALTIME_TIMESTAMP":"1764644400123456","PRIORITY":"3","_SYSTEMD_UNIT":"docker.service","SYSLOG_IDENTIFIER":"dockerd","MESSAGE":"level=error msg=\"failed to kill\"","_PID":"812"}`
	l, ok := journalLine([]byte(rec))
	if !ok {
		t.Fatal("not read")
	}
	if l.Unit != "docker.service" || l.Priority != 3 || l.Text != `level=error msg="failed to kill"` ||
		!l.Time.Equal(time.UnixMicro(1764644400123456)) || l.Fields["program"] != "dockerd" || l.Fields["pid"] != "812" {
		t.Errorf("journal line %+v", l)
	}
	// A MESSAGE that is not UTF-8 comes as an array of bytes.
	l, _ = journalLine([]byte(`{"PRIORITY":"6","SYSLOG_IDENTIFIER":"app","MESSAGE":[104,105,255]}`))
	if l.Text != "hi\uFFFD" || l.Unit != "app" {
		t.Errorf("binary journal message: %+v", l)
	}
	boot := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	k := kmsgLine([]byte("3,1234,5000000,-;EXT4-fs error (device sda1): bad block\n SUBSYSTEM=block\n"), boot)
	if k.Priority != 3 || k.Text != "EXT4-fs error (device sda1): bad block" || !k.Time.Equal(boot.Add(5*time.Second)) || k.Source != "kmsg" {
		t.Errorf("kmsg line %+v", k)
	}
	if !strings.Contains(kmsgLine([]byte("garbage"), boot).Text, "garbage") {
		t.Error("a record without a header lost its text")
	}
}

// TestAgentWithTowerBeforeLogShipping: a tower that predates log shipping
// (its API has no log ingest: 404) still gets the findings and heartbeats;
// the lines wait in the log spool and nothing is refused.
func TestAgentWithTowerBeforeLogShipping(t *testing.T) {
	cfg, err := towersrv.ParseConfig([]byte("data_dir: "+t.TempDir()+"\napi_token: "+shipAPIToken+
		"\nagents: [{name: oldie, token: tok-oldie-0123456789}]\n"), "tower.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tw, err := towersrv.New(cfg, towersrv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	api := tw.Handler()
	var refusedOld, linesAsked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.LinesPath {
			linesAsked.Add(1)
			http.NotFound(w, r) // as a tower without log ingest answers
			return
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, r)
		if r.URL.Path == wire.Path && rec.Code != http.StatusOK {
			refusedOld.Add(1)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Towers: []string{srv.URL}, Token: "tok-oldie-0123456789", Name: "oldie", StateDir: filepath.Join(dir, "state"),
		Kmsg: "-", Interval: 200 * time.Millisecond, LogFiles: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	defer func() { stop(); <-done }()
	poll(t, "the file followed", func() bool { return a.filesFollowed.Load() == 1 })
	if err := os.WriteFile(path, []byte(nfsDown+"\nan ordinary line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll(t, "the tower asked for lines and answered 404", func() bool { return linesAsked.Load() > 0 })
	poll(t, "the log finding delivered to the old tower", func() bool {
		return a.towers[0].spool.Stats().Pending == 0 && len(searchHosts(t, srv.URL)) == 1
	})
	if n := a.towers[0].lines.Stats().Pending; n == 0 {
		t.Error("the log spool is empty; want the lines kept for when the tower is upgraded")
	}
	if n := refusedOld.Load(); n != 0 {
		t.Errorf("the old tower refused %d batches", n)
	}
}

func searchHosts(t *testing.T, base string) []json.RawMessage {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/findings?host=oldie", nil)
	req.Header.Set("Authorization", "Bearer "+shipAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Findings []json.RawMessage `json:"findings"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	var nfs []json.RawMessage
	for _, f := range out.Findings {
		if strings.Contains(string(f), "nfs-not-responding") {
			nfs = append(nfs, f)
		}
	}
	return nfs
}

// spooledLines are the lines in the agent's log spool for its first tower.
func spooledLines(t *testing.T, a *Agent) []wire.Line {
	t.Helper()
	recs, err := a.towers[0].lines.Peek(100000, 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.Line
	for _, r := range recs {
		var ls wire.Lines
		s, err := decodeSpooled(r.Data)
		if err != nil || s.Kind != wire.KindLines || json.Unmarshal(s.Data, &ls) != nil {
			t.Fatalf("a log spool record that is not lines: %.200s", r.Data)
		}
		out = append(out, ls.Lines...)
	}
	return out
}

// TestAgentShipsKernelLines: a line written to the real /dev/kmsg is in
// the log spool with the kernel's priority and a time from its boot clock.
func TestAgentShipsKernelLines(t *testing.T) {
	testload.RequireRoot(t, "writing to /dev/kmsg needs root")
	a := runAgent(t, Config{Name: "kern1", Interval: time.Hour, Kmsg: "/dev/kmsg"})
	marker := fmt.Sprintf("hinomi-ship-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	before := time.Now()
	if err := os.WriteFile("/dev/kmsg", []byte("<3>"+marker+" disk on fire\n"), 0); err != nil {
		t.Fatalf("writing to /dev/kmsg: %v", err)
	}
	var got *wire.Line
	poll(t, "the kernel line in the log spool", func() bool {
		for _, l := range spooledLines(t, a) {
			if strings.Contains(l.Text, marker) {
				got = &l
				return true
			}
		}
		return false
	})
	if got.Source != "kmsg" || got.Unit != "kernel" || got.Priority != 3 || got.Text != marker+" disk on fire" {
		t.Errorf("kernel line %+v", *got)
	}
	// The boot clock and the wall clock agree to within a few seconds
	// (btime has whole seconds).
	if d := got.Time.Sub(before); d < -3*time.Second || d > 30*time.Second {
		t.Errorf("kernel line dated %s, written at %s", got.Time, before)
	}
}

// TestAgentShipsContainerLines: a container's output is in the log spool
// with its name, read through the real Docker engine.
func TestAgentShipsContainerLines(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	a := runAgent(t, Config{Name: "dock2", Interval: 300 * time.Millisecond, ContainerLogs: true})
	poll(t, "the first diagnosis", func() bool { return len(spooledFindings(t, a)) > 0 })
	name := fmt.Sprintf("hinomi-test-ship-logs-%d", os.Getpid())
	testload.StartContainer(t, image, name, testload.ContainerSpec{
		Args: []string{"-stdin=false", "-log", "payment service ready on port 8080"},
	})
	var got *wire.Line
	poll(t, "the container's line in the log spool", func() bool {
		for _, l := range spooledLines(t, a) {
			if strings.Contains(l.Text, "payment service ready") {
				got = &l
				return true
			}
		}
		return false
	})
	if got.Source != "container:"+name || got.Unit != name || got.Priority != -1 || got.Time.IsZero() {
		t.Errorf("container line %+v", *got)
	}
}

// TestLinesRecordsAreBounded: lines that escape badly in JSON (binary
// bytes) are split into records of at most maxLinesRecord, in order.
func TestLinesRecordsAreBounded(t *testing.T) {
	bad := strings.Repeat("\x01\x02\x1b", 20000) // each byte becomes \u00XX
	var lines []wire.Line
	for i := range 200 {
		lines = append(lines, wire.Line{Source: "file:/x", Priority: -1, Text: fmt.Sprintf("%04d %s", i, bad)})
	}
	items, err := encodeRecords(lines, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	for _, it := range items {
		var ls wire.Lines
		s, err := decodeSpooled(it)
		if err != nil || json.Unmarshal(s.Data, &ls) != nil {
			t.Fatalf("record does not decode: %v", err)
		}
		if len(s.Data) > maxLinesRecord {
			t.Fatalf("a record of %d bytes; want at most %d", len(s.Data), maxLinesRecord)
		}
		for _, l := range ls.Lines {
			if !strings.HasPrefix(l.Text, fmt.Sprintf("%04d ", next)) {
				t.Fatalf("line %.4s where %04d was due", l.Text, next)
			}
			next++
		}
	}
	if next != 200 || len(items) < 2 {
		t.Errorf("%d lines in %d records; want all 200, split", next, len(items))
	}
}

// TestLogSpoolRecordsCompressed: the log spool keeps records compressed,
// and still reads a record an older agent wrote as plain JSON.
func TestLogSpoolRecordsCompressed(t *testing.T) {
	var lines []wire.Line
	for i := range 1000 {
		lines = append(lines, wire.Line{Source: "file:/var/log/app.log", Unit: "app.log", Priority: -1,
			Text: fmt.Sprintf("Dec  2 03:00:%02d web1 app[4242]: request %08d from 192.0.2.%d served in 12 ms status=200", i%60, i, i%250)})
	}
	plain, err := encodeLines(lines, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	items, err := encodeRecords(lines, time.Now())
	if err != nil || len(items) != 1 {
		t.Fatalf("%d records, %v", len(items), err)
	}
	if len(items[0])*4 > len(plain) {
		t.Errorf("compressed %d bytes of %d; want at most a quarter", len(items[0]), len(plain))
	}
	t.Logf("1,000 lines: %d bytes of JSON, %d in the spool", len(plain), len(items[0]))
	for _, b := range [][]byte{items[0], plain} {
		s, err := decodeSpooled(b)
		var ls wire.Lines
		if err != nil || s.Kind != wire.KindLines || json.Unmarshal(s.Data, &ls) != nil || len(ls.Lines) != 1000 {
			t.Errorf("decoded %d lines, %v", len(ls.Lines), err)
		}
	}
}

// TestWriteEnvelopeIsEncodingJSON: the envelope written without
// re-scanning its records' data decodes as encoding/json's does.
func TestWriteEnvelopeIsEncodingJSON(t *testing.T) {
	env := wire.Envelope{Agent: "a \"quoted\" host", Spool: "s1", BootID: "b", Version: "v", Sent: time.Now().UTC(), Interval: time.Second,
		Dropped: 3, Lost: 2, LostReason: "its spool's disk is full"}
	for i := range 3 {
		env.Records = append(env.Records, wire.Record{Seq: uint64(i + 7), Kind: wire.KindLines, Time: time.Now().UTC(),
			Data: json.RawMessage(fmt.Sprintf(`{"lines":[{"t":"2026-12-02T03:00:00Z","s":"kmsg","p":3,"m":"line %d \u00e9 \"q\""}]}`, i))})
	}
	for _, e := range []wire.Envelope{env, {Agent: "empty", Spool: "s", Records: []wire.Record{}}} {
		var got bytes.Buffer
		if err := writeEnvelope(&got, &e); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(e)
		var a, b any
		if err := json.Unmarshal(got.Bytes(), &a); err != nil {
			t.Fatalf("%s: %v", got.Bytes(), err)
		}
		_ = json.Unmarshal(want, &b)
		ab, _ := json.Marshal(a)
		bb, _ := json.Marshal(b)
		if !bytes.Equal(ab, bb) {
			t.Errorf("written:\n%s\nencoding/json:\n%s", ab, bb)
		}
	}
}
