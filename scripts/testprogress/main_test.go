package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRealGoTestStream runs the real `go test -json` over a sample module
// (a passing package with a skipped test, a failing one, one without
// tests) and reads its stream.
func TestRealGoTestStream(t *testing.T) {
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = "testdata/sample"
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	stream, _ := cmd.Output() // exits 1: a package fails
	if len(stream) == 0 {
		t.Fatal("go test -json printed nothing")
	}
	var out bytes.Buffer
	if run(bytes.NewReader(stream), &out, 0, time.Now) {
		t.Error("run reported success for a stream with a failed test")
	}
	got := out.String()
	for _, want := range []string{
		"ok    sample/good",
		"(1 passed, 1 skipped)",
		"FAIL  sample/bad",
		"?     sample/none",
		"--- FAIL: TestFails/sub (sample/bad",
		"context before the failure", // the whole output of a failed test
		"got 1; want 2",
		"sample/good TestNeedsSomething: ", // skipped, with its reason
		"needs a thing this machine lacks",
		"packages: 1 ok, 1 failed, 1 without tests",
		"FAILED: sample/bad",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quiet when it passes") {
		t.Errorf("a passing test's log is shown:\n%s", got)
	}
}

// TestProgressListsRunningTests: while a package runs, the periodic line
// names it and its running test.
func TestProgressListsRunningTests(t *testing.T) {
	start := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	clock := start
	var out bytes.Buffer
	s := &summary{w: &out, now: func() time.Time { return clock }, start: start, pkgs: map[string]*pkgState{}, building: map[string][]string{}}
	s.handle(event{Action: "start", Package: "example/slow"})
	s.handle(event{Action: "run", Package: "example/slow", Test: "TestSlow"})
	clock = clock.Add(90 * time.Second)
	s.progress()
	if want := "..    1m30s in: still running example/slow [TestSlow 1m30s]"; !strings.Contains(out.String(), want) {
		t.Errorf("got %q; want %q", out.String(), want)
	}
}
