package notify

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// at is a time on the day of the examples (2025-03-15), UTC.
func at(hms string) time.Time {
	return day("2025-03-15", hms)
}

func day(date, hms string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", date+" "+hms)
	if err != nil {
		panic(err)
	}
	return t
}

// pve1 is modelled on a real outage: pve1's kernel panicked at 03:00 and
// the tower noticed its silence.
func pve1(state State, started, now, ended time.Time) Message {
	title, summary := "Host pve1 is silent", "pve1 has sent no heartbeat to the tower; its last log lines are below."
	if state == Resolved {
		// As the tower titles a silent host's recovery.
		title, summary = "Host pve1 is back", "pve1 is sending heartbeats again; its last log lines before the silence are below."
	}
	return Message{
		Key:      "heartbeat/pve1",
		Host:     "pve1",
		Title:    title,
		State:    state,
		Severity: "high",
		Started:  started,
		Now:      now,
		Ended:    ended,
		Summary:  summary,
		Details: []string{
			"kernel: BUG: scheduling while atomic: dockerd/579097/0x00000000",
			"kernel: rcu: INFO: rcu_preempt detected stalls on CPUs/tasks",
			"kernel: Fixing recursive fault but reboot is needed!",
		},
		Runbook: "FM-A1",
		URL:     "https://tower.example.net/console/incidents/7",
	}
}

