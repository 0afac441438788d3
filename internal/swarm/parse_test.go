package swarm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

var testNow = time.Date(2026, 12, 2, 1, 30, 0, 0, time.UTC)

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "# source: ") {
		t.Fatalf("%s: the first line must say where the capture comes from", name)
	}
	return string(b)
}

// parseFixture reads a fixture with the parser its name says.
func parseFixture(t testing.TB, name, text string) (*State, Parsed, error) {
	switch {
	case strings.HasPrefix(name, "service-ps"):
		return ParseServicePS(text, testNow)
	case strings.HasPrefix(name, "node-ls"):
		return ParseNodeLS(text)
	case strings.HasPrefix(name, "service-ls"):
		return ParseServiceLS(text)
	}
	t.Fatalf("%s: no parser for it", name)
	return nil, Parsed{}, nil
}

type want struct {
	mode    string
	sev     finding.Severity
	subject string
	vars    map[string]string // exact values
	says    []string          // in the summary
}

// Every real capture gives the findings a person reading it would
// expect, with the culprit named and the full error kept.
func TestFixtures(t *testing.T) {
	ldap := "failed to mount local volume: mount /dev/drbd8:/var/lib/docker/volumes/ldap_data/_data: invalid argument"
	cases := []struct {
		file    string
		rows    int
		skipped int
		trunc   bool
		want    []want
	}{
		{"service-ps-seed002-drbd.txt", 5, 0, false, []want{{"FM-C5", finding.High, "swarm service ldap",
			map[string]string{"device": "/dev/drbd8", "volume": "ldap_data", "service": "ldap", "reason": ldap, "restarts": "5", "replicas": "1", "running": "0"},
			[]string{ldap, "5 tasks were rejected in 20s", "runs 0 of 1 replicas", "damaged filesystem"}}}},
		{"service-ps-cwovp32-bind.txt", 2, 0, false, []want{{"FM-C4", finding.High, "swarm service CW-OVP_web",
			map[string]string{"path": "/home/docker/CW-OVP", "restarts": "2"},
			[]string{`invalid mount config for type "bind": bind source path does not exist: /home/docker/CW-OVP`, "does not exist on the node"}}}},
		{"service-ps-live-bind.txt", 5, 0, false, []want{{"FM-C4", finding.High, "swarm service swarm-probe-rej",
			map[string]string{"path": "/nonexistent/swarm-x", "restarts": "5"}, []string{"in 15s"}}}},
		{"service-ps-live-exit3.txt", 5, 0, false, []want{{"FM-C4", finding.High, "swarm service swarm-probe-exit",
			map[string]string{"exit_code": "3", "restarts": "4", "reason": "task: non-zero exit (3)"}, []string{"4 tasks failed in 8s", "exits with code 3"}}}},
		{"service-ps-live-trunc.txt", 5, 0, true, []want{{"FM-C4", finding.High, "swarm service swarm-probe-rej",
			map[string]string{"truncated": "true", "reason": "invalid mount config for type"}, []string{"docker service ps --no-trunc swarm-probe-rej"}}}},
		{"service-ps-moby25912-trunc.txt", 3, 0, true, []want{{"FM-C4", finding.High, "swarm service ecstatic_curran",
			map[string]string{"truncated": "true"}, []string{"cut short"}}}},
		{"service-ps-moby36699-nosuitable-trunc.txt", 4, 0, true, []want{{"FM-C4", finding.High, "swarm service sandbox-swarm_helloworld",
			map[string]string{"replicas": "3", "running": "2"}, []string{"no node has the CPU or memory", "runs 2 of 3 replicas"}}}},
		{"service-ps-moby25499-collapsed.txt", 5, 0, false, []want{{"FM-C4", finding.High, "swarm service web2",
			map[string]string{"reason": "no such device", "restarts": "4"}, nil}}},
		{"service-ps-swarmprom64-noheader.txt", 1, 0, false, []want{{"FM-C4", finding.High, "swarm service mon_node-exporter",
			nil, []string{"1 task was rejected", "bind mount's source does not exist"}}}},
		{"node-ls-seed002-down.txt", 3, 0, false, []want{{"FM-D10", finding.High, "swarm node s-hive0",
			map[string]string{"node_id": "sn3njpuc7dnevr8c6b8zqv1c7", "status": "Down/Unreachable", "role": "manager"},
			[]string{"2 of 3 managers remain reachable", "losing one more stops the cluster"}}}},
		{"node-ls-moby24329-membership.txt", 3, 0, false, []want{{"FM-D10", finding.High, "swarm node node01", map[string]string{"node_id": "3dlwrztkpolbyzq4473jlfnmt"}, nil}}},
		{"node-ls-moby35109-noleader.txt", 5, 1, false, []want{
			{"FM-D10", finding.Catastrophic, "swarm managers", nil, []string{"no leader", "--force-new-cluster"}},
			{"FM-D10", finding.High, "swarm node dock02", map[string]string{"status": "Unknown"}, nil},
			{"FM-D10", finding.High, "swarm node dock05", map[string]string{"role": "worker"}, nil},
		}},
		{"node-ls-live.txt", 1, 0, false, nil},
		{"service-ls-docs6094.txt", 8, 0, false, []want{{"FM-C4", finding.High, "swarm service just_db",
			map[string]string{"replicas": "1", "running": "0"}, []string{"docker service ps --no-trunc just_db"}}}},
		{"service-ls-ccoci959-indented.txt", 1, 0, false, []want{{"FM-C4", finding.High, "swarm service testswarm", nil, nil}}},
		{"service-ls-live.txt", 2, 0, false, []want{{"FM-C4", finding.High, "swarm service swarm-probe-rej", nil, nil}}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			st, p, err := parseFixture(t, c.file, readFixture(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if p.Rows != c.rows || len(p.Skipped) != c.skipped || p.Truncated != c.trunc {
				t.Errorf("rows %d skipped %q truncated %v; want %d, %d, %v", p.Rows, p.Skipped, p.Truncated, c.rows, c.skipped, c.trunc)
			}
			rep := Diagnose(st, testNow)
			if c.want == nil && len(rep.Findings) > 0 {
				t.Errorf("findings %+v; want none", rep.Findings)
			}
			for _, w := range c.want {
				checkFinding(t, rep.Findings, w)
			}
		})
	}
}

func checkFinding(t *testing.T, fs []finding.Finding, w want) {
	t.Helper()
	var subjects []string
	for _, f := range fs {
		if f.Subject != w.subject {
			subjects = append(subjects, f.Subject)
			continue
		}
		if f.Mode != w.mode || f.Severity != w.sev {
			t.Errorf("%s: mode %s severity %s; want %s %s", w.subject, f.Mode, f.Severity, w.mode, w.sev)
		}
		for k, v := range w.vars {
			if f.Evidence.Vars[k] != v {
				t.Errorf("%s: var %s = %q; want %q", w.subject, k, f.Evidence.Vars[k], v)
			}
		}
		for _, s := range w.says {
			if !strings.Contains(f.Summary, s) {
				t.Errorf("%s: summary lacks %q: %s", w.subject, s, f.Summary)
			}
		}
		return
	}
	t.Errorf("no finding about %q; got %q", w.subject, subjects)
}

// What people paste: CRLF, colours, a prompt, no header, trailing
// blanks, padding collapsed to one space, lines wrapped by a terminal.
// Each reads as the original does.
func TestPasteTolerance(t *testing.T) {
	orig := readFixture(t, "service-ps-seed002-drbd.txt")
	base, _, err := ParseServicePS(orig, testNow)
	if err != nil {
		t.Fatal(err)
	}
	wrap := func(s string, w int) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			for len(l) > w {
				out = append(out, l[:w])
				l = l[w:]
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	var collapsed []string
	for _, l := range strings.Split(orig, "\n") {
		collapsed = append(collapsed, strings.Join(strings.Fields(l), " "))
	}
	var noHeader []string
	for _, l := range strings.Split(orig, "\n") {
		if !strings.HasPrefix(l, "ID ") {
			noHeader = append(noHeader, l)
		}
	}
	variants := map[string]string{
		"crlf":          strings.ReplaceAll(orig, "\n", "\r\n"),
		"ansi":          strings.ReplaceAll(orig, "Rejected", "\x1b[31mRejected\x1b[0m"),
		"prompt":        strings.Replace(orig, "docker service ps", "root@s-hive1:~# docker service ps", 1),
		"trailing":      strings.ReplaceAll(orig, "\n", "   \t\n"),
		"no header":     strings.Join(noHeader, "\n"),
		"collapsed":     strings.Join(collapsed, "\n"),
		"wrapped at 80": wrap(orig, 80),
		"wrapped at 97": wrap(orig, 97),
	}
	for name, text := range variants {
		t.Run(name, func(t *testing.T) {
			st, p, err := ParseServicePS(text, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Tasks) != len(base.Tasks) || len(p.Skipped) > 0 {
				t.Fatalf("%d tasks, skipped %q; want %d, none", len(st.Tasks), p.Skipped, len(base.Tasks))
			}
			for i, task := range st.Tasks {
				if b := base.Tasks[i]; task.Err != b.Err || task.State != b.State || task.Node != b.Node || task.Current != b.Current || !task.Time.Equal(b.Time) {
					t.Errorf("task %d = %+v; want %+v", i, task, b)
				}
			}
		})
	}
}

// A text that is not this command's output is refused, not read as an
// empty cluster.
func TestNotThisCommand(t *testing.T) {
	other := readFixture(t, "node-ls-seed002-down.txt")
	if _, _, err := ParseServicePS(other, testNow); err == nil {
		t.Error("docker node ls read as docker service ps")
	}
	if _, _, err := ParseServiceLS(other); err == nil {
		t.Error("docker node ls read as docker service ls")
	}
	if _, _, err := ParseNodeLS(readFixture(t, "service-ps-seed002-drbd.txt")); err == nil {
		t.Error("docker service ps read as docker node ls")
	}
}

func TestParseAge(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"3 seconds ago": 3 * time.Second, "less than a second ago": 0, "about a minute ago": time.Minute,
		"About an hour ago": time.Hour, "32 minutes ago": 32 * time.Minute, "2 weeks ago": 14 * 24 * time.Hour,
	} {
		if got, ok := parseAge(s); !ok || got != want {
			t.Errorf("parseAge(%q) = %s, %v; want %s", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "soon", "x seconds ago", "3 fortnights ago"} {
		if _, ok := parseAge(s); ok {
			t.Errorf("parseAge(%q) accepted", s)
		}
	}
}

func fuzzSeeds(f *testing.F, prefix string) {
	files, _ := filepath.Glob(filepath.Join("testdata", prefix+"*.txt"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
}

// fuzzParser checks that parse never panics, reads a row per item it
// returns, and gives findings with what every finding must have.
func fuzzParser(f *testing.F, prefix string, parse func(string) (*State, Parsed, error), items func(*State) int) {
	fuzzSeeds(f, prefix)
	f.Fuzz(func(t *testing.T, text string) {
		st, p, err := parse(text)
		if err != nil {
			return
		}
		if n := items(st); p.Rows != n || p.Rows == 0 {
			t.Fatalf("%d rows, %d items", p.Rows, n)
		}
		for _, task := range st.Tasks {
			if task.Service == "" || task.State == "" || task.Time.After(testNow) {
				t.Fatalf("task %+v", task)
			}
		}
		checkReport(t, Diagnose(st, testNow))
	})
}

// fuzz budget: 15000x
func FuzzParseServicePS(f *testing.F) {
	fuzzParser(f, "service-ps", func(s string) (*State, Parsed, error) { return ParseServicePS(s, testNow) },
		func(st *State) int { return len(st.Tasks) })
}

// fuzz budget: 15000x
func FuzzParseNodeLS(f *testing.F) {
	fuzzParser(f, "node-ls", ParseNodeLS, func(st *State) int { return len(st.Nodes) })
}

// fuzz budget: 15000x
func FuzzParseServiceLS(f *testing.F) {
	fuzzParser(f, "service-ls", ParseServiceLS, func(st *State) int { return len(st.Services) })
}

// checkReport holds what every finding must have.
func checkReport(t *testing.T, r Report) {
	t.Helper()
	for _, f := range r.Findings {
		if f.Mode == "" || f.Severity == 0 || f.Subject == "" || f.Summary == "" || f.Evidence.Vars["platform"] != "swarm" {
			t.Fatalf("incomplete finding %+v", f)
		}
	}
}
