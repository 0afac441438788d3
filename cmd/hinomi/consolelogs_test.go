package main

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestConsoleLogsFromRealAgents runs a tower and two agents as real
// processes, each agent following a file: the console's search finds
// both hosts' lines; one agent is killed, its host goes silent, and the
// alert's "logs before" link shows both hosts' lines before it, in time
// order, as does the incident's postmortem.
func TestConsoleLogsFromRealAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	const password = "a passphrase for the test"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf(`listen: %s
api_token: %s
data_dir: %s
grace: 2s
console:
  users: [{name: mika, password_hash: '%s'}]
agents:
  - {name: alpha, token: tok-alpha-aaaaaaaaaaaaaa}
  - {name: beta, token: tok-beta-bbbbbbbbbbbbbbbb}
`, addr, testAPIToken, filepath.Join(dir, "tower"), hash)
	path := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	tw := start(t, "tower", "--config", path)
	tw.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	tokens := map[string]string{"alpha": "tok-alpha-aaaaaaaaaaaaaa", "beta": "tok-beta-bbbbbbbbbbbbbbbb"}
	agents := map[string]*proc{}
	files := map[string]*os.File{}
	for _, name := range []string{"alpha", "beta"} {
		logFile := filepath.Join(dir, name+".log")
		f, err := os.Create(logFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files[name] = f
		agents[name] = start(t, "agent", "--tower", base, "--token", tokens[name], "--name", name,
			"--state-dir", filepath.Join(dir, "agent-"+name), "--interval", "500ms", "--kmsg", "-", "--journal", "no", "--container-logs", "no", "--log-file", logFile)
	}
	waitHosts(t, base, 2, 30*time.Second)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(base+"/console/login", url.Values{"name": {"mika"}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	get := func(p string) string {
		t.Helper()
		resp, err := c.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d\n%s", p, resp.StatusCode, b)
		}
		return string(b)
	}
	reLine := regexp.MustCompile(`<time datetime="([^"]+)">[^<]*</time></a> <span class="host">([^<]*)</span>.*?<span class="text">(.*?)</span></li>`)
	type line struct{ at, host, text string }
	lines := func(page string) []line {
		var out []line
		for _, m := range reLine.FindAllStringSubmatch(page, -1) {
			out = append(out, line{m[1], m[2], html.UnescapeString(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(m[3], ""))})
		}
		return out
	}

	fmt.Fprintln(files["alpha"], "sd 2:0:0:0: [sdb] tag#3 timing out command, waited 180s wombat")
	fmt.Fprintln(files["beta"], "nfs: server alpha not responding, still trying wombat")
	var found []line
	for deadline := time.Now().Add(60 * time.Second); len(found) < 2 && time.Now().Before(deadline); {
		found = lines(get("/console/logs?q=wombat"))
		if len(found) < 2 {
			time.Sleep(200 * time.Millisecond) // polling the agents' shipping, with a deadline
		}
	}
	if len(found) != 2 || found[0].host == found[1].host {
		t.Fatalf("the console's search for wombat: %v; want alpha's and beta's lines", found)
	}

	// beta dies: its host goes silent, an alert, and its link.
	agents["beta"].kill(t)
	var console string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if console = get("/console/"); strings.Contains(console, "Host beta is silent") {
			break
		}
	}
	// The real machine's findings make alerts of their own: beta's
	// heartbeat is the one.
	m := regexp.MustCompile(`heartbeat/beta</div></td>\s*<td>[^\n]*?<a class="tl" href="(/console/logs\?around=[^"]+)">logs before</a>`).FindStringSubmatch(console)
	if m == nil {
		t.Fatalf("no alert links the logs before it:\n%s", console)
	}
	tl := lines(get(html.UnescapeString(m[1])))
	hosts := map[string]bool{}
	for i, l := range tl {
		hosts[l.host] = true
		if i > 0 && l.at < tl[i-1].at {
			t.Errorf("the timeline is out of order: %v", tl)
		}
	}
	if !hosts["alpha"] || !hosts["beta"] {
		t.Errorf("the timeline before beta went silent: %v; want both hosts' lines", tl)
	}

	inc := regexp.MustCompile(`href="/console/incidents/(\d+)">[^<]*</a> — beta — `).FindStringSubmatch(console)
	if inc == nil {
		t.Fatalf("no incident in the console:\n%s", console)
	}
	md := get("/console/incidents/" + inc[1] + "/postmortem")
	for _, want := range []string{"## Log lines from every host", " alpha ", "timing out command, waited 180s wombat", " beta ", "nfs: server alpha not responding, still trying wombat"} {
		if !strings.Contains(md, want) {
			t.Errorf("the postmortem lacks %q:\n%s", want, md)
		}
	}
}
