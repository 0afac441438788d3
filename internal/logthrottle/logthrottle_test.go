package logthrottle

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestHandler: one error line per kind a minute, the next one saying
// how many were left out; other kinds, other channels and warnings pass.
func TestHandler(t *testing.T) {
	var out bytes.Buffer
	h := NewHandler(slog.NewTextHandler(&out, nil), time.Minute)
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	emit := func(at time.Duration, level slog.Level, msg string, attrs ...slog.Attr) {
		r := slog.NewRecord(t0.Add(at), level, msg, 0)
		r.AddAttrs(attrs...)
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		emit(time.Duration(i)*5*time.Second, slog.LevelError, "storing a batch", slog.String("agent", "pve1"))
		emit(time.Duration(i)*5*time.Second, slog.LevelWarn, "notification will be retried")
	}
	emit(time.Second, slog.LevelError, "outbox", slog.String("channel", "ops"))
	emit(time.Second, slog.LevelError, "outbox", slog.String("channel", "mail"))
	emit(2*time.Second, slog.LevelError, "outbox", slog.String("channel", "ops"))
	emit(61*time.Second, slog.LevelError, "storing a batch", slog.String("agent", "pve2"))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	count := func(sub string) int {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, sub) {
				n++
			}
		}
		return n
	}
	if n := count(`msg="storing a batch"`); n != 2 {
		t.Errorf("%d lines of the failing batches, want 2 (one a minute):\n%s", n, out.String())
	}
	if n := count("suppressed=9"); n != 1 {
		t.Errorf("the second minute's line does not count the 9 left out:\n%s", out.String())
	}
	if n := count("notification will be retried"); n != 10 {
		t.Errorf("%d warnings, want all 10", n)
	}
	if n := count("msg=outbox"); n != 2 {
		t.Errorf("%d outbox lines, want one per channel", n)
	}
}

// TestLimiter: Reset ends a kind, returning what it held back, and the
// next line of it passes at once.
func TestLimiter(t *testing.T) {
	l := New(time.Minute)
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	if ok, _ := l.Allow("disk full", t0); !ok {
		t.Fatal("the first line was held back")
	}
	for i := range 3 {
		if ok, _ := l.Allow("disk full", t0.Add(time.Duration(i+1)*time.Second)); ok {
			t.Fatalf("line %d within the minute passed", i+2)
		}
	}
	if n := l.Reset("disk full"); n != 3 {
		t.Errorf("Reset returned %d held back, want 3", n)
	}
	if ok, n := l.Allow("disk full", t0.Add(5*time.Second)); !ok || n != 0 {
		t.Errorf("after Reset: ok %v held %d, want the line through with nothing held", ok, n)
	}
	if ok, n := l.Allow("disk full", t0.Add(66*time.Second)); !ok || n != 0 {
		t.Errorf("a minute later: ok %v held %d", ok, n)
	}
}
