package testload

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FailingDisk is a loop device whose backing file is served by a FUSE
// file system that can start failing reads, the way a disk with bad
// sectors (or a network block store that lost its server) does: every
// read of the loop device then ends in a real kernel "I/O error, dev
// loopN" and whatever the file system on it makes of that.
type FailingDisk struct {
	// Dev is the loop device, /dev/loopN; Name is loopN.
	Dev, Name string
	// Mount is the FUSE mount holding the backing file Image.
	Mount, Image string

	file *failFile
	conn string
}

type failRoot struct {
	fs.Inode
	file *failFile
}

func (r *failRoot) OnAdd(ctx context.Context) {
	ch := r.NewPersistentInode(ctx, r.file, fs.StableAttr{Mode: syscall.S_IFREG})
	r.AddChild("disk.img", ch, false)
}

type failFile struct {
	fs.Inode
	mu      sync.Mutex
	data    []byte
	failing atomic.Bool
	// failedReads counts the reads answered with EIO.
	failedReads atomic.Int64
}

var (
	_ fs.NodeGetattrer = (*failFile)(nil)
	_ fs.NodeOpener    = (*failFile)(nil)
	_ fs.NodeReader    = (*failFile)(nil)
	_ fs.NodeWriter    = (*failFile)(nil)
	_ fs.NodeSetattrer = (*failFile)(nil)
	_ fs.NodeFsyncer   = (*failFile)(nil)
	_ fs.NodeOnAdder   = (*failRoot)(nil)
)

func (f *failFile) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	out.Mode = syscall.S_IFREG | 0o600
	out.Size = uint64(len(f.data))
	return 0
}

// Open asks for direct I/O, so that no read is served from the page
// cache: each one reaches the server and can fail.
func (f *failFile) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *failFile) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if f.failing.Load() {
		f.failedReads.Add(1)
		return nil, syscall.EIO
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= int64(len(f.data)) {
		return fuse.ReadResultData(nil), 0
	}
	n := copy(dest, f.data[off:])
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *failFile) Write(_ context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < 0 || off+int64(len(data)) > int64(len(f.data)) {
		return 0, syscall.ENOSPC // the disk does not grow
	}
	return uint32(copy(f.data[off:], data)), 0
}

func (f *failFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return f.Getattr(ctx, fh, out)
}

func (f *failFile) Fsync(context.Context, fs.FileHandle, uint32) syscall.Errno { return 0 }

// NewFailingDisk serves a zeroed backing file of size bytes on a FUSE
// mount and attaches a loop device to it (root only). Everything is
// undone at the end of the test: the loop device detached, the mount
// unmounted lazily and, should its server hang on, its connection
// aborted through fusectl.
func NewFailingDisk(t testing.TB, size int64) *FailingDisk {
	t.Helper()
	RequireRoot(t, "FUSE mounts and loop devices need root")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("testload: /dev/fuse: %v", err)
	}
	dir := t.TempDir()
	file := &failFile{data: make([]byte, size)}
	srv, err := fs.Mount(dir, &failRoot{file: file}, &fs.Options{
		MountOptions: fuse.MountOptions{DirectMount: true, DirectMountStrict: true, FsName: "hinomi-faildisk", Name: "hinomi-fail"},
	})
	if err != nil {
		t.Fatalf("testload: mounting the failing disk's FUSE file system: %v", err)
	}
	d := &FailingDisk{Mount: dir, Image: filepath.Join(dir, "disk.img"), file: file, conn: connOf(dir)}
	t.Cleanup(func() {
		file.failing.Store(false)
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("testload: unmounting %s: %v", dir, err)
		}
		select {
		case <-done:
			return
		case <-time.After(5 * time.Second):
		}
		if err := abortFUSE(d.conn, dir); err != nil {
			t.Errorf("testload: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "losetup", "--find", "--show", d.Image).CombinedOutput()
	if err != nil {
		t.Fatalf("testload: losetup on %s: %v: %s", d.Image, err, out)
	}
	d.Dev = strings.TrimSpace(string(out))
	d.Name = filepath.Base(d.Dev)
	// Registered after the unmount, so it runs before it.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "losetup", "-d", d.Dev).CombinedOutput(); err != nil {
			t.Errorf("testload: losetup -d %s: %v: %s", d.Dev, err, out)
		}
	})
	return d
}

// Fail makes every read of the backing file fail with EIO from now on.
func (d *FailingDisk) Fail() { d.file.failing.Store(true) }

// FailedReads is how many reads the server answered with EIO.
func (d *FailingDisk) FailedReads() int64 { return d.file.failedReads.Load() }
