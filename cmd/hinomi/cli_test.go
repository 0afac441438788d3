package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/doctor"
	"github.com/hinomi/hinomi/internal/testload"
)

// commandLines is every command and subcommand, as typed before "-h".
var commandLines = [][]string{
	{"doctor"}, {"runbook"}, {"snapshot"},
	{"logs"}, {"logs", "scan"}, {"logs", "signatures"},
	{"agent"}, {"tower"}, {"status"}, {"ack"},
	{"silence"}, {"silence", "list"}, {"silence", "add"}, {"silence", "expire"},
	{"incidents"}, {"notify"}, {"notify", "test"}, {"import"}, {"import", "gatus"}, {"import", "uptime-kuma"}, {"push"}, {"explain"}, {"hash-password"}, {"version"}, {"help"},
}

// TestCommandTableIsComplete: every command the usage lists is in
// commandLines, so the tests below cover each one.
func TestCommandTableIsComplete(t *testing.T) {
	have := map[string]bool{}
	for _, c := range commandLines {
		have[strings.Join(c, " ")] = true
	}
	for _, line := range strings.Split(usage, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "hinomi" || strings.HasPrefix(f[1], "<") {
			continue
		}
		for _, sub := range strings.Split(f[1], "|") {
			if !have[sub] {
				t.Errorf("the usage lists %q; commandLines lacks it", sub)
			}
		}
		if len(f) > 2 && strings.Contains(f[2], "|") && !strings.Contains(f[2], ".") {
			for _, sub := range strings.Split(f[2], "|") {
				if !have[f[1]+" "+sub] {
					t.Errorf("the usage lists %q; commandLines lacks it", f[1]+" "+sub)
				}
			}
		}
	}
}

// secretEnv are environment variables that flags take their defaults from
// and that hold secrets (a URL may carry a password).
var secretEnv = map[string]string{
	"HINOMI_TOKEN":     "agent-secret-4f1d9a7c",
	"HINOMI_API_TOKEN": "api-secret-8e2b6c0d",
	"HINOMI_TOWER":     "http://ops:url-secret-3a5c7e@127.0.0.1:7450",
}

// TestHelpOnEveryCommand: "-h" (and --help) works on every command and
// subcommand: exit 0, the usage once on standard output, nothing on
// standard error, and never a secret from the environment.
func TestHelpOnEveryCommand(t *testing.T) {
	for k, v := range secretEnv {
		t.Setenv(k, v)
	}
	for _, c := range commandLines {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, c...), h)
			code, out, errs := runCLI(t, args...)
			name := strings.Join(args, " ")
			if code != 0 {
				t.Errorf("hinomi %s: exit %d, want 0\n%s%s", name, code, out, errs)
			}
			if n := strings.Count(out+errs, "Usage"); n != 1 || !strings.Contains(out, "Usage") {
				t.Errorf("hinomi %s: the usage is printed %d times (stdout %q, stderr %q), want once on stdout", name, n, out, errs)
			}
			if errs != "" {
				t.Errorf("hinomi %s: stderr %q, want nothing", name, errs)
			}
			for k, v := range secretEnv {
				secret := v[strings.LastIndex(v, "-")+1:]
				if strings.Contains(out+errs, secret) {
					t.Errorf("hinomi %s shows $%s's secret:\n%s", name, k, out+errs)
				}
			}
		}
	}
	// "hinomi help CMD" is "hinomi CMD -h".
	code, out, _ := runCLI(t, "help", "logs", "scan")
	if code != 0 || !strings.Contains(out, "Usage: hinomi logs scan") {
		t.Errorf("hinomi help logs scan: exit %d\n%s", code, out)
	}
}

// TestFlagErrorPrintedOnce: a wrong flag is told once, with the usage, on
// standard error, and exits 2.
func TestFlagErrorPrintedOnce(t *testing.T) {
	for _, c := range commandLines {
		args := append(append([]string{}, c...), "-no-such-flag")
		code, out, errs := runCLI(t, args...)
		name := strings.Join(args, " ")
		if code != doctor.ExitFailed {
			t.Errorf("hinomi %s: exit %d, want %d", name, code, doctor.ExitFailed)
		}
		if out != "" {
			t.Errorf("hinomi %s: stdout %q, want nothing", name, out)
		}
		if n := strings.Count(errs, "no-such-flag"); n != 1 {
			t.Errorf("hinomi %s: the error is told %d times, want once:\n%s", name, n, errs)
		}
		if n := strings.Count(errs, "Usage"); n != 1 {
			t.Errorf("hinomi %s: the usage is printed %d times, want once:\n%s", name, n, errs)
		}
	}
}

