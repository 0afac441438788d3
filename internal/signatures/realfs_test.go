package signatures

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/hinomi/hinomi/internal/testload"
)

// Real-failure tests: a file system on a loop device is made to fail for
// real (shut down, corrupted, its disk failing reads), and the kernel's
// own lines, read from /dev/kmsg, must be recognised with the right mode.

// kmsgTail reads /dev/kmsg from the moment it was opened.
type kmsgTail struct {
	f *os.File
}

func tailKmsg(t *testing.T) *kmsgTail {
	t.Helper()
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("opening /dev/kmsg: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		t.Fatalf("seeking to the end of /dev/kmsg: %v", err)
	}
	return &kmsgTail{f: f}
}

// until reads records (their first line, as /dev/kmsg gives them) that
// name dev, until done says the lines are enough or timeout passes.
func (k *kmsgTail) until(t *testing.T, dev string, timeout time.Duration, done func(lines []string) bool) []string {
	t.Helper()
	re := regexp.MustCompile(`\b` + regexp.QuoteMeta(dev) + `\b`)
	deadline := time.Now().Add(timeout)
	var lines []string
	buf := make([]byte, 8192)
	for {
		if err := k.f.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, err := k.f.Read(buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("the kernel's lines about %s within %s were not enough:\n%s", dev, timeout, strings.Join(lines, "\n"))
		case errors.Is(err, syscall.EPIPE):
			continue // records were overwritten before we read them
		case err != nil:
			t.Fatalf("reading /dev/kmsg: %v", err)
		}
		rec, _, _ := bytes.Cut(buf[:n], []byte("\n"))
		if _, msg, ok := bytes.Cut(rec, []byte(";")); ok && re.Match(msg) {
			lines = append(lines, string(rec))
			if done(lines) {
				return lines
			}
		}
	}
}

