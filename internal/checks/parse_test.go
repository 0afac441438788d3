package checks

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// sampleLines reads a testdata sample, dropping its "# source" and "##"
// commentary lines (the samples are real captures; see testdata/kernel).
func sampleLines(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "kernel", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "#") {
			out = append(out, sc.Text())
		}
	}
	return out
}

func TestOOMVictimsFromRealLog(t *testing.T) {
	var got []string
	for _, l := range sampleLines(t, "kernel-7.txt") {
		if m := reKilled.FindStringSubmatch(l); m != nil {
			got = append(got, m[1]+" "+m[2])
		}
	}
	want := []string{"15784 python3", "15925 (resolved)", "1312 java", "26942 java", "928883 lgraph_server"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("victims %q, want %q", got, want)
	}
}

func TestParseShortISO(t *testing.T) {
	in := "-- Boot 1a2b --\n2026-11-20T03:01:02+0000 pve1 kernel: BUG: scheduling while atomic: dockerd/579097/0x00000000\n" +
		"2026-11-20T03:01:03+09:00 pve1 kernel: rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n  continuation\n"
	ls := ParseShortISO([]byte(in), "test")
	if len(ls) != 3 {
		t.Fatalf("got %d lines, want 3: %+v", len(ls), ls)
	}
	if ls[0].Time == nil || !ls[0].Time.Equal(time.Date(2026, 11, 20, 3, 1, 2, 0, time.UTC)) {
		t.Errorf("first time %v", ls[0].Time)
	}
	if ls[0].Text != "kernel: BUG: scheduling while atomic: dockerd/579097/0x00000000" {
		t.Errorf("first text %q", ls[0].Text)
	}
	if ls[1].Time == nil || ls[1].Time.Hour() != 18 {
		t.Errorf("offset not applied: %v", ls[1].Time)
	}
	if ls[2].Time != nil || ls[2].Text != "  continuation" {
		t.Errorf("undated line %+v", ls[2])
	}
}

func TestParseKmsg(t *testing.T) {
	boot := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	r, err := ParseKmsg([]byte("6,1234,5000000,-;nfs: server 198.18.0.2 not responding, still trying\n SUBSYSTEM=nfs\n"), boot)
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "nfs: server 198.18.0.2 not responding, still trying" || !r.Time.Equal(boot.Add(5*time.Second)) {
		t.Errorf("got %+v", r)
	}
	for _, bad := range []string{"", "no separator", "6,1;x", "6,1,notanumber,-;x"} {
		if _, err := ParseKmsg([]byte(bad), boot); err == nil {
			t.Errorf("ParseKmsg(%q) accepted bad input", bad)
		}
	}
}

func TestParseFileNr(t *testing.T) {
	a, u, m, err := ParseFileNr([]byte("4128\t0\t9223372036854775807\n"))
	if err != nil || a != 4128 || u != 0 || m != 9223372036854775807 {
		t.Errorf("got %d %d %d %v", a, u, m, err)
	}
	for _, bad := range []string{"", "1 2", "1 2 x", "1 2 3 4"} {
		if _, _, _, err := ParseFileNr([]byte(bad)); err == nil {
			t.Errorf("ParseFileNr(%q) accepted bad input", bad)
		}
	}
}

func TestParseFailedUnits(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "systemd", "list-units-failed.txt"))
	if err != nil {
		t.Fatal(err)
	}
	us := ParseFailedUnits(b)
	if len(us) != 1 || us[0].Name != "apache2.service" || us[0].Active != "failed" || us[0].Description != "The Apache Webserver" {
		t.Errorf("got %+v", us)
	}
}

func TestMountServer(t *testing.T) {
	for _, tt := range []struct{ fstype, source, want string }{
		{"nfs4", "198.18.0.2:/export/k8s", "198.18.0.2"},
		{"nfs", "[fd00::2]:/srv", "fd00::2"},
		{"cifs", "//nas.lan/backup", "nas.lan"},
		{"fuse.sshfs", "root@pve2:/var/lib/vz", "pve2"},
		{"fuse.hinomi-hang", "hang", "user-space server hang"},
	} {
		if got := MountServer(tt.fstype, tt.source); got != tt.want {
			t.Errorf("MountServer(%q, %q) = %q, want %q", tt.fstype, tt.source, got, tt.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	if got := suggest(180000, 192536, 524288); got != 524288 {
		t.Errorf("suggest = %d, want 524288", got)
	}
	if got := suggest(900000, 1000000, 524288); got != 2097152 {
		t.Errorf("suggest = %d, want 2097152", got)
	}
}

// fuzz budget: 20000x (scripts/test runs each target for a count of executions)
func FuzzParseKmsg(f *testing.F) {
	f.Add([]byte("6,1234,5000000,-;nfs: server x not responding\n K=v\n"))
	f.Add([]byte("0,0,0,c;"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseKmsg(b, time.Unix(0, 0))
		if err == nil && strings.Contains(r.Text, "\n") {
			t.Errorf("text spans lines: %q", r.Text)
		}
	})
}

func FuzzParseShortISO(f *testing.F) {
	f.Add([]byte("2026-11-20T03:01:02+0000 pve1 kernel: BUG: x\n-- Boot x --\nplain\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, l := range ParseShortISO(b, "fuzz") {
			if strings.Contains(l.Text, "\n") {
				t.Errorf("line spans lines: %q", l.Text)
			}
		}
	})
}

func FuzzParseFileNr(f *testing.F) {
	f.Add([]byte("4128\t0\t9223372036854775807\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _, _, _ = ParseFileNr(b) })
}

func FuzzParseVmstat(f *testing.F) {
	f.Add([]byte("nr_free_pages 12345\noom_kill 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for k := range ParseVmstat(b) {
			if strings.ContainsAny(k, " \n") {
				t.Errorf("key %q", k)
			}
		}
	})
}

// fuzz budget: 50000x (scripts/test runs each target for a count of executions)
func FuzzParsePasswd(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\n#c\nbad\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _ = ParsePasswd(b) })
}

func FuzzParseFailedUnits(f *testing.F) {
	f.Add([]byte("● a.service loaded failed failed A\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, u := range ParseFailedUnits(b) {
			if u.Name == "" || !utf8.ValidString(u.Name) && utf8.ValidString(string(b)) {
				t.Errorf("unit %+v", u)
			}
		}
	})
}

func FuzzParseProperties(f *testing.F) {
	f.Add([]byte("Result=exit-code\nInactiveEnterTimestamp=Wed 2026-11-25 10:00:00 UTC\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _ = ParseProperties(b) })
}

func FuzzMountServer(f *testing.F) {
	f.Add("nfs4", "198.18.0.2:/export")
	f.Add("cifs", "//h/s")
	f.Add("nfs", "[::1")
	f.Fuzz(func(t *testing.T, fstype, source string) { _ = MountServer(fstype, source) })
}