func TestHelpNamesArguments(t *testing.T) {
	_, out, _ := runCLI(t, "doctor", "-h")
	if !strings.Contains(out, "-from DIR") {
		t.Errorf("doctor -h does not show -from DIR:\n%s", out)
	}
	if regexp.MustCompile(`-\w+ hinomi`).MatchString(out) {
		t.Errorf("doctor -h names a flag's argument after a command:\n%s", out)
	}
}

func TestColorTakesOnlyItsValues(t *testing.T) {
	for _, v := range []string{"blue", "yes", ""} {
		code, _, errs := runCLI(t, "doctor", "--color="+v)
		if code != doctor.ExitFailed || !strings.Contains(errs, "want auto, always or never") {
			t.Errorf("doctor --color=%q: exit %d, stderr %q; want %d naming the values", v, code, errs, doctor.ExitFailed)
		}
	}
}

// TestNoTowerAnswers: the thin commands say that no tower answers, at which
// URL and why, instead of the dialer's error.
func TestNoTowerAnswers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	want := "no tower answers at " + url + " (connection refused): is `hinomi tower` running?"
	for _, args := range [][]string{
		{"status"}, {"status", "--json"}, {"incidents"}, {"incidents", "--json"}, {"silence", "list"},
		{"silence", "list", "--json"}, {"ack", "heartbeat/pve1"}, {"silence", "expire", "x"},
	} {
		code, out, errs := runCLI(t, append(args, "--tower", url)...)
		if code != doctor.ExitFailed || out != "" || strings.Count(errs, want) != 1 || strings.Contains(errs, "dial tcp") {
			t.Errorf("hinomi %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(args, " "), code, out, errs, doctor.ExitFailed, want)
		}
	}
	code, _, errs := runCLI(t, "status", "--tower", strings.TrimPrefix(url, "http://"))
	if code != doctor.ExitFailed || !strings.Contains(errs, "did you mean "+url) {
		t.Errorf("status --tower without a scheme: exit %d, stderr %q", code, errs)
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.3.1"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "e8fbb3bdabfc15bb1548f05dd17748da7797f979"},
		{Key: "vcs.time", Value: "2026-11-29T16:59:57Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	v := parseBuildVersion(bi)
	if got, want := v.long(), "hinomi v0.3.1 (commit e8fbb3bdabfc of 2026-11-29T16:59:57Z, with uncommitted changes), go1.26.8"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	bi.Main.Version = "(devel)"
	if got, want := parseBuildVersion(bi).short(), "devel-e8fbb3bdabfc+dirty"; got != want {
		t.Errorf("short: got %q; want %q", got, want)
	}

	// The real binary, built from a git checkout, names its commit.
	root, err := testload.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(root, ".git")); err != nil || !st.IsDir() {
		// A git worktree has a .git file: the go command records no VCS
		// information there.
		t.Skip("not a git checkout with a .git directory: the go command records no commit")
	}
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("git rev-parse HEAD: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "hinomi")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/hinomi")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "commit "+string(head[:12])) || strings.Contains(string(out), " dev\n") {
		t.Errorf("hinomi version: %q; want the commit %s", out, head[:12])
	}
}

// TestAgentRefusesBadStart: the agent refuses at start, with a clear
// message, what would make it fail at every delivery or spin.
func TestAgentRefusesBadStart(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tower", "127.0.0.1:7450"}, "did you mean http://127.0.0.1:7450"},
		{[]string{"--tower", "http://127.0.0.1:7450", "--interval", "0"}, "--interval 0s: want how often to report, at least 100ms"},
		{[]string{"--tower", "http://127.0.0.1:7450", "--interval", "-5s"}, "--interval -5s"},
		{[]string{"--tower", "http://127.0.0.1:7450", "--interval", "10ms"}, "want at least 100ms"},
	} {
		args := append([]string{"agent", "--token", "tok", "--state-dir", t.TempDir(), "--kmsg", "-", "--journal", "no"}, c.args...)
		code, _, errs := runCLI(t, args...)
		if code != doctor.ExitFailed || !strings.Contains(errs, c.want) {
			t.Errorf("hinomi %s: exit %d, stderr %q; want %d and %q", strings.Join(args, " "), code, errs, doctor.ExitFailed, c.want)
		}
	}
}
