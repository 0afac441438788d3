package testload

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// HungMount is a FUSE mount whose server stops answering: once Hang is
// called, every stat or statfs of the mount blocks in the kernel the way a
// dead NFS server does, until Release (or the end of the test).
type HungMount struct {
	Dir string
	// Source is the mount's source field in /proc/mounts.
	Source string

	hung    atomic.Bool
	release chan struct{}
	// arrived gets one value per request that hangs.
	arrived chan struct{}
	once    sync.Once
	conn    string // the FUSE connection number, for fusectl
}

type hangRoot struct {
	fs.Inode
	m *HungMount
}

var (
	_ fs.NodeGetattrer = (*hangRoot)(nil)
	_ fs.NodeStatfser  = (*hangRoot)(nil)
)

func (r *hangRoot) wait(context.Context) syscall.Errno {
	if !r.m.hung.Load() {
		return 0
	}
	select {
	case r.m.arrived <- struct{}{}:
	default:
	}
	// Like a hard NFS mount, the wait ignores the kernel's interrupt
	// (ctx is cancelled when the caller gets any signal, Go's own
	// preemption signals included): only Release ends it.
	<-r.m.release
	return 0
}

func (r *hangRoot) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o755
	return r.wait(ctx)
}

func (r *hangRoot) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return r.wait(ctx)
}

// MountHung mounts the file system on a new directory (root only: it calls
// mount(2) directly, no fusermount needed). Attribute caching is off, so
// every stat reaches the server.
func MountHung(t testing.TB, source string) *HungMount {
	t.Helper()
	return MountHungOn(t, "", source)
}

// MountHungOn is MountHung on dir (made when missing; a new temporary
// directory when empty).
func MountHungOn(t testing.TB, dir, source string) *HungMount {
	t.Helper()
	RequireRoot(t, "mounting FUSE needs root")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("testload: /dev/fuse: %v", err)
	}
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &HungMount{Dir: dir, Source: source, release: make(chan struct{}), arrived: make(chan struct{}, 1024)}
	zero := time.Duration(0)
	srv, err := fs.Mount(dir, &hangRoot{m: m}, &fs.Options{
		AttrTimeout: &zero, EntryTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{DirectMount: true, DirectMountStrict: true, FsName: source, Name: "hinomi-hang"},
	})
	if err != nil {
		t.Fatalf("testload: mounting a FUSE file system on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		m.Release()
		// Lazy: a process may still be inside the mount.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("testload: unmounting %s: %v", dir, err)
		}
		// The server ends once the kernel drops the connection; a mount
		// still referenced elsewhere (another process stuck in it, a
		// lazy unmount) can keep it: then cut the connection.
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
			return
		case <-time.After(5 * time.Second):
		}
		if err := m.abortConn(); err != nil {
			t.Errorf("testload: %v", err)
			return
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("testload: the FUSE server of %s did not stop after its connection was aborted", dir)
		}
	})
	m.conn = connOf(dir)
	return m
}

// connOf is the FUSE connection number of the mount on dir (its device's
// minor number), "" when not found.
func connOf(dir string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// mountinfo writes a space in a path as \040.
		if len(f) > 4 && f[4] == strings.ReplaceAll(dir, " ", `\040`) {
			_, minor, _ := strings.Cut(f[2], ":")
			return minor
		}
	}
	return ""
}

// abortConn cuts the mount's FUSE connection through fusectl.
func (m *HungMount) abortConn() error { return abortFUSE(m.conn, m.Dir) }

// abortFUSE cuts a FUSE connection (its number conn, the mount on dir)
// through fusectl, mounted for the call on a private directory (fusectl
// has one instance; mounting it again elsewhere disturbs no one).
func abortFUSE(conn, dir string) error {
	if conn == "" {
		return fmt.Errorf("no FUSE connection known for %s", dir)
	}
	ctl, err := os.MkdirTemp("", "hinomi-fusectl-")
	if err != nil {
		return err
	}
	defer os.Remove(ctl)
	if err := syscall.Mount("fusectl", ctl, "fusectl", 0, ""); err != nil {
		return fmt.Errorf("mounting fusectl: %w", err)
	}
	defer func() { _ = syscall.Unmount(ctl, syscall.MNT_DETACH) }()
	if err := os.WriteFile(ctl+"/"+conn+"/abort", []byte("1"), 0o200); err != nil {
		return fmt.Errorf("aborting the FUSE connection of %s: %w", dir, err)
	}
	return nil
}

// Hang makes the server stop answering.
func (m *HungMount) Hang() { m.hung.Store(true) }

// Release answers every pending request and stops hanging.
func (m *HungMount) Release() {
	m.once.Do(func() {
		m.hung.Store(false)
		close(m.release)
	})
}

// WaitRequests waits until n requests hang in the server (the callers are
// then blocked in the kernel), or fails the test after timeout.
func (m *HungMount) WaitRequests(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-m.arrived:
		case <-deadline.C:
			t.Fatalf("testload: %d of %d requests reached the hung file system within %s", i, n, timeout)
		}
	}
}

// Abort cuts the mount's FUSE connection through the fusectl file system,
// as when the server process dies: the mount stays in the table and every
// call on it fails at once with ENOTCONN (Proxmox's storage "with a
// question mark"). fusectl is mounted for the call when it is not already.
func (m *HungMount) Abort(t testing.TB) {
	t.Helper()
	if err := m.abortConn(); err != nil {
		t.Fatalf("testload: %v", err)
	}
}
