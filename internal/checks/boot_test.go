package checks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/signatures"
)

// capture reads a testdata capture without its "#" commentary lines.
func capture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
	}
	return []byte(strings.Join(keep, "\n"))
}

// writeSnapshot lays out files as `hinomi snapshot` does.
func writeSnapshot(t *testing.T, files map[string][]byte) *host.Source {
	t.Helper()
	dir := t.TempDir()
	files["hinomi-snapshot.json"], _ = json.Marshal(host.Meta{Format: host.MetaFormat, Host: "pve1", Taken: time.Now()})
	for rel, b := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := host.FromDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// TestPreviousBootFromJournalAndPstore replays the previous-boot journal of
// a real host crash (its three kernel lines, no shutdown) and a pstore record holding
// a real soft lockup that ended in a panic.
func TestPreviousBootFromJournalAndPstore(t *testing.T) {
	journal := capture(t, "boot/lxc-docker-crash-previous-boot.txt")
	ok, _ := json.Marshal(map[string]any{"argv": []string{"journalctl"}, "exit_code": 0})
	src := writeSnapshot(t, map[string][]byte{
		"commands/journal-prev-tail.json":      ok,
		"commands/journal-prev-tail.out":       journal,
		"commands/journal-prev-kernel.json":    ok,
		"commands/journal-prev-kernel.out":     journal,
		"sys/module/pstore/parameters/backend": []byte("ramoops\n"),
		"sys/fs/pstore/dmesg-ramoops-0":        capture(t, "boot/pstore-kernel-9.txt"),
	})
	cat, err := signatures.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Src: src, Host: "pve1", Procs: &proctable.Table{}, Kernel: &KernelLog{}, Signatures: signatures.NewMatcher(cat)}
	res, err := checkPreviousBoot(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range res.Findings {
		got[f.Subject] = f.Mode
	}
	want := map[string]bool{"previous boot unclean": false}
	var prevModes, pstoreModes []string
	for subj, mode := range got {
		switch {
		case subj == "previous boot unclean":
			want[subj] = true
		case strings.HasPrefix(subj, "previous boot (pstore): "):
			pstoreModes = append(pstoreModes, mode)
		case strings.HasPrefix(subj, "previous boot: "):
			prevModes = append(prevModes, mode)
		}
	}
	if !want["previous boot unclean"] {
		t.Errorf("no unclean-shutdown finding; got %v", got)
	}
	for _, m := range []string{"FM-E1", "FM-E2"} {
		if !strings.Contains(strings.Join(prevModes, ","), m) {
			t.Errorf("previous boot journal: no %s finding (the crash report's lines); got %v", m, got)
		}
	}
	for _, m := range []string{"FM-E1", "FM-E2"} {
		if !strings.Contains(strings.Join(pstoreModes, ","), m) {
			t.Errorf("pstore: no %s finding (soft lockup and panic); got %v", m, got)
		}
	}
	if len(res.Blind) != 0 {
		t.Errorf("blind %v with a journal and pstore present", res.Blind)
	}
}