func TestSubjects(t *testing.T) {
	var zero time.Time
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"firing just noticed",
			pve1(Firing, at("03:00:12"), at("03:01:42"), zero),
			"[FIRING] Host pve1 is silent — since 03:00:12 UTC (1m 30s ago)"},
		{"firing noticed late is already long",
			pve1(Firing, at("03:00:12"), at("08:12:52"), zero),
			"[FIRING] LONG OUTAGE: Host pve1 is silent — since 03:00:12 UTC (5h 12m ago)"},
		{"firing since the previous day carries the date",
			pve1(Firing, day("2025-03-14", "22:47:03"), at("01:02:03"), zero),
			"[FIRING] LONG OUTAGE: Host pve1 is silent — since 2025-03-14 22:47:03 UTC (2h 15m ago)"},
		{"repeat, short so far",
			pve1(Repeat, at("03:00:12"), at("03:15:12"), zero),
			"[STILL FIRING] Host pve1 is silent — for 15m, since 03:00:12 UTC"},
		{"repeat of a long outage",
			pve1(Repeat, at("03:00:12"), at("08:12:52"), zero),
			"[STILL FIRING] LONG OUTAGE: Host pve1 is silent — for 5h 12m, since 03:00:12 UTC"},
		{"repeat over days",
			pve1(Repeat, day("2025-03-13", "05:00:00"), at("08:12:52"), zero),
			"[STILL FIRING] LONG OUTAGE: Host pve1 is silent — for 2d 3h, since 2025-03-13 05:00:00 UTC"},
		{"resolved blip",
			pve1(Resolved, at("03:00:12"), at("03:00:55"), at("03:00:54")),
			"[RESOLVED] (brief) Host pve1 is back — was down 42s (03:00:12 → 03:00:54 UTC)"},
		{"resolved, neither brief nor long",
			pve1(Resolved, at("03:00:12"), at("03:12:20"), at("03:12:17")),
			"[RESOLVED] Host pve1 is back — was down 12m 5s (03:00:12 → 03:12:17 UTC)"},
		{"resolved long outage",
			pve1(Resolved, at("03:00:12"), at("08:12:52"), at("08:12:40")),
			"[RESOLVED] LONG OUTAGE: Host pve1 is back — was down 5h 12m (03:00:12 → 08:12:40 UTC)"},
		{"resolved across midnight dates both ends",
			pve1(Resolved, day("2025-03-14", "23:59:40"), at("00:00:30"), at("00:00:20")),
			"[RESOLVED] (brief) Host pve1 is back — was down 40s (2025-03-14 23:59:40 → 2025-03-15 00:00:20 UTC)"},
		{"resolved without an end time ends now",
			pve1(Resolved, at("03:00:12"), at("03:00:54"), zero),
			"[RESOLVED] (brief) Host pve1 is back — was down 42s (03:00:12 → 03:00:54 UTC)"},
		{"firing with unknown start",
			pve1(Firing, zero, at("03:00:54"), zero),
			"[FIRING] Host pve1 is silent — start time unknown"},
		{"resolved with unknown start",
			pve1(Resolved, zero, at("03:00:54"), at("03:00:50")),
			"[RESOLVED] Host pve1 is back — downtime unknown (ended 03:00:50 UTC)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := Text(tt.m)
			if got != tt.want {
				t.Errorf("subject\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestBlipAndOutageDiffer is FM-A2 itself: the 40-second blip and the
// five-hour outage must not read alike, neither the subject nor the body.
func TestBlipAndOutageDiffer(t *testing.T) {
	bs, bb := Text(pve1(Resolved, at("03:00:12"), at("03:00:55"), at("03:00:54")))
	ls, lb := Text(pve1(Resolved, at("03:00:12"), at("08:12:52"), at("08:12:40")))
	for _, c := range []struct {
		text, want, not string
	}{
		{bs, "(brief)", "LONG OUTAGE"},
		{bb, "This was a brief blip", "LONG OUTAGE"},
		{ls, "LONG OUTAGE", "(brief)"},
		{lb, "This was a LONG OUTAGE", "brief"},
		{bb, "Downtime: 42s", "5h"},
		{lb, "Downtime: 5h 12m", "42s"},
	} {
		if !strings.Contains(c.text, c.want) || strings.Contains(c.text, c.not) {
			t.Errorf("want %q and not %q in:\n%s", c.want, c.not, c.text)
		}
	}
}

func TestHuman(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{999 * time.Millisecond, "0s"},
		{42*time.Second + 900*time.Millisecond, "42s"},
		{time.Minute, "1m"},
		{12*time.Minute + 5*time.Second, "12m 5s"},
		{time.Hour, "1h"},
		{5*time.Hour + 12*time.Minute + 40*time.Second, "5h 12m"},
		{24 * time.Hour, "1d"},
		{51 * time.Hour, "2d 3h"},
		{400 * 24 * time.Hour, "400d"},
	} {
		if got := human(c.d); got != c.want {
			t.Errorf("human(%v) = %q; want %q", c.d, got, c.want)
		}
	}
}

func TestBodyBoundsDetails(t *testing.T) {
	m := pve1(Firing, at("03:00:12"), at("03:01:42"), time.Time{})
	m.Details = nil
	for i := range 30 {
		m.Details = append(m.Details, fmt.Sprintf("line %d %s", i, strings.Repeat("x", 500)))
	}
	m.Details = append(m.Details, "two\nlines", "", "   ")
	_, body := Text(m)
	if n := strings.Count(body, "\n  line "); n != maxDetails {
		t.Errorf("evidence lines shown = %d; want %d", n, maxDetails)
	}
	if !strings.Contains(body, "… and 12 more lines") {
		t.Errorf("body does not count the lines left out:\n%s", body)
	}
	for l := range strings.SplitSeq(body, "\n") {
		if n := utf8.RuneCountInString(l); n > maxDetailLine+2 && strings.HasPrefix(l, "  ") {
			t.Errorf("evidence line of %d runes not clipped: %q", n, l)
		}
	}
}

func TestTitleGetsHost(t *testing.T) {
	m := Message{Key: "FM-B2/uid 0@pve2", Host: "pve2", Title: "inotify watches of uid 0 at 97%",
		State: Firing, Severity: "high", Started: at("03:00:00"), Now: at("03:10:00")}
	got, _ := Text(m)
	want := "[FIRING] inotify watches of uid 0 at 97% on pve2 — since 03:00:00 UTC (10m ago)"
	if got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	m.Title, m.Host = "", ""
	got, _ = Text(m)
	if want := "[FIRING] FM-B2/uid 0@pve2 — since 03:00:00 UTC (10m ago)"; got != want {
		t.Errorf("no title: got %q; want %q", got, want)
	}
}

func TestSubjectIsOneLine(t *testing.T) {
	m := pve1(Firing, at("03:00:12"), at("03:01:42"), time.Time{})
	m.Title = "evil\r\nBcc: victim@example.com\x00\x1b[31m"
	got, _ := Text(m)
	if strings.ContainsAny(got, "\r\n\x00\x1b") {
		t.Errorf("subject has control characters: %q", got)
	}
}

// TestGolden renders whole messages; docs/notifications.md quotes the
// blip and the long outage from here.
func TestGolden(t *testing.T) {
	var zero time.Time
	long := pve1(Resolved, at("03:00:12"), at("08:12:52"), at("08:12:40"))
	long.Labels = map[string]string{"site": "home-lab", "rack": "closet"}
	many := pve1(Firing, day("2025-03-14", "22:47:03"), at("01:02:03"), zero)
	many.Details = nil
	for i := range 25 {
		many.Details = append(many.Details, fmt.Sprintf("Mar 14 22:47:%02d pve1 kernel: nfs: server nas1 not responding, still trying", i))
	}
	flapped := pve1(Resolved, at("03:00:12"), at("03:42:40"), at("03:12:35"))
	flapped.Title, flapped.Summary = "Host pve1 is stable again", "It has been stable for 30m0s after flapping."
	flapped.Details = []string{"5 blips of 25s–1m10s in the last 7 days."}
	flapped.Flap = &Flap{Spells: 5, First: at("03:00:12"), Last: at("03:11:25"), Down: 3*time.Minute + 40*time.Second, StableSince: at("03:12:35")}
	cases := map[string]Message{
		"resolved-flapping": flapped,
		"firing":            pve1(Firing, at("03:00:12"), at("03:01:42"), zero),
		"repeat-long":       pve1(Repeat, at("03:00:12"), at("08:12:52"), zero),
		"resolved-blip":     pve1(Resolved, at("03:00:12"), at("03:00:55"), at("03:00:54")),
		"resolved-long":     long,
		"firing-prev-day":   many,
		"unknown-start":     {Title: "Disk / full", State: Firing, Now: at("03:00:00")},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			s, b := Text(m)
			golden(t, filepath.Join("testdata", "text", name+".txt"), s+"\n\n"+b+"\n")
		})
	}
}

