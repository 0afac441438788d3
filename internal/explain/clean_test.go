package explain

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanPrompts(t *testing.T) {
	cases := []struct {
		line, cmd, host string
		prompt          bool
	}{
		{"$ docker ps -a", "docker ps -a", "", true},
		{"# pvecm status", "pvecm status", "", true},
		{"root@pve1:~# pvecm status", "pvecm status", "pve1", true},
		{"user@host:/srv/app$ docker inspect web", "docker inspect web", "host", true},
		{"CharlesNepote@ovh1:~$ ls -la /run/lock/lxc", "ls -la /run/lock/lxc", "ovh1", true},
		{"[root@node3 ~]# drbdadm status", "drbdadm status", "node3", true},
		{"admin@XXX : ~$ docker info", "docker info", "XXX", true},
		{`PS C:\Users\me> docker ps -a`, "docker ps -a", "", true},
		{"root@pve1:~#", "", "pve1", true},
		{"➜  docker-compose git:(master) ✗ docker compose ps -a", "docker compose ps -a", "", true},
		{"# kubectl get pods -A", "kubectl get pods -A", "", true},
		// Comments and annotations are not prompts.
		{"# source: https://github.com/moby/moby/issues/20400", "", "", false},
		{"# HELP pve_up Node/VM/CT-Status is online/running", "", "", false},
		{"# Note: use default settings for everything", "", "", false},
		{"# check the pool first", "", "", false},
		{"## second source: https://github.com/x/y", "", "", false},
		{"https://github.com/moby/moby/issues/1#issuecomment-1", "", "", false},
		{"Oct 11 06:07:26 glustern1 kernel: Call Trace:", "", "", false},
	}
	for _, c := range cases {
		cmd, host, ok := prompt(c.line)
		if ok != c.prompt || cmd != c.cmd || host != c.host {
			t.Errorf("prompt(%q) = %q, %q, %v; want %q, %q, %v", c.line, cmd, host, ok, c.cmd, c.host, c.prompt)
		}
	}
}

func TestCleanSplitsCommands(t *testing.T) {
	paste := "\x1b[1;32mroot@pve1\x1b[0m:~# docker ps -a\r\n" +
		"CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES   \r\n" +
		"\r\n" +
		"root@pve1:~# docker info\r\n" +
		"Server Version: 20.10.24\r\n" +
		"root@pve1:~# \r\n"
	ins := Clean("paste.txt", []byte(paste), explainNow)
	if len(ins) != 2 {
		t.Fatalf("%d inputs; want 2: %+v", len(ins), ins)
	}
	if ins[0].Command != "docker ps -a" || ins[0].Host != "pve1" || ins[0].Name != "paste.txt#1" {
		t.Errorf("first: %q on %q named %q; want docker ps -a on pve1, paste.txt#1", ins[0].Command, ins[0].Host, ins[0].Name)
	}
	if want := "CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES"; ins[0].Text != want {
		t.Errorf("first text %q; want %q (no CR, no trailing blanks, no blank end)", ins[0].Text, want)
	}
	if ins[1].Command != "docker info" || ins[1].Text != "Server Version: 20.10.24" {
		t.Errorf("second: %q %q", ins[1].Command, ins[1].Text)
	}
}

func TestCleanEscapesQuotesFences(t *testing.T) {
	cases := []struct{ in, want string }{
		{"\x1b[31mERROR\x1b[0m done\x1b]0;title\x07", "ERROR done"},
		{"[31mred[0m lost its ESC", "red lost its ESC"},
		{"old mac\rline ends\r", "old mac\nline ends"},
		{"no-break\u00a0space", "no-break space"},
		{"> quoted\n> block\n>\n> end", "quoted\nblock\n\nend"},
		{"```json\n{\"a\": 1}\n```", "{\"a\": 1}"},
		{"```{\"Status\":\"unhealthy\"}```", "{\"Status\":\"unhealthy\"}"},
		{"[mount] stays", "[mount] stays"},
		{"[    2.727250] FS-Cache: Duplicate cookie detected", "[    2.727250] FS-Cache: Duplicate cookie detected"},
	}
	for _, c := range cases {
		ins := Clean("x", []byte(c.in), explainNow)
		if len(ins) != 1 || ins[0].Text != c.want {
			t.Errorf("Clean(%q) = %+v; want one input %q", c.in, ins, c.want)
		}
	}
}

// PowerShell 5 writes "docker ps > out.txt" as UTF-16 with a byte-order
// mark and CRLF line ends.
func TestCleanUTF16(t *testing.T) {
	text := "PS C:\\Users\\me> docker info\r\nServer Version: 24.0.5\r\n"
	le := []byte{0xFF, 0xFE}
	for _, r := range text {
		le = append(le, byte(r), 0)
	}
	ins := Clean("out.txt", le, explainNow)
	if len(ins) != 1 || ins[0].Command != "docker info" || ins[0].Text != "Server Version: 24.0.5" {
		t.Errorf("Clean(UTF-16LE) = %+v; want the docker info part", ins)
	}
}

func TestCleanEmpty(t *testing.T) {
	for _, s := range []string{"", "\n\n", "   \r\n", "$ \n# \n", "```\n```"} {
		if ins := Clean("x", []byte(s), explainNow); len(ins) != 0 {
			t.Errorf("Clean(%q) = %+v; want nothing", s, ins)
		}
	}
}

// seeds are the real captures, for the fuzz tests.
func seeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.txt")
	more, _ := filepath.Glob("testdata/samples/*.txt")
	for _, p := range append(files, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// fuzz budget: 2000x
func FuzzClean(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range Clean("fuzz", b, explainNow) {
			if !utf8.ValidString(in.Text) {
				t.Fatalf("invalid UTF-8 kept: %q", in.Text)
			}
			if strings.ContainsAny(in.Text, "\r\x1b") {
				t.Fatalf("CR or ESC kept: %q", in.Text)
			}
			if in.Text == "" || in.Text != strings.Join(in.Lines, "\n") {
				t.Fatalf("text %q and lines %q disagree", in.Text, in.Lines)
			}
			if slices.ContainsFunc(in.Lines, func(l string) bool { return strings.TrimRight(l, " \t") != l }) {
				t.Fatalf("trailing blanks kept: %q", in.Lines)
			}
		}
	})
}

// Every format reads whatever it is given without panicking, and says
// why when it cannot.
//
// fuzz budget: 300x (each run explains with every format: a few a second)
func FuzzFormats(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range Clean("fuzz", b, explainNow) {
			for _, fm := range All() {
				fm.Detect(&in)
				res, err := fm.Explain(&in)
				if err != nil {
					continue
				}
				for _, g := range res.Findings {
					if g.Mode == "" || g.Subject == "" || g.Severity == 0 {
						t.Fatalf("%s: finding without mode, subject or severity: %+v", fm.Name, g)
					}
				}
			}
		}
	})
}

// fuzz budget: 2000x
func FuzzCloseJSON(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if out, ok := closeJSON(b); ok && !jsonValid(out) {
			t.Fatalf("closeJSON(%q) = %q, not valid JSON", b, out)
		}
	})
}

func jsonValid(b []byte) bool { return json.Valid(b) }
