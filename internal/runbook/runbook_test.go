package runbook

import (
	"strings"
	"testing"
)

var hostModes = map[string]bool{"FM-B1": true, "FM-B2": true, "FM-B3": true, "FM-B4": true, "FM-C1": true, "FM-C2": true, "FM-C3": true, "FM-C6": true}

func TestBuiltinRunbooksParseAndRender(t *testing.T) {
	b, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	all := b.All()
	if len(all) == 0 {
		t.Fatal("no built-in runbooks")
	}
	for _, rb := range all {
		text, err := rb.Render(nil)
		if err != nil {
			t.Errorf("%s: %v", rb.ID, err)
			continue
		}
		for _, s := range []string{"What it means", "Confirm", "Recover"} {
			if !strings.Contains(text, "## "+s) {
				t.Errorf("%s lacks section %q", rb.ID, s)
			}
		}
		sec, _ := rb.Section("Recover", nil)
		if strings.TrimSpace(sec) == "" {
			t.Errorf("%s has an empty Recover section", rb.ID)
		}
		// doctor prints these modes' commands under each finding.
		if hostModes[rb.ID] && len(Commands(sec)) == 0 {
			t.Errorf("%s has no recovery commands", rb.ID)
		}
	}
	if all[0].ID != "FM-A1" {
		t.Errorf("first runbook %s, want FM-A1", all[0].ID)
	}
}

func TestRenderFillsEvidence(t *testing.T) {
	rb, err := Parse([]byte("---\nid: FM-C6\ntitle: t\nseverity: high\n---\n## Recover\n```sh\numount -nlf {{v \"mount\" \"<mountpoint>\"}}\n```\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	sec, err := rb.Section("Recover", map[string]string{"mount": "/mnt/pve/nfs"})
	if err != nil {
		t.Fatal(err)
	}
	if got := Commands(sec); len(got) != 1 || got[0] != "umount -nlf /mnt/pve/nfs" {
		t.Errorf("commands %q", got)
	}
	sec, _ = rb.Section("Recover", nil)
	if got := Commands(sec); got[0] != "umount -nlf <mountpoint>" {
		t.Errorf("placeholder not kept: %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("---\nid: FM-B2\ntitle: x\nseverity: high\n---\n## Recover\n{{v \"a\" \"b\"}}\n"))
	f.Add([]byte("---\nid: X\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rb, err := Parse(b, "fuzz")
		if err != nil {
			return
		}
		if rb.ID == "" || rb.Title == "" {
			t.Errorf("accepted a runbook without id or title: %+v", rb)
		}
		_, _ = rb.Render(map[string]string{"a": "1"})
	})
}

// FM-C6 explains a dead mount (an error at once) differently from a hung
// one (no answer).
func TestMountRunbookDeadOrHung(t *testing.T) {
	b, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	rb := b.Get("FM-C6")
	dead, err := rb.Render(map[string]string{"mount": "/mnt/pve/nas", "fstype": "nfs4", "server": "nas", "error": "ESTALE (stale NFS file handle)"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dead, "/mnt/pve/nas from nas is dead: `stat` fails at once with ESTALE") || strings.Contains(dead, "has not answered for") {
		t.Errorf("dead mount runbook:\n%s", dead)
	}
	hung, err := rb.Render(map[string]string{"mount": "/mnt/pve/nas", "fstype": "nfs4", "server": "nas", "stuck_for": "3m0s"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hung, "has not answered for 3m0s") || strings.Contains(hung, "is dead") {
		t.Errorf("hung mount runbook:\n%s", hung)
	}
}