// golden compares got with the file, or rewrites it under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// fuzz budget: 20000x (scripts/test runs each target for a count of executions)
func FuzzText(f *testing.F) {
	f.Add("Host pve1 is silent", "pve1", "heartbeat/pve1", "high", "summary", "a\nb", "FM-A1", "https://x", int64(-3600), int64(60), uint8(1))
	f.Add("", "", "", "", "", "", "", "", int64(0), int64(0), uint8(0))
	f.Add("\xff\xfe\r\n", "\x00", "```", "@everyone", "<b>", "\u2028", "]", "\t", int64(1<<40), int64(-1<<40), uint8(3))
	f.Fuzz(func(t *testing.T, title, host, key, sev, summary, details, runbook, link string, startOff, endOff int64, state uint8) {
		now := at("08:12:52")
		m := Message{
			Key: key, Host: host, Title: title, State: State(state % 4), Severity: sev,
			Started: now.Add(time.Duration(startOff) * time.Second), Now: now,
			Ended:   now.Add(time.Duration(endOff) * time.Second),
			Summary: summary, Details: strings.Split(details, "|"), Runbook: runbook, URL: link,
			Labels: map[string]string{title: summary},
		}
		if startOff == 0 {
			m.Started = time.Time{}
		}
		s, b := Text(m)
		if !utf8.ValidString(s) || !utf8.ValidString(b) {
			t.Fatalf("invalid UTF-8")
		}
		if strings.ContainsAny(s, "\r\n") {
			t.Fatalf("subject spans lines: %q", s)
		}
		if n := utf8.RuneCountInString(s); n > 512 {
			t.Fatalf("subject has %d runes", n)
		}
		if n := utf8.RuneCountInString(b); n > 12000 {
			t.Fatalf("body has %d runes", n)
		}
		// Every channel must build its payload from anything Text accepts.
		if d := discordMessage(m); utf16Count(d.Content) > discordContentMax || utf16Count(d.Embeds[0].Description) > discordDescMax {
			t.Fatalf("discord limits exceeded")
		}
		if tg := telegramMessage("1", 0, m); utf16Count(tg.Text) > 6*telegramMax {
			t.Fatalf("telegram text too long")
		}
		if _, body := ntfyRequest(m); len(body) > ntfyMax {
			t.Fatalf("ntfy body of %d bytes", len(body))
		}
	})
}

// TestConditionResolutionSaysLasted: a finding that cleared lasted; it
// was not "down".
func TestConditionResolutionSaysLasted(t *testing.T) {
	m := Message{Key: "finding/pve2/FM-C6//mnt/a", Host: "pve2", Title: "pve2: /mnt/a hangs", State: Resolved, Severity: "high",
		Started: at("03:00:31"), Ended: at("03:00:39"), Now: at("03:00:39"), Condition: true}
	subject, body := Text(m)
	if want := "[RESOLVED] (brief) pve2: /mnt/a hangs — lasted 8s (03:00:31 → 03:00:39 UTC)"; subject != want {
		t.Errorf("subject %q; want %q", subject, want)
	}
	if !strings.Contains(body, "RESOLVED after 8s, from 2025-03-15 03:00:31 UTC to 2025-03-15 03:00:39 UTC.") || !strings.Contains(body, "Lasted:   8s\n") || strings.Contains(body, "down") {
		t.Errorf("body reads as an outage:\n%s", body)
	}
}
