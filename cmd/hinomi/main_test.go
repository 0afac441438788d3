package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hinomi/hinomi/internal/doctor"
	"github.com/hinomi/hinomi/internal/testload"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunbookListsEveryFailureMode(t *testing.T) {
	spec, err := os.ReadFile("../../../shared/failure-modes.md")
	if err != nil {
		// The specification lives beside the repository in the workspace;
		// a clone elsewhere checks against the embedded files only.
		spec = nil
	}
	code, out, errs := runCLI(t, "runbook")
	if code != 0 {
		t.Fatalf("hinomi runbook: exit %d, %s", code, errs)
	}
	files, _ := filepath.Glob("../../internal/runbook/runbooks/FM-*.md")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(files) {
		t.Errorf("listed %d runbooks, want %d (one per file)", len(lines), len(files))
	}
	for _, f := range files {
		id := strings.TrimSuffix(filepath.Base(f), ".md")
		if !strings.Contains(out, id+" ") {
			t.Errorf("runbook list lacks %s", id)
		}
	}
	for _, line := range strings.Split(string(spec), "\n") {
		if !strings.HasPrefix(line, "**FM-") {
			continue
		}
		id := strings.TrimPrefix(strings.Fields(line)[0], "**")
		if !strings.Contains(out, id+" ") {
			t.Errorf("failure mode %s has no runbook", id)
		}
	}
}

func TestRunbookFilledAndOverridden(t *testing.T) {
	code, out, errs := runCLI(t, "runbook", "FM-B2", "-set", "max_user_watches_new=1048576")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "fs.inotify.max_user_watches=1048576") {
		t.Errorf("FM-B2 runbook does not carry the filled sysctl:\n%s", out)
	}

	dir := t.TempDir()
	custom := "---\nid: FM-B2\ntitle: Our inotify procedure\nseverity: medium\n---\n## What it means\nours\n## Confirm\nx\n## Recover\n```sh\npage-oncall {{v \"uid\" \"<uid>\"}}\n```\n"
	extra := "---\nid: FM-X1\ntitle: Local failure mode\nseverity: low\n---\n## What it means\nlocal\n## Confirm\nx\n## Recover\nx\n"
	if err := os.WriteFile(filepath.Join(dir, "FM-B2.md"), []byte(custom), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "FM-X1.md"), []byte(extra), 0o644); err != nil {
		t.Fatal(err)
	}
	_, out, _ = runCLI(t, "runbook", "-runbooks", dir)
	if !strings.Contains(out, "Our inotify procedure") || !strings.Contains(out, "FM-X1") {
		t.Errorf("override directory not used:\n%s", out)
	}
	_, out, _ = runCLI(t, "runbook", "-runbooks", dir, "-set", "uid=0", "FM-B2")
	if !strings.Contains(out, "page-oncall 0") {
		t.Errorf("overridden runbook not rendered:\n%s", out)
	}

	if err := os.WriteFile(filepath.Join(dir, "FM-B3.md"), []byte("no header"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCLI(t, "runbook", "-runbooks", dir)
	if code != doctor.ExitFailed || !strings.Contains(errs, "FM-B3.md") {
		t.Errorf("broken override: exit %d, stderr %q; want exit %d naming the file", code, errs, doctor.ExitFailed)
	}
}

func TestDoctorRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"doctor", "--min-severity", "bogus"},
		{"doctor", "--from", filepath.Join(t.TempDir(), "missing")},
		{"doctor", "extra"},
		{"frobnicate"},
	} {
		code, _, errs := runCLI(t, args...)
		if code != doctor.ExitFailed || errs == "" {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with a message", args, code, errs, doctor.ExitFailed)
		}
	}
}

func TestDoctorJSONAndExitStatus(t *testing.T) {
	code, out, errs := runCLI(t, "doctor", "--json", "--sample", "0", "--min-severity", "catastrophic")
	if code != doctor.ExitOK && code != doctor.ExitFindings {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor --json is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"schema", "host", "taken", "source", "took_seconds", "processes", "min_severity", "worst", "findings", "headroom", "could_not_see", "check_errors"} {
		if _, ok := r[k]; !ok {
			t.Errorf("doctor --json lacks %q", k)
		}
	}
	if r["schema"] != doctor.JSONSchema {
		t.Errorf("schema %v", r["schema"])
	}
	findings, _ := r["findings"].([]any)
	if (len(findings) > 0) != (code == doctor.ExitFindings) {
		t.Errorf("exit %d with %d findings at or above the threshold", code, len(findings))
	}
}

// TestDoctorAsNonRoot runs the real binary as an unprivileged user: it
// must complete and say what it could not see.
func TestDoctorAsNonRoot(t *testing.T) {
	testload.RequireRoot(t, "switching to an unprivileged user needs root")
	// t.TempDir's parent is private to root; the binary must be reachable.
	dir, err := os.MkdirTemp("", "hinomi-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hinomi")
	root, err := testload.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bin, "./cmd/hinomi")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	cmd := exec.Command(bin, "doctor", "--json", "--sample", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == doctor.ExitFindings) {
		t.Fatalf("doctor as uid 65534: %v\n%s", err, stderr.String())
	}
	var r struct {
		Processes int      `json:"processes"`
		Blind     []string `json:"could_not_see"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if r.Processes == 0 {
		t.Error("non-root doctor saw no processes")
	}
	joined := strings.Join(r.Blind, "\n")
	if !strings.Contains(joined, "processes of other users") {
		t.Errorf("could_not_see does not mention other users' processes: %q", r.Blind)
	}
}
