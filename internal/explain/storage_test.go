package explain

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// storageInput reads a capture of internal/storage/testdata as a paste.
func storageInput(t *testing.T, name string) *Input {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "storage", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if i := strings.Index(text, "\n"); strings.HasPrefix(text, "# source:") && i >= 0 {
		text = text[i+1:] // the fixture's citation is not part of the paste
	}
	return &Input{Name: name, Text: text, Lines: strings.Split(text, "\n"), Now: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
}

func TestStorageFormats(t *testing.T) {
	for _, c := range []struct {
		file, command, format string
		subjects              []string // the findings, worst first
		severity              string   // of the first
	}{
		{"drbdadm-status-multivolume-salt-17.txt", "", "drbdadm-status", []string{"drbd resource"}, "medium"},
		{"drbd-3.txt", "", "drbdadm-status", []string{"drbd one-vm-9120-disk-0", "drbd one-vm-7707-disk-0"}, "medium"},
		{"drbd-1.txt", "", "drbdadm-status", nil, ""},
		{"drbd-json-ha-exporter-25.txt", "", "drbdsetup-status-json", nil, ""},
		{"drbd-7.txt", "", "drbdsetup-events2", []string{"drbd test0"}, "medium"},
		{"proc-drbd-84-trinity-651.txt", "", "proc-drbd", []string{"drbd minor 1"}, "catastrophic"},
		{"proc-drbd-84-cockpit-17042.txt", "", "proc-drbd", []string{"drbd minor 1", "drbd minor 2"}, "medium"},
		{"zpool-status-7537-replacing.txt", "", "zpool-status", []string{"zpool vz"}, "catastrophic"},
		{"zpool-status-3267-healthy-logs-cache.txt", "", "zpool-status", nil, ""},
		{"mdstat-raid5-failed-node-exporter-261.txt", "", "mdstat", []string{"md md5"}, "catastrophic"},
		{"mdstat-check-delayed-centreon-18.txt", "", "mdstat", nil, ""},
		{"smartctl-a-72-failed-scrutiny-448.txt", "", "smartctl", []string{"disk sdb"}, "high"},
		{"smartctl-a-75-nvme-bredos.txt", "smartctl -a /dev/nvme0", "smartctl", nil, ""},
		{"smartctl-json-scrutiny-smart-fail2.json.txt", "", "smartctl-json", []string{"disk sdc"}, "high"},
		{"smartctl-json-vm-vda.txt", "", "smartctl-json", nil, ""},
	} {
		t.Run(c.file, func(t *testing.T) {
			in := storageInput(t, c.file)
			in.Command = c.command
			f, ok := Recognise(in, All())
			if !ok || f.Name != c.format {
				t.Fatalf("recognised as %q (%v); want %q", f.Name, ok, c.format)
			}
			res, err := f.Explain(in)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range res.Findings {
				got = append(got, x.Subject)
			}
			if strings.Join(got, "|") != strings.Join(c.subjects, "|") {
				t.Fatalf("findings %q; want %q", got, c.subjects)
			}
			if len(got) > 0 && res.Findings[0].Severity.String() != c.severity {
				t.Errorf("severity %s; want %s", res.Findings[0].Severity, c.severity)
			}
		})
	}
}

// The seed's two DRBD patterns, pasted as the runbook shows them.
func TestStorageSeedDRBD(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "storage", "testdata", "drbd-2.txt"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "\n## ")
	for i, c := range []struct {
		text, want string
	}{
		{blocks[1], "outdated"},
		{blocks[2] + "\n" + blocks[3], "wfbitmap"},
	} {
		in := &Input{Text: c.text, Lines: strings.Split(c.text, "\n")}
		f, ok := Recognise(in, All())
		if !ok || f.Name != "drbdadm-status" {
			t.Fatalf("block %d recognised as %q", i, f.Name)
		}
		res, err := f.Explain(in)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Findings) != 1 || res.Findings[0].Evidence.Vars["case"] != c.want || res.Findings[0].Evidence.Vars["resource"] != "ボリューム名" {
			t.Errorf("block %d: %+v; want one finding of case %s", i, res.Findings, c.want)
		}
	}
}

// Unreadable text of a recognised format is an error, not an empty
// diagnosis.
func TestStorageFormatsRefuse(t *testing.T) {
	for _, f := range []Format{DRBDStatus, DRBDJSON, ProcDRBD, DRBDEvents2, ZpoolStatus, Mdstat, SmartctlText, SmartctlJSON} {
		in := &Input{Text: "hello\nworld\n", Lines: []string{"hello", "world", ""}}
		if s := f.Detect(in); s != 0 {
			t.Errorf("%s claims plain text with score %d", f.Name, s)
		}
		if _, err := f.Explain(in); err == nil {
			t.Errorf("%s explains plain text without an error", f.Name)
		}
	}
	in := &Input{Text: "version: 9.2.8 (api:2/proto:86-122)\nGIT-hash: abc build by x\nTransports (api:21): tcp (9.2.8)\n"}
	if f, ok := Recognise(in, All()); !ok || f.Name != "proc-drbd" {
		t.Fatalf("DRBD 9 /proc/drbd recognised as %q", f.Name)
	} else if _, err := f.Explain(in); err == nil || !strings.Contains(err.Error(), "drbdadm status") {
		t.Errorf("DRBD 9 /proc/drbd: %v; want a pointer to drbdadm status", err)
	}
}
