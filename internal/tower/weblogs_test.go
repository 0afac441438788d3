package tower

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// shipped is a line an agent ships in a test.
type shipped struct {
	at         time.Time
	unit, text string
	prio       int
	source     string
}

// logFeeder ships lines to a web tower through its log ingest API, as
// agents do.
type logFeeder struct {
	t   *testing.T
	w   *webTower
	seq map[string]uint64
}

func newLogFeeder(t *testing.T, w *webTower) *logFeeder {
	t.Cleanup(func() { _ = w.tw.closeLogs() })
	return &logFeeder{t: t, w: w, seq: map[string]uint64{}}
}

func (f *logFeeder) ship(host string, lines ...shipped) {
	f.t.Helper()
	var ls wire.Lines
	for _, l := range lines {
		src := l.source
		if src == "" {
			src = "journal"
		}
		ls.Lines = append(ls.Lines, wire.Line{Time: l.at, Source: src, Unit: l.unit, Priority: l.prio, Text: l.text})
	}
	data, _ := json.Marshal(ls)
	f.seq[host]++
	env := wire.Envelope{Agent: host, Spool: "logs-" + host, Sent: f.w.c.Now(),
		Records: []wire.Record{{Seq: f.seq[host], Kind: wire.KindLines, Time: f.w.c.Now(), Data: data}}}
	body, _ := json.Marshal(env)
	req, _ := http.NewRequest(http.MethodPost, f.w.srv.URL+wire.LinesPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tokens[host])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	var reply wire.Reply
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if resp.StatusCode != 200 || reply.Acked != f.seq[host] {
		f.t.Fatalf("shipping %s's lines: %d %+v", host, resp.StatusCode, reply)
	}
}

// signIn returns a client signed in to the console.
func (w *webTower) signIn(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(w.srv.URL+"/console/login", url.Values{"name": {"mika"}, "password": {consolePassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/console/" {
		t.Fatalf("sign-in ended at %s", resp.Request.URL)
	}
	return c
}

// shown is a line as a log page shows it.
type shown struct {
	at         time.Time
	host, text string
}

var reShown = regexp.MustCompile(`<time datetime="([^"]+)">[^<]*</time></a> <span class="host">([^<]*)</span>.*?<span class="text">(.*?)</span></li>`)
var reTags = regexp.MustCompile(`<[^>]+>`)

// shownLines reads the lines a log page shows, in its order.
func shownLines(t *testing.T, page string) []shown {
	t.Helper()
	var out []shown
	for _, m := range reShown.FindAllStringSubmatch(page, -1) {
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, shown{at: at, host: html.UnescapeString(m[2]), text: html.UnescapeString(reTags.ReplaceAllString(m[3], ""))})
	}
	return out
}

func texts(ls []shown) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.text)
	}
	return out
}

