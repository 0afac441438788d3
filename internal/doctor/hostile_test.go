package doctor

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// HostileSnapshot copies the vm-fd-limit capture to a new directory and
// replaces inputs its FM-B1 finding does not depend on with what used to
// crash (a link to /dev/zero), hang (a FIFO), leak (a link to /etc/shadow)
// or confuse (a directory, a 64 GiB sparse file) a replay. It returns the
// directory.
func HostileSnapshot(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "snap")
	// cp -a keeps the recorded descriptor links as links.
	if out, err := exec.Command("cp", "-a", filepath.Join("testdata", "snapshots", "vm-fd-limit"), dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	replace := func(rel string, make func(p string) error) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := make(p); err != nil {
			t.Fatal(err)
		}
	}
	replace("proc/vmstat", func(p string) error { return os.Symlink("/dev/zero", p) })
	replace("proc/pressure/memory", func(p string) error { return syscall.Mkfifo(p, 0o600) })
	replace("etc/passwd", func(p string) error { return os.Symlink("/etc/shadow", p) })
	replace("proc/net/softnet_stat", func(p string) error { return os.Mkdir(p, 0o700) })
	replace("commands/journal-prev-tail.out", func(p string) error {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Truncate(64 << 30)
	})
	return dir
}

func TestDiagnoseHostileSnapshot(t *testing.T) {
	dir := HostileSnapshot(t)
	start := time.Now()
	d, err := Diagnose(t.Context(), Options{From: dir})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the diagnosis took %s", took)
	}
	// Nothing else is lost: the capture's finding is still there.
	var fm bool
	for _, f := range d.Findings {
		fm = fm || strings.HasPrefix(f.Key, "FM-B1/") && strings.Contains(f.Summary, "pid 4675")
	}
	if !fm {
		t.Errorf("the FM-B1 finding of pid 4675 is lost: %+v", d.Findings)
	}
	var out bytes.Buffer
	if err := WriteText(&out, d, TextOptions{Min: finding.Info, Location: time.UTC}, builtinBook(t)); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if strings.Contains(text, "hinomi-snapshot-") {
		t.Errorf("the report names the private copy instead of the snapshot:\n%s", text)
	}
	for _, want := range []string{
		"snapshot file proc/vmstat: is a symbolic link to /dev/zero, outside the snapshot: not read",
		"snapshot file proc/pressure/memory: is a named pipe (FIFO), not a regular file: not read",
		"snapshot file etc/passwd: is a symbolic link to /etc/shadow, outside the snapshot: not read",
		"snapshot file commands/journal-prev-tail.out: is 64.0 GiB, more than the 64.0 MiB a snapshot file of this kind may hold: not read",
		"snap/proc/net/softnet_stat: is a directory",
		"FM-B1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the report does not say %q:\n%s", want, text)
		}
	}
	// Not a byte of /etc/shadow reaches the report.
	if shadow, err := os.ReadFile("/etc/shadow"); err == nil {
		for line := range strings.Lines(string(shadow)) {
			if hash := strings.Split(line, ":"); len(hash) > 2 && len(hash[1]) > 3 && strings.Contains(text, hash[1]) {
				t.Errorf("the report holds a password hash from /etc/shadow")
			}
		}
	}
}
