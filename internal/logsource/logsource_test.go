package logsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
)

func TestKmsgFollowsAndResumes(t *testing.T) {
	testload.RequireRoot(t, "writing to /dev/kmsg needs root")
	marker := fmt.Sprintf("hinomi-logsource-test %d", time.Now().UnixNano())
	if err := os.WriteFile("/dev/kmsg", []byte(marker+" one\n"), 0); err != nil {
		t.Fatalf("writing to /dev/kmsg: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var first Line
	err := Kmsg(ctx, "", 0, func(l Line) error {
		if strings.Contains(string(l.Text), marker+" one") {
			first = l
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Kmsg returned %v, want context.Canceled", err)
	}
	if first.Seq == 0 || !strings.Contains(string(first.Text), ";"+marker+" one") {
		t.Fatalf("record %+v", first)
	}

	// Resume after it: the first record seen is a later one.
	if err := os.WriteFile("/dev/kmsg", []byte(marker+" two\n"), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	var seen []Line
	_ = Kmsg(ctx, "", first.Seq+1, func(l Line) error {
		seen = append(seen, l)
		if strings.Contains(string(l.Text), marker+" two") {
			cancel()
		}
		return nil
	})
	if len(seen) == 0 || seen[0].Seq <= first.Seq {
		t.Fatalf("resumed at %+v, want after seq %d", seen, first.Seq)
	}
}

// tailer runs Tail in the background with a tick channel the test drives.
type tailer struct {
	lines chan Line
	ticks chan time.Time
	done  chan error
}

func startTail(t *testing.T, path string) *tailer {
	tl := &tailer{lines: make(chan Line, 100), ticks: make(chan time.Time), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		tl.done <- Tail(ctx, path, 0, 0, tl.ticks, func(l Line) error { tl.lines <- l; return nil })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-tl.done; !errors.Is(err, context.Canceled) {
			t.Errorf("Tail returned %v", err)
		}
	})
	return tl
}

// expect ticks the tailer (so it looks again) and checks the next lines.
func (tl *tailer) expect(t *testing.T, want ...string) {
	t.Helper()
	tl.ticks <- time.Now()
	for _, w := range want {
		select {
		case l := <-tl.lines:
			if string(l.Text) != w {
				t.Fatalf("got line %q, want %q", l.Text, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no line %q within 5s", w)
		}
	}
	// One more tick: the tailer has finished the previous round when the
	// send completes, and nothing else may have come out.
	tl.ticks <- time.Now()
	select {
	case l := <-tl.lines:
		t.Fatalf("unexpected line %q", l.Text)
	default:
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTailAcrossRotationAndTruncation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendTo(t, path, "a\nb\n")
	tl := startTail(t, path)
	tl.expect(t, "a", "b")

	appendTo(t, path, "c\r\n")
	tl.expect(t, "c")

	// A line written in two parts comes out once, whole.
	appendTo(t, path, "par")
	tl.expect(t)
	appendTo(t, path, "tial\n")
	tl.expect(t, "partial")

	// logrotate: the last line goes to the old file after it was renamed,
	// then a new file takes the name.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", "d\n")
	appendTo(t, path, "e\n")
	tl.expect(t, "d", "e")

	// copytruncate: the file shrinks under the reader.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	tl.expect(t)
	appendTo(t, path, "f\n")
	tl.expect(t, "f")
}

func TestTailWaitsForTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.log")
	tl := startTail(t, path)
	tl.expect(t)
	appendTo(t, path, "first\n")
	tl.expect(t, "first")
}

func TestJournalReadsCursors(t *testing.T) {
	fixture, err := filepath.Abs("../logline/testdata/formats/journal-json.txt")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	tool := filepath.Join(dir, "journalctl")
	// A stand-in for journalctl that replays a real capture of its JSON
	// output and records how it was called.
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" > %s\ngrep -v '^#' %s\n", args, fixture)
	if err := os.WriteFile(tool, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var got []Line
	err = Journal(t.Context(), tool, "s=abc;i=1", func(l Line) error { got = append(got, l); return nil })
	if err == nil || !strings.Contains(err.Error(), "journalctl ended") {
		t.Errorf("Journal returned %v, want the end of journalctl reported", err)
	}
	if len(got) == 0 {
		t.Fatal("no journal lines")
	}
	for _, l := range got {
		if !strings.HasPrefix(l.Cursor, "s=") {
			t.Errorf("line without cursor: %.80s", l.Text)
		}
	}
	b, _ := os.ReadFile(args)
	if !strings.Contains(string(b), "--after-cursor=s=abc;i=1") || !strings.Contains(string(b), "-o json") {
		t.Errorf("journalctl called with %q", b)
	}
}