// TestConsoleLogSearch: the console's search finds a line by word,
// marks the match, shows host, unit and priority; a bad query, a bad
// time and no match each say so clearly; the page needs a signed-in user.
func TestConsoleLogSearch(t *testing.T) {
	w := newWebTower(t)
	f := newLogFeeder(t, w)
	t0 := w.t0
	f.ship("pve1",
		shipped{at: t0.Add(-40 * time.Second), unit: "corosync.service", prio: 3, text: "[TOTEM ] A processor failed, forming new configuration."},
		shipped{at: t0.Add(-35 * time.Second), unit: "pveproxy.service", prio: 6, text: "worker 4242 finished"})
	f.ship("pve2", shipped{at: t0.Add(-30 * time.Second), prio: 4, source: "kmsg", text: "nfs: server nas1 not responding, still trying"})
	w.c.Set(t0.Add(time.Minute))

	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/console/logs", "/console/logs?q=processor", "/console/logs?around=2026-11-25T03:00:00Z"} {
		if code, body := get(t, anon, w.srv.URL+p); code != http.StatusSeeOther || strings.Contains(body, "processor") {
			t.Errorf("anonymous %s: %d; want a redirect to the sign-in", p, code)
		}
	}

	c := w.signIn(t)
	code, page := get(t, c, w.srv.URL+"/console/logs?q=processor")
	got := shownLines(t, page)
	if code != 200 || len(got) != 1 || got[0].host != "pve1" || !got[0].at.Equal(t0.Add(-40*time.Second)) ||
		!strings.Contains(page, "<mark>processor</mark>") || !strings.Contains(page, `<span class="unit">corosync.service</span>`) ||
		!strings.Contains(page, `<span class="prio p3">err</span>`) || !strings.Contains(page, "2026-11-25 02:59:20.000") {
		t.Fatalf("search for processor: %d %v\n%s", code, got, page)
	}

	// Each line's time links the timeline before it.
	if want := `<a class="at" href="/console/logs?around=2026-11-25T02%3A59%3A20Z&amp;window=1m"`; !strings.Contains(page, want) {
		t.Errorf("the line's time does not link its timeline %s\n%s", want, page)
	}

	// Every line of the last hour, newest first; oldest first; one host.
	_, page = get(t, c, w.srv.URL+"/console/logs?q=&range=1h")
	if got := texts(shownLines(t, page)); strings.Join(got, "|") != "nfs: server nas1 not responding, still trying|worker 4242 finished|[TOTEM ] A processor failed, forming new configuration." {
		t.Errorf("newest first: %q", got)
	}
	_, page = get(t, c, w.srv.URL+"/console/logs?q=&order=oldest")
	if got := shownLines(t, page); len(got) != 3 || got[0].host != "pve1" || got[2].host != "pve2" {
		t.Errorf("oldest first: %v", got)
	}
	_, page = get(t, c, w.srv.URL+"/console/logs?q=&host=pve2")
	if got := shownLines(t, page); len(got) != 1 || got[0].host != "pve2" || !strings.Contains(page, `class="prio p4">warning<`) {
		t.Errorf("host pve2: %v", got)
	}
	_, page = get(t, c, w.srv.URL+"/console/logs?q=host:pve1+host:pve2&host=pve2")
	if got := shownLines(t, page); len(got) != 1 || got[0].host != "pve2" {
		t.Errorf("the query's hosts narrowed by the picker: %v", got)
	}
	_, page = get(t, c, w.srv.URL+"/console/logs?q=host:pve1&host=pve2")
	if got := shownLines(t, page); len(got) != 0 {
		t.Errorf("host:pve1 with the picker on pve2: %v; want none", got)
	}
	_, page = get(t, c, w.srv.URL+"/console/logs?q=priority:err")
	if got := texts(shownLines(t, page)); len(got) != 1 || !strings.Contains(got[0], "processor failed") {
		t.Errorf("priority:err: %q", got)
	}
	// The last 15 minutes of a later hour hold none of them.
	w.c.Set(t0.Add(20 * time.Minute))
	_, page = get(t, c, w.srv.URL+"/console/logs?q=processor&range=15m")
	if got := shownLines(t, page); len(got) != 0 || !strings.Contains(page, "No line matches processor from 2026-11-25 03:05:00 to 2026-11-25 03:20:00 UTC") {
		t.Errorf("an empty result: %v\n%s", got, page)
	}
	_, page = get(t, c, w.srv.URL+"/console/logs?q=processor&range=custom&since=2026-11-25+02:59:00&until=2026-11-25+03:00:00")
	if got := shownLines(t, page); len(got) != 1 {
		t.Errorf("a custom range: %v", got)
	}

	for _, tc := range []struct{ query, want string }{
		{"q=%22unclosed", "query: an unclosed quote at offset 0"},
		{"q=priority:loud", "priority &#34;loud&#34;: want 0..7 or emerg"},
		{"q=-", "nothing after the -"},
		{"q=x&range=custom&since=yesterday", "from: &#34;yesterday&#34;: want a UTC time such as 2026-12-02 03:00:00"},
		{"q=x&range=custom&since=2026-11-25+03:00:00&until=2026-11-25+02:00:00", "the end must come after the start"},
		{"q=x&range=7y", "range &#34;7y&#34;: pick one of 15m, 1h, 24h or custom"},
		{"q=x&more=garbage", "more: not a cursor of this page; search again"},
	} {
		code, page := get(t, c, w.srv.URL+"/console/logs?"+tc.query)
		if code != http.StatusBadRequest || !strings.Contains(page, `<p class="error" role="alert" id="logs-error">`) || !strings.Contains(page, tc.want) {
			t.Errorf("%s: %d; want 400 saying %q\n%s", tc.query, code, tc.want, page)
		}
		if !strings.Contains(page, `<form method="get" action="/console/logs"`) {
			t.Errorf("%s: the form is not shown again to correct it", tc.query)
		}
	}
}

