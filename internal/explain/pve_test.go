package explain

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// pveInput reads a capture of internal/pve/testdata as a paste: without
// its "# source:" line, split into lines, a leading prompt's command kept
// as the explain CLI does.
func pveInput(t *testing.T, name string) *Input {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "pve", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	_, text, _ := strings.Cut(string(b), "\n")
	in := &Input{Name: name, Text: text, Lines: strings.Split(text, "\n"), Now: time.Date(2026, 12, 2, 1, 30, 0, 0, time.UTC)}
	if first := in.Lines[0]; strings.Contains(first, "# ") || strings.HasPrefix(first, "$ ") {
		if i := strings.Index(first, "# "); i >= 0 && strings.Contains(first[:i], "@") {
			in.Command = first[i+2:]
		} else if strings.HasPrefix(first, "$ ") {
			in.Command = first[2:]
		}
	}
	return in
}

func TestPVEFormats(t *testing.T) {
	all := All()
	for _, c := range []struct {
		file, format string
		modes        []string
		sev          finding.Severity
	}{
		{"pvecm-status-pve9.txt", "pvecm-status", nil, 0},
		{"proxmox-1.txt", "pvecm-status", nil, 0},
		{"proxmox-2.txt", "corosync-quorumtool", []string{"FM-D5"}, finding.High},
		{"corosync-quorumtool-q1-healthy.txt", "corosync-quorumtool", nil, 0},
		{"corosync-quorumtool-suse-2node.txt", "corosync-quorumtool", nil, 0},
		{"pcs-quorum-status-openshift.txt", "corosync-quorumtool", nil, 0},
		{"corosync-quorumtool-q1-two-of-three.txt", "corosync-quorumtool", []string{"FM-D5"}, finding.High},
		{"corosync-quorumtool-q3-alone.txt", "corosync-quorumtool", []string{"FM-D5"}, finding.Catastrophic},
		{"ha-manager-status-maintenance.txt", "ha-manager-status", nil, 0},
		{"ha-manager-status-2016.txt", "ha-manager-status", nil, 0},
		{"ha-manager-status-watchdog.txt", "ha-manager-status", nil, 0},
		{"ha-manager-status-dead-lrm.txt", "ha-manager-status", []string{"FM-D7"}, finding.High},
		{"ha-manager-status-docs-pve9.txt", "ha-manager-status", nil, 0},
		{"pvesr-status-ok.txt", "pvesr-status", nil, 0},
		{"pvesr-status-first-sync.txt", "pvesr-status", nil, 0},
		{"pvesr-status-quoted.txt", "pvesr-status", nil, 0},
		{"pvesr-status-two-targets.txt", "pvesr-status", nil, 0},
	} {
		t.Run(c.file, func(t *testing.T) {
			in := pveInput(t, c.file)
			f, ok := Recognise(in, all)
			if !ok || f.Name != c.format {
				t.Fatalf("recognised as %q (%v); want %s", f.Name, ok, c.format)
			}
			res, err := f.Explain(in)
			if err != nil {
				t.Fatal(err)
			}
			var modes []string
			for _, fd := range res.Findings {
				modes = append(modes, fd.Mode)
				if fd.Severity != c.sev {
					t.Errorf("%s severity %s; want %s", fd.Key, fd.Severity, c.sev)
				}
			}
			if strings.Join(modes, " ") != strings.Join(c.modes, " ") {
				t.Errorf("modes %v; want %v: %+v", modes, c.modes, res.Findings)
			}
		})
	}
}

// Without the nodelist, a paste of two-of-three cannot name the missing
// node, but it still counts the missing vote.
func TestPVEQuorumPasteMargin(t *testing.T) {
	in := pveInput(t, "corosync-quorumtool-q1-two-of-three.txt")
	res, err := corosyncQuorumtool().Explain(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Summary, "1 vote(s) missing") {
		t.Errorf("%+v", res.Findings)
	}
}

func TestPVESMFormat(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "pve", "testdata", "proxmox-6.txt"))
	if err != nil {
		t.Fatal(err)
	}
	_, text, _ := strings.Cut(string(b), "\n")
	first, _, _ := strings.Cut(text, "\n## ")
	_, body, _ := strings.Cut(first, "\n") // drop the "pvesm status -storage drbdpool" command line
	in := &Input{Text: body, Lines: strings.Split(body, "\n"), Command: "pvesm status -storage drbdpool", Host: "pve1"}
	f, ok := Recognise(in, All())
	if !ok || f.Name != "pvesm-status" {
		t.Fatalf("recognised as %q", f.Name)
	}
	res, err := f.Explain(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || res.Findings[0].Mode != "FM-C6" || res.Findings[0].Subject != "storage drbdpool" || res.Findings[0].Evidence.Vars["node"] != "pve1" {
		t.Errorf("%+v", res.Findings)
	}
}