// sigsIn scans lines and returns the signatures found, by ID, with the
// device field of each.
func sigsIn(t *testing.T, lines []string) map[string][]Event {
	t.Helper()
	m := NewMatcher(loadBuiltin(t))
	out := map[string][]Event{}
	for _, e := range scanText(t, m, strings.Join(lines, "\n")+"\n") {
		out[e.Sig.ID] = append(out[e.Sig.ID], e)
	}
	return out
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (scripts/test installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
}

// loopImage makes a sparse image file of size bytes and attaches a loop
// device to it; both go at the end of the test.
func loopImage(t *testing.T, size int64) (dev, name string) {
	t.Helper()
	testload.RequireRoot(t, "loop devices and mounts need root")
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dev = strings.TrimSpace(run(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() { run(t, "losetup", "-d", dev) })
	return dev, filepath.Base(dev)
}

// mountAt mounts dev on a new directory, unmounted (lazily) at the end.
func mountAt(t *testing.T, dev, fstype, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount(dev, dir, fstype, 0, opts); err != nil {
		t.Fatalf("mounting %s (%s) on %s: %v", dev, fstype, dir, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// wantSig fails unless sig was found with mode and device dev.
func wantSig(t *testing.T, found map[string][]Event, sig, mode, dev string, lines []string) {
	t.Helper()
	evs := found[sig]
	if len(evs) == 0 {
		t.Errorf("%s not found in the kernel's lines:\n%s", sig, strings.Join(lines, "\n"))
		return
	}
	if evs[0].Sig.Mode != mode {
		t.Errorf("%s has mode %s, want %s", sig, evs[0].Sig.Mode, mode)
	}
	if d := evs[0].Fields["device"]; d != "" && d != dev {
		t.Errorf("%s names device %q, want %q", sig, d, dev)
	}
}

func hasLine(sub string) func([]string) bool {
	return func(lines []string) bool {
		return len(lines) > 0 && strings.Contains(lines[len(lines)-1], sub)
	}
}

func TestRealXFSShutdown(t *testing.T) {
	requireTool(t, "mkfs.xfs")
	requireTool(t, "xfs_io")
	dev, name := loopImage(t, 320<<20)
	run(t, "mkfs.xfs", "-q", dev)
	k := tailKmsg(t)
	dir := mountAt(t, dev, "xfs", "")
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hinomi"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "xfs_io", "-x", "-c", "shutdown", dir)
	lines := k.until(t, name, time.Minute, hasLine("rectify"))
	found := sigsIn(t, lines)
	wantSig(t, found, "xfs-shutdown", "FM-E5", name, lines)
	for id := range found {
		if found[id][0].Sig.Mode == "FM-C5" {
			t.Errorf("a shutdown without corruption raised %s (FM-C5)", id)
		}
	}
}

func TestRealXFSCorruption(t *testing.T) {
	requireTool(t, "mkfs.xfs")
	requireTool(t, "xfs_db")
	dev, name := loopImage(t, 320<<20)
	run(t, "mkfs.xfs", "-q", dev)
	dir := mountAt(t, dev, "xfs", "")
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	if err := syscall.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	// Overwrite the root inode's magic, keeping a valid CRC: the
	// verifier rejects the inode when the file system is mounted.
	run(t, "xfs_db", "-x", "-c", "inode "+itoa(ino), "-c", "write -d core.magic 0x1234", dev)
	k := tailKmsg(t)
	if err := syscall.Mount(dev, dir, "xfs", 0, ""); err == nil {
		t.Fatal("the corrupted file system mounted")
	}
	lines := k.until(t, name, time.Minute, hasLine("run xfs_repair."))
	found := sigsIn(t, lines)
	wantSig(t, found, "xfs-metadata-corruption", "FM-C5", name, lines)
	wantSig(t, found, "xfs-metadata-verify-error", "FM-C5", name, lines)
	wantSig(t, found, "xfs-repair-needed", "FM-C5", name, lines)
	if len(found["xfs-metadata-io-error"]) > 0 {
		t.Error("a verifier failure (error 117) was reported as a disk I/O error")
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func TestRealExt4ErrorsRemountRO(t *testing.T) {
	requireTool(t, "mkfs.ext4")
	dev, name := loopImage(t, 64<<20)
	run(t, "mkfs.ext4", "-q", "-F", dev)
	k := tailKmsg(t)
	mountAt(t, dev, "ext4", "errors=remount-ro")
	// ext4's own fault injection: the error path a real corruption takes.
	if err := os.WriteFile("/sys/fs/ext4/"+name+"/trigger_fs_error", []byte("hinomi real-failure test"), 0o200); err != nil {
		t.Fatalf("trigger_fs_error: %v", err)
	}
	lines := k.until(t, name, time.Minute, hasLine("Remounting filesystem read-only"))
	found := sigsIn(t, lines)
	wantSig(t, found, "ext4-fs-error", "FM-E5", name, lines)
	wantSig(t, found, "jbd2-journal-aborted", "FM-E5", name, lines)
	wantSig(t, found, "ext4-remount-ro", "FM-E5", name, lines)
}

func TestRealBtrfsChecksumFailure(t *testing.T) {
	requireTool(t, "mkfs.btrfs")
	dev, name := loopImage(t, 256<<20)
	run(t, "mkfs.btrfs", "-q", "-f", dev)
	dir := mountAt(t, dev, "btrfs", "")
	marker := bytes.Repeat([]byte("HINOMI-CORRUPT!!"), 4096)
	if err := os.WriteFile(filepath.Join(dir, "f"), marker, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	// Overwrite the file's data behind btrfs's back, as a disk that
	// returns other bytes than it was given.
	d, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	img, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(img, marker[:64])
	if at < 0 {
		t.Fatal("the file's data is not on the device")
	}
	if _, err := d.WriteAt([]byte("xxxxxxxxxxxxxxxx"), int64(at)); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	k := tailKmsg(t)
	if err := syscall.Mount(dev, dir, "btrfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(filepath.Join(dir, "f")); err == nil {
		t.Fatal("the corrupted file read without error")
	}
	lines := k.until(t, name, time.Minute, hasLine("corrupt 1"))
	found := sigsIn(t, lines)
	wantSig(t, found, "btrfs-csum-failed", "FM-C5", name, lines)
	wantSig(t, found, "btrfs-dev-corrupt", "FM-C5", name, lines)
}

// TestRealLoopIOError: the loop device's backing file sits on a FUSE file
// system whose reads start failing; reading the device gives the kernel's
// block-layer "I/O error, dev loopN" and, for a buffered read, "Buffer I/O
// error on dev loopN".
func TestRealLoopIOError(t *testing.T) {
	disk := testload.NewFailingDisk(t, 16<<20)
	k := tailKmsg(t)
	disk.Fail()
	f, err := os.OpenFile(disk.Dev, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := alignedBuf(4096)
	if _, err := f.ReadAt(buf, 1<<20); err == nil {
		t.Fatal("a read of the failing disk succeeded")
	}
	g, err := os.Open(disk.Dev)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.ReadAt(make([]byte, 4096), 2<<20); err == nil {
		t.Fatal("a buffered read of the failing disk succeeded")
	}
	lines := k.until(t, disk.Name, time.Minute, func(lines []string) bool {
		io, buffered := false, false
		for _, l := range lines {
			io = io || strings.Contains(l, "I/O error, dev "+disk.Name)
			buffered = buffered || strings.Contains(l, "Buffer I/O error on dev "+disk.Name)
		}
		return io && buffered
	})
	found := sigsIn(t, lines)
	wantSig(t, found, "blk-io-error", "FM-E5", disk.Name, lines)
	wantSig(t, found, "buffer-io-error", "FM-E5", disk.Name, lines)
	if disk.FailedReads() == 0 {
		t.Error("no read reached the failing file system")
	}
}

// alignedBuf returns n bytes aligned for O_DIRECT.
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := 4096 - int(uintptrOf(b)%4096)
	return b[off : off+n]
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

// TestRealExt4OnFailingDisk: ext4 mounted errors=remount-ro on the failing
// disk; once its reads fail, a directory whose blocks are not cached any
// more cannot be read: the kernel's ext4 error, then the remount.
func TestRealExt4OnFailingDisk(t *testing.T) {
	requireTool(t, "mkfs.ext4")
	disk := testload.NewFailingDisk(t, 32<<20)
	run(t, "mkfs.ext4", "-q", "-F", disk.Dev)
	dir := mountAt(t, disk.Dev, "ext4", "errors=remount-ro")
	sub := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(sub, "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	// Mount again: the directory's blocks are read from the disk on
	// first use, not served from what the first mount wrote.
	if err := syscall.Mount(disk.Dev, dir, "ext4", 0, "errors=remount-ro"); err != nil {
		t.Fatal(err)
	}
	flushBufs(t, disk.Dev)
	k := tailKmsg(t)
	disk.Fail()
	if _, err := os.ReadDir(sub); err == nil {
		t.Fatal("a directory of the failing disk was read")
	}
	lines := k.until(t, disk.Name, time.Minute, func(lines []string) bool {
		for _, l := range lines {
			if strings.Contains(l, "EXT4-fs error") {
				return true
			}
		}
		return false
	})
	found := sigsIn(t, lines)
	wantSig(t, found, "ext4-fs-error", "FM-E5", disk.Name, lines)
	wantSig(t, found, "blk-io-error", "FM-E5", disk.Name, lines)
	if len(found["ext4-corruption"]) > 0 {
		t.Error("a disk failing reads was reported as corruption")
	}
}

// flushBufs drops the block device's cached buffers (BLKFLSBUF), for that
// device only.
func flushBufs(t *testing.T, dev string) {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const blkflsbuf = 0x1261
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkflsbuf, 0); errno != 0 {
		t.Fatalf("BLKFLSBUF %s: %v", dev, errno)
	}
}