// TestConsoleLogSearchLoadMore: a search's pages, followed by their
// "load more" links, give every line once in time order, lines that
// share an instant included; a page never holds more than its bound.
func TestConsoleLogSearchLoadMore(t *testing.T) {
	w := newWebTower(t)
	f := newLogFeeder(t, w)
	t0 := w.t0
	const n = 257
	var batch []shipped
	for i := range n {
		// Five lines an instant, as a syslog sender with whole seconds writes.
		batch = append(batch, shipped{at: t0.Add(-10*time.Minute + time.Duration(i/5)*time.Second), prio: 6, text: "tick " + strconv.Itoa(i)})
	}
	f.ship("pve1", batch...)
	f.ship("pve2", shipped{at: t0.Add(-5 * time.Minute), prio: 6, text: "tock"})
	w.c.Set(t0)
	c := w.signIn(t)
	for _, order := range []string{"newest", "oldest"} {
		next := "/console/logs?q=tick&order=" + order
		seen := map[string]int{}
		var all []shown
		for pages := 0; next != ""; pages++ {
			if pages > n/100+1 {
				t.Fatalf("%s: more pages than %d lines make", order, n)
			}
			code, page := get(t, c, w.srv.URL+next)
			if code != 200 {
				t.Fatalf("%s: %d\n%s", next, code, page)
			}
			got := shownLines(t, page)
			if len(got) > 100 {
				t.Fatalf("a page of %d lines", len(got))
			}
			all = append(all, got...)
			next = ""
			if m := regexp.MustCompile(`<a id="more" href="([^"]+)">`).FindStringSubmatch(page); m != nil {
				next = html.UnescapeString(m[1])
			}
		}
		for _, l := range all {
			seen[l.text]++
		}
		if len(all) != n || len(seen) != n {
			t.Errorf("%s: %d lines, %d distinct; want %d", order, len(all), len(seen), n)
		}
		for i := 1; i < len(all); i++ {
			if order == "newest" && all[i].at.After(all[i-1].at) || order == "oldest" && all[i].at.Before(all[i-1].at) {
				t.Errorf("%s: %s after %s", order, all[i].at, all[i-1].at)
			}
		}
	}
}

// TestConsoleTimelineWindow: the timeline shows every host's lines in
// the window before the instant (the instant included), in time order,
// then the instant, then the half minute after it; nothing outside.
func TestConsoleTimelineWindow(t *testing.T) {
	w := newWebTower(t)
	f := newLogFeeder(t, w)
	at := w.t0
	f.ship("pve1",
		shipped{at: at.Add(-61 * time.Second), text: "early"},
		shipped{at: at.Add(-59 * time.Second), text: "alpha"},
		shipped{at: at, text: "charlie"})
	f.ship("pve2",
		shipped{at: at.Add(-30 * time.Second), text: "bravo"},
		shipped{at: at.Add(-20 * time.Second), text: "long " + strings.Repeat("y", 10000)},
		shipped{at: at.Add(10 * time.Second), text: "delta"},
		shipped{at: at.Add(31 * time.Second), text: "echo"})
	w.c.Set(at.Add(time.Hour))
	c := w.signIn(t)
	around := url.QueryEscape(at.Format(time.RFC3339))
	code, page := get(t, c, w.srv.URL+"/console/logs?around="+around)
	mark := strings.Index(page, `id="instant"`)
	got := shownLines(t, page)
	// A long line is cut in the timeline, and says so.
	short := func(ls []shown) string {
		var out []string
		for _, s := range texts(ls) {
			if strings.HasPrefix(s, "long ") {
				if s != "long "+strings.Repeat("y", 4096-5)+" …[cut: 10005 bytes; the search shows it whole]" {
					t.Errorf("the long line in the timeline: %d bytes, ends %q", len(s), s[len(s)-60:])
				}
				s = "long"
			}
			out = append(out, s)
		}
		return strings.Join(out, " ")
	}
	if code != 200 || short(got) != "alpha bravo long charlie delta" || mark < 0 ||
		strings.Index(page, ">charlie<") > mark || strings.Index(page, ">delta<") < mark {
		t.Fatalf("the minute before: %d %q (the instant at %d)\n%s", code, texts(got), mark, page)
	}
	if got[0].host != "pve1" || got[1].host != "pve2" || !strings.Contains(page, `class="logline h`) ||
		!strings.Contains(page, "<li class=\"h") {
		t.Errorf("hosts are not told apart: %v", got)
	}
	_, page = get(t, c, w.srv.URL+"/console/logs?window=5m&around="+around)
	if got := short(shownLines(t, page)); got != "early alpha bravo long charlie delta" {
		t.Errorf("five minutes before: %q", got)
	}
	_, page = get(t, c, w.srv.URL+"/console/logs?window=5m&q=host:pve2&around="+around)
	if got := short(shownLines(t, page)); got != "bravo long delta" {
		t.Errorf("pve2's: %q", got)
	}
	for _, tc := range []struct{ query, want string }{
		{"around=" + around + "&window=2h", "window &#34;2h&#34;: a duration from 1s to 1h"},
		{"around=" + around + "&window=0s", "window &#34;0s&#34;"},
		{"around=" + around + "&window=-1m", "window &#34;-1m&#34;"},
		{"around=soon", "around: &#34;soon&#34;: want a UTC time"},
		{"around=" + around + "&q=%22x", "an unclosed quote"},
	} {
		if code, page := get(t, c, w.srv.URL+"/console/logs?"+tc.query); code != http.StatusBadRequest || !strings.Contains(page, tc.want) || strings.Contains(page, "0001-01-01") {
			t.Errorf("%s: %d; want 400 saying %q\n%s", tc.query, code, tc.want, page)
		}
	}
}

