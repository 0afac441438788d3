package tower

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/testload"
)

// searchLogs asks a running tower's log search.
func searchLogs(t *testing.T, base string, v url.Values) []LogLine {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/logs?"+v.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		t.Fatalf("search %v: %s: %s", v, resp.Status, e.Error)
	}
	var out []LogLine
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * testload.ReadyTimeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, 2*testload.ReadyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func portNum(a net.Addr) string { return a.String()[strings.LastIndexByte(a.String(), ':')+1:] }

// TestSyslogReceiverRealSenders: util-linux logger sends RFC 5424 and RFC
// 3164 over UDP and TCP (octet-counted and newline-framed), a Go client
// over TLS; every message is stored once with its host, program and
// priority, a distress line becomes a finding on the sender's host, a
// 10 MB line is cut with a marker and binary garbage is kept readable.
func TestSyslogReceiverRealSenders(t *testing.T) {
	sqliteOnly(t, "one tower's own log store")
	logger, err := exec.LookPath("logger")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("util-linux's logger is not installed (apt-get install bsdutils)")
		}
		t.Skip("util-linux's logger is not installed (apt-get install bsdutils)")
	}
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issue(t, 7, certFile, keyFile)
	cfg, err := ParseConfig([]byte("listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "data")+"\napi_token: "+apiToken+`
syslog:
  udp: [127.0.0.1:0]
  tcp: [127.0.0.1:0]
  tls: [127.0.0.1:0]
  cert_file: `+certFile+`
  key_file: `+keyFile+`
  allow: [127.0.0.0/8]
`), "tower.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tw, err := newTestTower(t, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := tw.ListenSyslog()
	if err != nil || len(addrs) != 3 {
		t.Fatalf("syslog listeners %v, %v; want 3", addrs, err)
	}
	base := "http://" + runListening(t, tw).String()
	udp, tcp, tlsAddr := portNum(addrs[0]), portNum(addrs[1]), addrs[2].String()
	host, _ := os.Hostname()

	send := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(logger, append([]string{"-n", "127.0.0.1"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("logger %v: %v\n%s", args, err, out)
		}
	}
	send("-P", udp, "-d", "--rfc5424", "-t", "hinomi-udp", "-p", "daemon.err", "udp5424 quokka")
	send("-P", udp, "-d", "--rfc3164", "-t", "hinomi-udp", "-p", "user.warning", "udp3164 quokka")
	send("-P", tcp, "-T", "--rfc5424", "--octet-count", "-t", "hinomi-tcp", "-p", "local0.info", "tcp5424 quokka")
	send("-P", tcp, "-T", "--rfc3164", "-t", "hinomi-tcp", "-p", "local0.notice", "tcp3164 quokka")
	// A distress line, as a NAS's kernel would send it.
	send("-P", tcp, "-T", "--rfc3164", "-t", "kernel", "-p", "kern.warning",
		"nfs: server td-mf-cl2.princeton.edu not responding, still trying")

	// TLS (RFC 5425: octet-counted), a 10 MB line, then garbage.
	conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	msg := "<165>1 2026-12-02T03:00:00.000Z nas01 smbd 811 - - tls5424 quokka"
	fmt.Fprintf(conn, "%d %s", len(msg), msg)
	big := "<13>Dec  2 03:00:01 nas01 backup: huge " + strings.Repeat("z", 10<<20)
	fmt.Fprintf(conn, "%s\n", big)
	fmt.Fprintf(conn, "\xff\xfe\x00\x01binary quokka\xc3\x28 garbage\n")
	conn.Close()

	want := map[string]struct {
		host, unit string
		pri        int
	}{
		"udp5424": {host, "hinomi-udp", 3}, "udp3164": {host, "hinomi-udp", 4},
		"tcp5424": {host, "hinomi-tcp", 6}, "tcp3164": {host, "hinomi-tcp", 5},
		"tls5424": {"nas01", "smbd", 5}, "binary": {"127.0.0.1", "", -1},
	}
	var got []LogLine
	waitFor(t, "every message stored", func() bool {
		got = searchLogs(t, base, url.Values{"q": {"quokka"}})
		return len(got) >= len(want)
	})
	if len(got) != len(want) {
		t.Errorf("%d lines; want %d: %+v", len(got), len(want), got)
	}
	for _, l := range got {
		key, _, _ := strings.Cut(strings.TrimLeft(l.Line, "\x01\uFFFD "), " ")
		w, ok := want[key]
		if !ok {
			t.Errorf("unexpected line %+v", l)
			continue
		}
		if l.Host != w.host || l.Unit != w.unit || l.Priority != w.pri || l.Source != "syslog" || l.Fields["sender"] != "127.0.0.1" {
			t.Errorf("%s: host %q unit %q priority %d source %q fields %v; want %q %q %d syslog from 127.0.0.1",
				key, l.Host, l.Unit, l.Priority, l.Source, l.Fields, w.host, w.unit, w.pri)
		}
		if strings.ContainsRune(l.Line, 0) || !strings.Contains(l.Line, "quokka") {
			t.Errorf("%s: line %q", key, l.Line)
		}
	}
	huge := searchLogs(t, base, url.Values{"q": {"huge"}, "host": {"nas01"}})
	if len(huge) != 1 || len(huge[0].Line) > logstore.MaxLine || !strings.HasSuffix(huge[0].Line, "[cut]") || huge[0].Fields["cut_bytes"] == "" {
		t.Errorf("the 10 MB line: %d lines, first %d bytes; want one cut to %d bytes with a marker", len(huge), len(huge[0].Line), logstore.MaxLine)
	}

	// The distress line: a finding on the sender's host, its line kept.
	waitFor(t, "a finding on "+host, func() bool {
		tw.mu.Lock()
		defer tw.mu.Unlock()
		for _, f := range tw.findings[host] {
			if f.Finding.Mode == "FM-C6" && strings.Contains(f.Finding.Subject, "nfs-not-responding") {
				return true
			}
		}
		return false
	})
	nfs := searchLogs(t, base, url.Values{"q": {`"not responding"`}})
	if len(nfs) != 1 || nfs[0].Unit != "kernel" || nfs[0].Priority != 4 {
		t.Errorf("the distress line: %+v", nfs)
	}
}

// TestSyslogFloodIsCounted: a sender past its rate limit has what it sent
// beyond it dropped and counted in a stored line: the stored lines and
// the counts add up to what it sent.
func TestSyslogFloodIsCounted(t *testing.T) {
	sqliteOnly(t, "one tower's own log store")
	cfg, err := ParseConfig([]byte("listen: 127.0.0.1:0\ndata_dir: "+t.TempDir()+"\napi_token: "+apiToken+`
logs: {rate_limit: 100, burst: 200}
syslog: {tcp: [127.0.0.1:0]}
`), "tower.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tw, err := newTestTower(t, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := tw.ListenSyslog()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + runListening(t, tw).String()
	conn, err := net.Dial("tcp", addrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	const sent = 5000
	w := bufio.NewWriter(conn)
	for i := range sent {
		fmt.Fprintf(w, "<14>Dec  2 03:00:00 flooder app: flood line %d\n", i)
	}
	w.Flush()
	conn.Close()
	var stored, dropped int
	waitFor(t, "every line stored or counted", func() bool {
		stored, dropped = 0, 0
		for _, l := range searchLogs(t, base, url.Values{"q": {"flood"}, "host": {"flooder"}, "limit": {"100000"}}) {
			if strings.HasPrefix(l.Line, "flood line") {
				stored++
			}
		}
		for _, l := range searchLogs(t, base, url.Values{"q": {"dropped"}, "limit": {"100000"}}) {
			n, _ := strconv.Atoi(l.Fields["dropped"])
			dropped += n
		}
		return stored+dropped == sent
	})
	t.Logf("%d lines stored, %d dropped and counted, of %d sent", stored, dropped, sent)
	if stored < 200 || stored > 1000 || dropped == 0 {
		t.Errorf("%d stored, %d dropped of %d; want about the burst of 200 stored and the rest counted", stored, dropped, sent)
	}
}

// TestSyslogAllowList: a sender outside syslog.allow is ignored and
// counted; a reload that allows it lets its messages in.
func TestSyslogAllowList(t *testing.T) {
	sqliteOnly(t, "it reloads a configuration file that names no store")
	dir := t.TempDir()
	path := filepath.Join(dir, "tower.yaml")
	write := func(allow string) {
		writeFile(t, path, []byte("listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "data")+"\napi_token: "+apiToken+
			"\nsyslog: {tcp: [127.0.0.1:0], allow: ["+allow+"]}\n"))
	}
	write("10.0.0.0/8")
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := newTestTower(t, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := tw.ListenSyslog()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + runListening(t, tw).String()
	send := func(text string) {
		conn, err := net.Dial("tcp", addrs[0].String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "<14>Dec  2 03:00:00 gate app: %s\n", text)
		conn.Close()
	}
	send("refused bilby")
	waitFor(t, "the refusal counted", func() bool {
		return strings.Contains(metricsText(t, tw.Handler()), `hinomi_tower_syslog_dropped_total{reason="not_allowed"} 1`)
	})
	write("127.0.0.0/8")
	if err := tw.Reload(path); err != nil {
		t.Fatal(err)
	}
	send("allowed bilby")
	waitFor(t, "the allowed message stored", func() bool { return len(searchLogs(t, base, url.Values{"q": {"bilby"}})) > 0 })
	if got := searchLogs(t, base, url.Values{"q": {"bilby"}}); len(got) != 1 || !strings.Contains(got[0].Line, "allowed") {
		t.Errorf("stored %+v; want only the message sent once allowed", got)
	}
}
