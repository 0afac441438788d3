package doctor

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/finding"
)

// TestStorageReplay diagnoses the DRBD, ZFS, md RAID and SMART scenarios
// (testdata/snapshots/storage-*, see STORAGE.md there) and checks that
// each yields exactly its finding, with the runbook filled in. This
// machine has no DRBD, ZFS or md kernel support: these modes are tested
// by replay only.
func TestStorageReplay(t *testing.T) {
	book := builtinBook(t)
	for _, c := range []struct {
		dir      string
		mode     string
		sev      finding.Severity
		subject  string
		vars     map[string]string
		ready    string // a command doctor must offer as ready ("" for none)
		notReady string // one it must not offer as ready
	}{
		{"storage-drbd-all-outdated", "FM-D8", finding.Catastrophic, "drbd ボリューム名",
			map[string]string{"case": "outdated", "resource": "ボリューム名", "disk_state": "Outdated"}, "", "drbdadm primary --force"},
		{"storage-drbd-wfbitmap", "FM-D8", finding.High, "drbd ボリューム名",
			map[string]string{"case": "wfbitmap", "peer": "hive0.hive名", "replication": "WFBitMapS", "peer_disk": "Consistent"},
			"ssh 'hive0.hive名' drbdadm disconnect 'ボリューム名'", "--discard-my-data"},
		{"storage-drbd8-standalone", "FM-D8", finding.Catastrophic, "drbd minor 1",
			map[string]string{"case": "standalone", "minor": "1", "connection": "StandAlone", "disk_state": "UpToDate"}, "", "--discard-my-data"},
		{"storage-drbd-volume-full", "FM-D9", finding.Medium, "drbd volume ldap_data",
			map[string]string{"volume": "ldap_data", "used_pct": "93", "device": "/dev/drbd8"}, "", "xfs_growfs"},
		{"storage-zfs-degraded", "FM-C8", finding.Catastrophic, "zpool vz",
			map[string]string{"kind": "zfs", "pool": "vz", "member": "ata-WDC_WD3001FFSX-68JNUN0_WD-WCC13RYDLSH9", "state": "OFFLINE"},
			"zpool online vz ata-WDC_WD3001FFSX-68JNUN0_WD-WCC13RYDLSH9", "mdadm"},
		{"storage-md-degraded", "FM-C8", finding.Catastrophic, "md md5",
			map[string]string{"kind": "md", "array": "/dev/md5", "member": "sdb1", "device": "sdb"},
			"mdadm --manage /dev/md5 --remove /dev/sdb1", "zpool"},
		{"storage-smart-media-errors", "FM-C8", finding.Medium, "disk nvme0",
			map[string]string{"kind": "smart", "device": "nvme0", "state": "media errors"}, "", "zpool"},
		{"storage-healthy", "", 0, "", nil, "", ""},
	} {
		t.Run(c.dir, func(t *testing.T) {
			d, err := Diagnose(t.Context(), Options{From: filepath.Join("testdata", "snapshots", c.dir)})
			if err != nil {
				t.Fatal(err)
			}
			for name, e := range d.Errors {
				t.Errorf("check %s failed: %s", name, e)
			}
			if c.mode == "" {
				if len(d.Findings) != 0 {
					t.Fatalf("healthy storage gave findings: %+v", d.Findings)
				}
				return
			}
			if len(d.Findings) != 1 {
				t.Fatalf("got %d findings; want 1: %+v", len(d.Findings), d.Findings)
			}
			f := d.Findings[0]
			if f.Mode != c.mode || f.Severity != c.sev || f.Subject != c.subject || f.Key != finding.MakeKey(c.mode, c.subject) {
				t.Fatalf("got %s %s %q (key %q); want %s %s %q", f.Mode, f.Severity, f.Subject, f.Key, c.mode, c.sev, c.subject)
			}
			for k, v := range c.vars {
				if f.Evidence.Vars[k] != v {
					t.Errorf("var %s = %q; want %q", k, f.Evidence.Vars[k], v)
				}
			}
			rb := book.Get(f.Runbook)
			if rb == nil {
				t.Fatalf("no runbook %s", f.Runbook)
			}
			steps, err := rb.Steps("Recover", f.Evidence.Vars)
			if err != nil {
				t.Fatal(err)
			}
			var ready []string
			for _, s := range steps {
				if s.Ready {
					ready = append(ready, s.Lines...)
				}
			}
			all := strings.Join(ready, "\n")
			if c.ready != "" && !strings.Contains(all, c.ready) {
				t.Errorf("ready steps lack %q:\n%s", c.ready, all)
			}
			if c.notReady != "" && strings.Contains(all, c.notReady) {
				t.Errorf("ready steps offer %q, which needs a decision or a value:\n%s", c.notReady, all)
			}
		})
	}
}
