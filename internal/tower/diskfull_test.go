package tower

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a small tmpfs for the tower's database, so that the
// test can fill the disk under it for real.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mounting a %s tmpfs: %v", size, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	return mnt
}

// fillDisk writes a file until the file system under dir has no space
// left, and returns a function that frees it again.
func fillDisk(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1 << 16, 512, 1} {
		buf := make([]byte, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// counter is a webhook endpoint that counts what it accepts.
type counter struct {
	srv *httptest.Server
	n   atomic.Int64
}

func newCounter(t *testing.T) *counter {
	c := &counter{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		c.n.Add(1)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// TestDiskFullDoesNotResend: the receiver accepts a message but the disk
// is full, so its delivery cannot be written. The channel must not send it
// again however often it is asked, must try writing it again only on the
// retry schedule, and writes it once space returns.
func TestDiskFullDoesNotResend(t *testing.T) {
	r := newCounter(t)
	dir := mountTmpfs(t, "8m")
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	tw := openTower(t, c, `
data_dir: `+dir+`
grace: 30s
agents:
  - name: pve1
    token: `+tokenA+`
alerts:
  never_reported: false
channels:
  - name: ops
    type: webhook
    url: `+r.srv.URL+`
`)
	ctx := context.Background()
	if rec, _ := post(t, tw.Handler(), tokenA, batch("pve1", "s1", 1)); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	c.Set(t0.Add(31 * time.Second))
	if err := tw.Evaluate(ctx, c.Now()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, tw, "SELECT count(*) FROM outbox WHERE state = 'due'"); n != 1 {
		t.Fatalf("%d due messages, want 1", n)
	}
	free := fillDisk(t, dir)

	// The dispatcher asks again at once after a send; a hundred asks at
	// the same instant, then some a little later, send it only once.
	for range 100 {
		if _, err := tw.sendNext(ctx, "ops"); err != nil {
			break
		}
	}
	for range 100 {
		_, _ = tw.sendNext(ctx, "ops")
	}
	if got := int(r.n.Load()); got != 1 {
		t.Fatalf("receiver got %d copies, want 1", got)
	}
	var failures int
	tw.unrecMu.Lock()
	if u := tw.unrec["ops"]; u != nil {
		failures = u.failures
	}
	tw.unrecMu.Unlock()
	if failures != 1 {
		t.Errorf("the delivery was written %d times at the same instant, want once before its retry is due", failures)
	}
	// Its retries follow the schedule and still send nothing.
	for _, d := range []time.Duration{2 * time.Second, 5 * time.Second, time.Minute} {
		c.Set(c.Now().Add(d))
		if sent, err := tw.sendNext(ctx, "ops"); sent || err == nil {
			t.Errorf("+%s with the disk full: sent %v, err %v; want held with an error", d, sent, err)
		}
	}
	if got := int(r.n.Load()); got != 1 {
		t.Fatalf("receiver got %d copies, want 1", got)
	}

	free()
	c.Set(c.Now().Add(time.Minute))
	drain(t, tw, "ops")
	if got := int(r.n.Load()); got != 1 {
		t.Fatalf("receiver got %d copies after space returned, want 1", got)
	}
	if n := count(t, tw, "SELECT count(*) FROM outbox WHERE state = 'delivered' AND attempts = 1"); n != 1 {
		t.Errorf("%d messages recorded delivered after one attempt, want 1", n)
	}
}