// TestIncidentLogsTimelineAndPostmortem: each alert and incident in the
// console links the timeline before it began, which shows both hosts'
// lines before the incident in time order; the postmortem export holds
// them too.
func TestIncidentLogsTimelineAndPostmortem(t *testing.T) {
	w := newWebTower(t)
	f := newLogFeeder(t, w)
	t0 := w.t0
	w.report("pve1")
	w.report("pve2")
	f.ship("pve2", shipped{at: t0.Add(-20 * time.Second), unit: "pve-cluster.service", prio: 3, text: "[dcdb] crit: cpg_send_message failed: 6"})
	f.ship("pve1",
		shipped{at: t0.Add(-25 * time.Second), unit: "corosync.service", prio: 5, text: "[KNET  ] link: host: 2 link: 0 is down"},
		shipped{at: t0.Add(-10 * time.Minute), text: "long before"},
		shipped{at: t0.Add(5 * time.Second), prio: 0, text: "watchdog: BUG: soft lockup - CPU#3 stuck for 23s!"})
	w.at(31 * time.Second) // pve1 and pve2 silent
	c := w.signIn(t)
	_, console := get(t, c, w.srv.URL+"/console/")
	incs, err := w.tw.Incidents(t.Context(), 10)
	if err != nil || len(incs) == 0 {
		t.Fatalf("no incident: %v", err)
	}
	in := incs[len(incs)-1]
	link := `/console/logs?around=` + url.QueryEscape(in.ImpactStart().UTC().Format(time.RFC3339Nano)) + `&amp;window=1m`
	if !strings.Contains(console, `<a class="tl" href="`+link+`">logs before it began</a>`) || !strings.Contains(console, `">logs before</a>`) ||
		!strings.Contains(console, `<a href="/console/logs">Search logs</a>`) {
		t.Fatalf("the console does not link the timeline %s\n%s", link, console)
	}
	_, incPage := get(t, c, w.srv.URL+"/console/incidents/"+strconv.FormatInt(in.ID, 10))
	if !strings.Contains(incPage, `<a id="tl-logs" href="`+link+`">`) || !strings.Contains(incPage, "window=15m") {
		t.Errorf("the incident's page does not link the timeline\n%s", incPage)
	}
	code, page := get(t, c, w.srv.URL+html.UnescapeString(link))
	got := shownLines(t, page)
	if code != 200 || len(got) < 2 || got[0].host != "pve1" || got[1].host != "pve2" || !strings.Contains(got[0].text, "link: 0 is down") ||
		!strings.Contains(got[1].text, "cpg_send_message failed") || strings.Contains(page, "long before") {
		t.Errorf("the incident's timeline: %d %v\n%s", code, got, page)
	}

	code, md := get(t, c, w.srv.URL+"/console/incidents/"+strconv.FormatInt(in.ID, 10)+"/postmortem")
	sec := md[strings.Index(md, "## Log lines from every host"):]
	sec = sec[:strings.Index(sec, "## Root cause")]
	for _, want := range []string{
		"2026-11-25 02:59:35.000 pve1 corosync.service notice: [KNET  ] link: host: 2 link: 0 is down\n2026-11-25 02:59:40.000 pve2 pve-cluster.service err: [dcdb] crit: cpg_send_message failed: 6\n",
		"### From the start (2026-11-25 03:00:00)\n\n```text\n2026-11-25 03:00:05.000 pve1 - emerg: watchdog: BUG: soft lockup - CPU#3 stuck for 23s!\n",
		"hinomi logs search --since '2026-11-25T02:55:00Z'",
	} {
		if code != 200 || !strings.Contains(sec, want) {
			t.Errorf("the postmortem's log lines lack %q:\n%s", want, sec)
		}
	}
	if strings.Contains(sec, "long before") {
		t.Errorf("the postmortem holds a line from before its window:\n%s", sec)
	}
}

