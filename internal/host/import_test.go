package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileSnapshot makes a snapshot directory holding, beside ordinary
// files, each kind of input that used to crash or hang a replay.
func hostileSnapshot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, rel string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	write(metaName, `{"format": 1, "host": "pve1", "taken": "2026-11-25T21:34:00Z"}`)
	write("proc/sys/fs/file-nr", "4096\t0\t9223372036854775807\n")
	write("proc/loadavg", "0.10 0.20 0.30 1/200 4242\n")
	link("/dev/zero", "proc/vmstat")
	if err := syscall.Mkfifo(filepath.Join(dir, "proc/pressure-memory"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A file the size of a disk that takes no space: refused by its size
	// before a byte is read.
	write("commands/journal-prev-kernel.json", `{"argv": ["journalctl"], "exit_code": 0}`)
	f, err := os.Create(filepath.Join(dir, "commands/journal-prev-kernel.out"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	link("/etc/shadow", "etc/passwd")
	link("../../proc/loadavg", "sys/kernel/loadavg-copy")
	link(filepath.Join(dir, "proc/loadavg"), "sys/kernel/loadavg-absolute")
	if err := os.MkdirAll(filepath.Join(dir, "proc/stat"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A recorded descriptor: its target is data, never followed.
	link("/dev/zero", "proc/42/fd/3")
	// A descriptor directory holding something else is read entry by
	// entry like any other.
	link("socket:[4242]", "proc/43/fd/1")
	if err := syscall.Mkfifo(filepath.Join(dir, "proc/43/fd/0"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSnapshotHostileFiles(t *testing.T) {
	dir := hostileSnapshot(t)
	start := time.Now()
	src, err := FromDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if took := time.Since(start); took > ReadDeadline {
		t.Errorf("reading the snapshot took %s", took)
	}
	if m := src.Meta(); m.Host != "pve1" {
		t.Errorf("host %q, want pve1", m.Host)
	}
	problems := strings.Join(src.Problems(), "\n")
	for _, want := range []string{
		"snapshot file proc/vmstat: is a symbolic link to /dev/zero, outside the snapshot: not read",
		"snapshot file proc/pressure-memory: is a named pipe (FIFO), not a regular file: not read",
		"snapshot file commands/journal-prev-kernel.out: is 64.0 GiB, more than the 64.0 MiB a snapshot file of this kind may hold: not read",
		"snapshot file etc/passwd: is a symbolic link to /etc/shadow, outside the snapshot: not read",
		"snapshot file proc/43/fd/0: is a named pipe (FIFO), not a regular file: not read",
		"snapshot file sys/kernel/loadavg-absolute: is an absolute symbolic link (to " + dir + "/proc/loadavg); only relative links inside the snapshot are followed: not read",
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems do not say %q; they are:\n%s", want, problems)
		}
	}
	if n := len(src.Problems()); n != 6 {
		t.Errorf("%d problems, want 6:\n%s", n, problems)
	}

	// The rest is read as usual.
	for _, p := range []string{"/proc/sys/fs/file-nr", "/proc/loadavg", "/sys/kernel/loadavg-copy"} {
		if _, err := src.ReadFile(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if b, _ := src.ReadFile("/sys/kernel/loadavg-copy"); !strings.HasPrefix(string(b), "0.10 ") {
		t.Errorf("a link within the snapshot reads %q, want the file it leads to", b)
	}
	// A refused file says why to whoever reads it, and does not pass for a
	// missing one.
	_, err = src.ReadFile("/etc/passwd")
	if err == nil || !strings.Contains(err.Error(), "outside the snapshot") || Missing(err) {
		t.Errorf("reading the link to /etc/shadow: %v", err)
	}
	_, err = src.ReadFile("/proc/stat")
	if err == nil || !strings.Contains(err.Error(), "snapshot file proc/stat: is a directory") || strings.Contains(err.Error(), src.Root()) {
		t.Errorf("reading a directory where a file belongs: %v", err)
	}
	if _, err := src.Command(t.Context(), "journal-prev-kernel", "journalctl"); err == nil || !strings.Contains(err.Error(), "64.0 GiB") {
		t.Errorf("a command output over its limit: %v", err)
	}
	for p, want := range map[string]string{"/proc/42/fd/3": "/dev/zero", "/proc/43/fd/1": "socket:[4242]"} {
		target, err := os.Readlink(src.Path(p))
		if err != nil || target != want {
			t.Errorf("descriptor link %s reads %q, %v; want %s", p, target, err, want)
		}
	}

	root := src.Root()
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the private copy %s is left behind: %v", root, err)
	}
}

// TestSnapshotMetaHostile: the description itself is read like any other
// snapshot file.
func TestSnapshotMetaHostile(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, metaName), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := FromDir(t.Context(), dir)
	if err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("a FIFO as the description: %v", err)
	}
}

// TestSnapshotReadDeadline: a read that does not answer (a FIFO opened by
// a reader that blocks, standing for a dead network filesystem) costs the
// deadline, not the diagnosis; ctx stops the copy at once.
func TestSnapshotReadDeadline(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	block := func() ([]byte, error) {
		// A blocking open of a FIFO without a writer: the system call
		// does not return.
		f, err := os.Open(filepath.Join(dir, "fifo"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return nil, nil
	}
	start := time.Now()
	_, err = within(t.Context(), 100*time.Millisecond, block)
	if !errors.Is(err, errTimeout) {
		t.Errorf("got %v, want a timeout", err)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errors.New("terminated"))
	_, err = within(ctx, time.Hour, block)
	if err == nil || err.Error() != "terminated" {
		t.Errorf("got %v, want the cancellation's cause", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	// Release the blocked opens.
	w, err := os.OpenFile(filepath.Join(dir, "fifo"), os.O_WRONLY, 0)
	if err == nil {
		w.Close()
	}
}
