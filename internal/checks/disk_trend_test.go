package checks

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/testload"
)

// writeMiB appends n MiB to path.
func writeMiB(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for range n {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
}

// A real filesystem that fills by 4 MiB a cycle, one cycle a minute (the
// clock is injected; the writes and statfs are real): from its fourth
// cycle the disk check predicts when it is full from the rate over its
// cycles, though it is far from 80 %, and names the directory that grows
// rather than the bigger one that does not.
func TestDiskTrendPredictsTimeToFull(t *testing.T) {
	mnt := testload.MountTmpfs(t, "64m")
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	grow, still := filepath.Join(mnt, "dockerdisk-grow"), filepath.Join(mnt, "dockerdisk-still")
	for _, d := range []string{grow, still} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeMiB(t, filepath.Join(still, "data"), 12)
	trend := NewDiskTrend()
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	var f finding.Finding
	for i := range 6 {
		writeMiB(t, filepath.Join(grow, "data"), 4)
		env := &Env{Src: host.Live(), Host: "test", Now: t0.Add(time.Duration(i) * time.Minute), Log: slog.New(slog.DiscardHandler),
			HogDirs: []string{mnt}, DiskTrend: trend}
		res, err := checkDisk(t.Context(), env)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, g := range res.Findings {
			if g.Subject == "space "+mnt {
				f, found = g, true
			}
		}
		// The fourth cycle predicts and sizes the directories; the
		// fifth names the one that grew.
		if i < trendMinSamples && found {
			t.Fatalf("cycle %d: a finding before %d samples and a grower: %s", i, trendMinSamples, f.Summary)
		}
		if i >= trendMinSamples && !found {
			t.Fatalf("cycle %d: no finding for %s filling at 4 MiB a minute", i, mnt)
		}
	}
	// 36 MiB used of 64 after six cycles: 28 MiB left at 4 MiB a minute.
	if f.Mode != "FM-C2" || f.Severity != finding.High {
		t.Errorf("mode %s severity %s; want FM-C2 high (full within the hour)", f.Mode, f.Severity)
	}
	if f.Since == nil || !f.Since.Equal(t0) {
		t.Errorf("since %v; want the first cycle, %s", f.Since, t0)
	}
	v := f.Evidence.Vars
	d, err := time.ParseDuration(strings.ReplaceAll(v["time_to_full"], " ", ""))
	if err != nil || d < 5*time.Minute || d > 9*time.Minute {
		t.Errorf("time_to_full %q; want about 7m", v["time_to_full"])
	}
	if v["grower"] != "directory "+grow || !strings.HasPrefix(v["fill_rate"], "240") && !strings.HasPrefix(v["fill_rate"], "23") {
		t.Errorf("vars %v; want grower directory %s and a fill rate of 240 MiB/h", v, grow)
	}
	for _, want := range []string{"full in", "fastest grower is directory " + grow, "+240.0 MiB/h"} {
		if !strings.Contains(f.Summary, want) {
			t.Errorf("summary lacks %q: %s", want, f.Summary)
		}
	}
	t.Log(f.Summary)
}

// The memory stays bounded whatever the host does: filesystems, samples
// and consumers are capped, and a shrinking filesystem predicts nothing.
func TestDiskTrendBounded(t *testing.T) {
	d := NewDiskTrend()
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * time.Second)
		d.observe(fmt.Sprintf("/mnt/%d", i%200), now, float64(i), 1e9)
		var cs []finding.Consumer
		for j := range 300 {
			cs = append(cs, finding.Consumer{Kind: "directory", Name: fmt.Sprintf("/mnt/d%d", j), Value: float64(i * j), Unit: "bytes"})
		}
		d.grow("/", now, cs)
	}
	if len(d.fs) > trendMounts {
		t.Errorf("%d filesystems kept; want at most %d", len(d.fs), trendMounts)
	}
	for m, x := range d.fs {
		if len(x.samples) > trendSamples || len(x.consumers) > trendConsumers {
			t.Errorf("%s: %d samples, %d consumers kept", m, len(x.samples), len(x.consumers))
		}
	}
	for i := range 10 {
		if p := d.observe("/shrinking", t0.Add(time.Duration(2000+i)*time.Second), float64(100-i), 1e6); p.severity() != 0 {
			t.Fatalf("a shrinking filesystem is predicted full: %+v", p)
		}
	}
}

// Sizing the directories of a full filesystem skips a mount below them
// whose server hangs (a dead NFS server), instead of waiting on it.
func TestBiggestChildrenSkipsHungMount(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeMiB(t, filepath.Join(dir, "a", "data"), 1)
	m := testload.MountHungOn(t, filepath.Join(dir, "nfs"), "dockerdisk:/export")
	m.Hang()
	var sizes []dirSize
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sizes, err = biggestChildren(dir, false)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("sizing hangs on the hung mount") // the cleanup releases it
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 2 || sizes[0].Name != "a" || sizes[0].Value < 1<<20 || sizes[1].Name != "nfs" || sizes[1].Value != 0 {
		t.Errorf("sizes %+v; want a with 1 MiB, then nfs unsized", sizes)
	}
}
