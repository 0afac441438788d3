package tower

import (
	"crypto/rand"
	"encoding/binary"
	"html"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestConsoleLogPagesOnVictoriaLogs: the console's search, load more and
// cross-host timeline work unchanged when the tower keeps its lines in
// VictoriaLogs (HINOMI_TEST_VICTORIALOGS names a server; scripts/test
// starts one).
func TestConsoleLogPagesOnVictoriaLogs(t *testing.T) {
	vl := os.Getenv("HINOMI_TEST_VICTORIALOGS")
	if vl == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("HINOMI_TEST_VICTORIALOGS is not set; scripts/test starts VictoriaLogs and sets it")
		}
		t.Skip("HINOMI_TEST_VICTORIALOGS is not set (scripts/test starts a server and sets it)")
	}
	w := newWebTowerWith(t, "logs:\n  store: victorialogs:"+vl+"\n")
	f := newLogFeeder(t, w)
	// An hour of its own on the shared server: a random hour of 2016 to
	// 2020 (the store's own tests take 2021 to 2025).
	var b [8]byte
	_, _ = rand.Read(b[:])
	t0 := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(binary.LittleEndian.Uint64(b[:])%(4*365*24)) * time.Hour)
	w.c.Set(t0)
	at := t0.Add(30 * time.Minute)
	f.ship("pve1",
		shipped{at: at.Add(-40 * time.Second), unit: "corosync.service", prio: 3, text: "[TOTEM ] A processor failed, forming new configuration."},
		shipped{at: at.Add(-12 * time.Second), unit: "kernel", prio: 2, source: "kmsg", text: "nfs: server nas1 not responding, timed out"})
	f.ship("pve2", shipped{at: at.Add(-25 * time.Second), unit: "pve-cluster.service", prio: 4, text: "[status] notice: cpg_send_message retried 100 times"})
	var ticks []shipped
	for i := range 130 {
		ticks = append(ticks, shipped{at: t0.Add(time.Duration(i) * time.Second), prio: 6, text: "tick " + strconv.Itoa(i)})
	}
	f.ship("pve2", ticks...)
	resp, err := http.Get(vl + "/internal/force_flush")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	w.c.Set(t0.Add(time.Hour))
	c := w.signIn(t)
	rng := "&since=" + url.QueryEscape(t0.Format(time.RFC3339)) + "&until=" + url.QueryEscape(t0.Add(time.Hour).Format(time.RFC3339))

	// VictoriaLogs makes lines searchable within about a second.
	var got []shown
	var page string
	for deadline := time.Now().Add(15 * time.Second); ; {
		var code int
		code, page = get(t, c, w.srv.URL+"/console/logs?q=processor"+rng)
		if got = shownLines(t, page); code == 200 && len(got) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling VictoriaLogs' own flush, with a deadline
	}
	if len(got) != 1 || got[0].host != "pve1" || !strings.Contains(page, "<mark>processor</mark>") || !strings.Contains(page, `<span class="prio p3">err</span>`) {
		t.Fatalf("search on VictoriaLogs: %v\n%s", got, page)
	}

	next, all := "/console/logs?q=tick&order=oldest"+rng, 0
	for pages := 0; next != ""; pages++ {
		if pages > 2 {
			t.Fatal("more pages than 130 lines make")
		}
		_, page := get(t, c, w.srv.URL+next)
		lines := shownLines(t, page)
		if pages == 0 && (len(lines) != 100 || lines[0].text != "tick 0") || pages == 1 && (len(lines) != 30 || lines[29].text != "tick 129") {
			t.Errorf("page %d: %d lines %q", pages, len(lines), texts(lines))
		}
		all += len(lines)
		next = ""
		if m := regexp.MustCompile(`<a id="more" href="([^"]+)">`).FindStringSubmatch(page); m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	if all != 130 {
		t.Errorf("load more gave %d lines; want 130", all)
	}

	_, page = get(t, c, w.srv.URL+"/console/logs?around="+url.QueryEscape(at.Format(time.RFC3339)))
	if got := shownLines(t, page); strings.Join(texts(got), "|") != "[TOTEM ] A processor failed, forming new configuration.|[status] notice: cpg_send_message retried 100 times|nfs: server nas1 not responding, timed out" ||
		got[0].host != "pve1" || got[1].host != "pve2" {
		t.Errorf("the timeline on VictoriaLogs: %v", got)
	}
}