// TestPostmortemLogsBounded: a chatty incident's postmortem keeps the
// 200 lines nearest the start before it and the first 300 from it, says
// that it left lines out, cuts a long line at 1 KiB, and fences lines
// that hold backticks so that they cannot end the block.
func TestPostmortemLogsBounded(t *testing.T) {
	w := newWebTower(t)
	f := newLogFeeder(t, w)
	t0 := w.t0
	w.report("pve1")
	var before, during []shipped
	for i := range 250 {
		before = append(before, shipped{at: t0.Add(-time.Duration(250-i) * 500 * time.Millisecond), text: "before " + strconv.Itoa(i)})
	}
	before = append(before, shipped{at: t0.Add(-100 * time.Millisecond), text: "a fence ``` inside"})
	for i := range 350 {
		during = append(during, shipped{at: t0.Add(time.Duration(i) * 50 * time.Millisecond), text: "during " + strconv.Itoa(i)})
	}
	during[0].text = strings.Repeat("x", 5000)
	f.ship("pve1", before...)
	f.ship("pve2", during...)
	w.at(31 * time.Second)
	incs, err := w.tw.Incidents(t.Context(), 10)
	if err != nil || len(incs) != 1 {
		t.Fatalf("incidents: %v %v", incs, err)
	}
	md, err := w.tw.Postmortem(t.Context(), incs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	sec := md[strings.Index(md, "### Before the impact began"):strings.Index(md, "## Root cause")]
	blocks := regexp.MustCompile("(?s)(`{3,})text\n(.*?)\n(`{3,})\n").FindAllStringSubmatch(sec, -1)
	if len(blocks) != 2 {
		t.Fatalf("%d fenced blocks; want 2:\n%s", len(blocks), sec)
	}
	pre, dur := strings.Split(blocks[0][2], "\n"), strings.Split(blocks[1][2], "\n")
	if blocks[0][1] != "````" || blocks[0][3] != "````" {
		t.Errorf("a line with ``` is fenced with %q", blocks[0][1])
	}
	if len(pre) != 200 || !strings.HasSuffix(pre[199], "a fence ``` inside") || !strings.HasSuffix(pre[0], ": before 51") {
		t.Errorf("before: %d lines, first %q, last %q; want the 200 nearest the start", len(pre), pre[0], pre[len(pre)-1])
	}
	if len(dur) != 300 || !strings.HasSuffix(dur[299], ": during 299") {
		t.Errorf("during: %d lines, last %q; want the first 300", len(dur), dur[len(dur)-1])
	}
	if !strings.HasSuffix(dur[0], strings.Repeat("x", 1024)+" …[cut]") {
		t.Errorf("a long line: %d bytes, ends %q", len(dur[0]), dur[0][len(dur[0])-20:])
	}
	for _, want := range []string{"_200 lines shown; the earlier lines of the lead are left out", "_300 lines shown; the later lines are left out"} {
		if !strings.Contains(sec, want) {
			t.Errorf("the postmortem does not say %q", want)
		}
	}
}

// TestConsoleWithoutLogStore: a tower that keeps no lines links no log
// page, and the page says why.
func TestConsoleWithoutLogStore(t *testing.T) {
	w := newWebTowerWith(t, "logs: {store: off}\n")
	w.report("pve1")
	w.at(31 * time.Second)
	c := w.signIn(t)
	if _, console := get(t, c, w.srv.URL+"/console/"); strings.Contains(console, "/console/logs") || !strings.Contains(console, "Host pve1 is silent") {
		t.Errorf("the console of a tower without logs links them:\n%s", console)
	}
	if code, page := get(t, c, w.srv.URL+"/console/logs?q=x"); code != http.StatusServiceUnavailable || !strings.Contains(page, "this tower keeps no logs (logs.store: off)") {
		t.Errorf("the log page of a tower without logs: %d\n%s", code, page)
	}
	incs, err := w.tw.Incidents(t.Context(), 1)
	if err != nil || len(incs) != 1 {
		t.Fatalf("incidents: %v %v", incs, err)
	}
	if md, err := w.tw.Postmortem(t.Context(), incs[0].ID); err != nil || !strings.Contains(md, "## Log lines from every host\n\n_The log store could not be read: this tower keeps no logs (logs.store: off)._") {
		t.Errorf("the postmortem of a tower without logs: %v\n%s", err, md)
	}
}
