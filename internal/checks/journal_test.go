package checks

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/signatures"
)

// This boot's journal goes through the signatures: corosync losing its
// token and quorum (a real journal excerpt, /work/shared/samples/proxmox-5,
// from https://github.com/corosync/corosync-qdevice/issues/10) is found;
// a kernel line in it is left to the kernel log's reading; the agent,
// which follows the journal live, does not read it again.
func TestJournalThisBoot(t *testing.T) {
	b, err := os.ReadFile("../explain/testdata/samples/proxmox-5.txt")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	out := strings.Join(lines, "\n") + "\nApr  2 19:17:30 test1 kernel: nfs: server nas1 not responding, still trying\n"
	ok, _ := json.Marshal(map[string]any{"argv": []string{"journalctl"}, "exit_code": 0})
	src := writeSnapshot(t, map[string][]byte{
		"commands/journal-current.json": ok,
		"commands/journal-current.out":  []byte(out),
	})
	cat, err := signatures.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Src: src, Host: "test1", Now: time.Now(), Signatures: signatures.NewMatcher(cat)}
	res, err := checkJournal(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	var quorum, nfs bool
	for _, f := range res.Findings {
		quorum = quorum || f.Mode == "FM-D5" && f.Severity == finding.Catastrophic && strings.HasPrefix(f.Subject, "journal: ")
		nfs = nfs || strings.Contains(f.Subject, "nfs")
	}
	if !quorum || nfs {
		t.Errorf("findings %+v; want corosync's quorum loss, and not the kernel's nfs line", res.Findings)
	}

	env.NoJournal = true
	if _, err := checkJournal(t.Context(), env); err != ErrNotApplicable {
		t.Errorf("with NoJournal: %v; want not applicable", err)
	}
	empty, _ := json.Marshal(map[string]any{"argv": []string{"journalctl"}, "exit_code": 1})
	src = writeSnapshot(t, map[string][]byte{"commands/journal-current.json": empty, "commands/journal-current.out": nil})
	if _, err := checkJournal(t.Context(), &Env{Src: src, Signatures: env.Signatures}); err != ErrNotApplicable {
		t.Errorf("no journal at all: %v; want not applicable", err)
	}
}
