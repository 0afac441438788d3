package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parts splits a sample file at its "## " lines, which introduce further
// excerpts (see samples/README.md).
func parts(b []byte) [][]byte {
	var out [][]byte
	var cur strings.Builder
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if strings.HasPrefix(l, "## ") && cur.Len() > 0 {
			out = append(out, []byte(cur.String()))
			cur.Reset()
		}
		cur.WriteString(l)
	}
	return append(out, []byte(cur.String()))
}

// want is the expected finding of a capture: mode, severity, subject and
// the runbook variables that must be filled.
type want struct {
	mode, subject string
	sev           finding.Severity
	vars          map[string]string
}

func check(t *testing.T, got []finding.Finding, ws []want) {
	t.Helper()
	if len(got) != len(ws) {
		for _, f := range got {
			t.Logf("got %s %s %q: %s %v", f.Mode, f.Severity, f.Subject, f.Summary, f.Evidence.Vars)
		}
		t.Fatalf("got %d findings; want %d", len(got), len(ws))
	}
	for i, w := range ws {
		f := got[i]
		if f.Mode != w.mode || f.Severity != w.sev || f.Subject != w.subject {
			t.Errorf("finding %d = %s %s %q; want %s %s %q (%s)", i, f.Mode, f.Severity, f.Subject, w.mode, w.sev, w.subject, f.Summary)
		}
		if f.Key != finding.MakeKey(f.Mode, f.Subject) {
			t.Errorf("finding %d key %q; want %q", i, f.Key, finding.MakeKey(f.Mode, f.Subject))
		}
		if f.Summary == "" {
			t.Errorf("finding %d has no summary", i)
		}
		for k, v := range w.vars {
			if f.Evidence.Vars[k] != v {
				t.Errorf("finding %d var %s = %q; want %q (vars %v)", i, k, f.Evidence.Vars[k], v, f.Evidence.Vars)
			}
		}
	}
}

func TestDRBDStatusSeedPatterns(t *testing.T) {
	p := parts(read(t, "drbd-2.txt"))
	// (a) every host Outdated: no copy may become Primary.
	rs, skipped := ParseDRBDStatus(p[1])
	if len(rs) != 1 || skipped != 0 {
		t.Fatalf("(a): %d resources, %d skipped; want 1, 0", len(rs), skipped)
	}
	check(t, DiagnoseDRBD(LatestViews(rs), nil, "drbdadm status"), []want{{"FM-D8", "drbd ボリューム名", finding.Catastrophic,
		map[string]string{"resource": "ボリューム名", "case": DRBDAllOutdated, "disk_state": "Outdated", "peer_disk": "Outdated"}}})
	// (b) the healthy side and the half-open side pasted together: the
	// finding names the peer to reconnect from, and the node that saw it.
	rs, _ = ParseDRBDStatus(append(p[2], p[3]...))
	if len(rs) != 2 {
		t.Fatalf("(b): %d views; want 2", len(rs))
	}
	check(t, DiagnoseDRBD(LatestViews(rs), nil, "drbdadm status"), []want{{"FM-D8", "drbd ボリューム名", finding.High,
		map[string]string{"case": DRBDHalfOpen, "peer": "hive0.hive名", "node": "hive1.hive名", "replication": "WFBitMapS", "peer_disk": "Consistent"}}})
	// The healthy side alone is healthy.
	rs, _ = ParseDRBDStatus(p[2])
	check(t, DiagnoseDRBD(rs, nil, "drbdadm status"), nil)
}

func TestDRBDStatusCaptures(t *testing.T) {
	for _, c := range []struct {
		file string
		want []want
	}{
		// Bring-up: Connecting, SyncTarget, UpToDate; the last reading wins.
		{"drbd-1.txt", nil},
		// A resync with the only good copy on m14c19; and an Inconsistent
		// disk with no resync running (LINSTOR issue 203).
		{"drbd-3.txt", []want{
			{"FM-D8", "drbd one-vm-9120-disk-0", finding.Medium, map[string]string{"case": DRBDResync, "peer": "m14c19", "node": "m13c22"}},
			{"FM-D8", "drbd one-vm-7707-disk-0", finding.Catastrophic, map[string]string{"case": DRBDInconsistent, "disk_state": "Inconsistent", "node": "m15c44"}},
		}},
		{"drbdadm-status-multivolume-salt-17.txt", []want{
			{"FM-D8", "drbd resource", finding.Medium, map[string]string{"case": DRBDResync, "peer": "drbd-node1", "replication": "SyncTarget"}},
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			rs, _ := ParseDRBDStatus(read(t, c.file))
			if len(rs) == 0 {
				t.Fatal("no resource parsed")
			}
			check(t, DiagnoseDRBD(LatestViews(rs), nil, "drbdadm status"), c.want)
		})
	}
}

func TestDRBDVerboseStatistics(t *testing.T) {
	rs, _ := ParseDRBDStatus(parts(read(t, "drbd-3.txt"))[0])
	var verbose *DRBDResource
	for i := range rs {
		if len(rs[i].Volumes) > 0 && rs[i].Volumes[0].Minor == 2796 {
			verbose = &rs[i]
		}
	}
	if verbose == nil {
		t.Fatal("the verbose view (minor 2796) was not parsed")
	}
	if verbose.Volumes[0].SizeKiB != 41946328 || verbose.Volumes[0].Quorum != "yes" {
		t.Errorf("volume = %+v; want size 41946328, quorum yes", verbose.Volumes[0])
	}
	if len(verbose.Peers) != 2 || verbose.Peers[1].Volumes[0].PeerClient != "yes" || verbose.Peers[0].Volumes[0].OutOfSyncKiB != 0 {
		t.Errorf("peers = %+v", verbose.Peers)
	}
}

func TestDRBDJSON(t *testing.T) {
	rs, truncated, err := ParseDRBDJSON(read(t, "drbd-json-ha-exporter-25.txt"))
	if err != nil || !truncated || len(rs) != 2 {
		t.Fatalf("got %d resources, truncated %v, %v; want 2, true, nil", len(rs), truncated, err)
	}
	r := rs[0]
	if r.Name != "1-single-0" || r.Role != "Primary" || r.Volumes[0].Minor != 2 || r.Volumes[0].Client != "no" ||
		r.Peers[0].Name != "SLE15-sp1-gm-drbd1145296-node2" || r.Peers[0].Volumes[0].PeerDisk != "UpToDate" || r.Peers[0].Volumes[0].Done != -1 {
		t.Errorf("resource 0 = %+v", r)
	}
	check(t, DiagnoseDRBD(rs, nil, "json"), nil)
	// The sample cut inside a string still gives what came before.
	rs, truncated, err = ParseDRBDJSON(parts(read(t, "drbd-6.txt"))[0])
	if err != nil || !truncated || len(rs) != 1 || rs[0].Peers[0].Volumes[0].Replication != "Established" {
		t.Fatalf("drbd-6: %+v %v %v", rs, truncated, err)
	}
	if _, _, err := ParseDRBDJSON([]byte("not json at all")); err == nil {
		t.Error("text that is not JSON: want an error")
	}
}

func TestProcDRBD(t *testing.T) {
	rs, version := ParseProcDRBD(read(t, "proc-drbd-84-cockpit-17042.txt"))
	if version != "8.4.11" || len(rs) != 2 {
		t.Fatalf("version %q, %d devices; want 8.4.11, 2", version, len(rs))
	}
	pv := rs[1].Peers[0].Volumes[0]
	if pv.Replication != "SyncTarget" || pv.Done != 28.9 || pv.OutOfSyncKiB != 1389772624 || rs[1].Volumes[0].Disk != "Inconsistent" {
		t.Errorf("minor 2 = %+v %+v", rs[1], pv)
	}
	check(t, DiagnoseDRBD(rs, nil, "/proc/drbd"), []want{
		{"FM-D8", "drbd minor 1", finding.Medium, map[string]string{"case": DRBDResync, "minor": "1", "replication": "SyncSource"}},
		{"FM-D8", "drbd minor 2", finding.Medium, map[string]string{"case": DRBDResync, "minor": "2"}},
	})
	// Moving or stalled: a second reading decides.
	later, _ := ParseProcDRBD(read(t, "proc-drbd-84-cockpit-17042.txt"))
	later[0].Peers[0].Volumes[0].Done = 18.4
	later[0].Peers[0].Volumes[0].OutOfSyncKiB -= 1 << 20
	fs := DiagnoseDRBD(later, rs, "/proc/drbd")
	if fs[0].Severity != finding.Medium || !strings.Contains(fs[0].Summary, "moving") {
		t.Errorf("a moving resync: %s %q", fs[0].Severity, fs[0].Summary)
	}
	if fs[1].Severity != finding.Catastrophic || !strings.Contains(fs[1].Summary, "stalled") {
		t.Errorf("a stalled resync with the only good copy on the peer: %s %q", fs[1].Severity, fs[1].Summary)
	}

	rs, _ = ParseProcDRBD(read(t, "proc-drbd-84-trinity-651.txt"))
	if len(rs) != 2 || rs[0].Node != "controller-2" || rs[1].Node != "controller-1" {
		t.Fatalf("trinity: %+v", rs)
	}
	check(t, DiagnoseDRBD(rs, nil, "/proc/drbd"), []want{
		{"FM-D8", "drbd minor 1", finding.Catastrophic, map[string]string{"case": DRBDStandAlone, "connection": "StandAlone", "disk_state": "UpToDate"}},
	})
	if _, v := ParseProcDRBD([]byte("version: 9.2.4 (api:2/proto:86-122)\nGIT-hash: x\n")); v != "9.2.4" {
		t.Errorf("DRBD 9 version = %q", v)
	}
}

func TestZpoolStatus(t *testing.T) {
	for _, c := range []struct {
		file string
		want []want
	}{
		{"zpool-status-7537-replacing.txt", []want{{"FM-C8", "zpool vz", finding.Catastrophic,
			map[string]string{"pool": "vz", "member": "ata-WDC_WD3001FFSX-68JNUN0_WD-WCC13RYDLSH9", "state": "OFFLINE"}}}},
		{"zpool-status-4070-was.txt", []want{{"FM-C8", "zpool ZFS01", finding.High,
			map[string]string{"member": "127286639182292558", "state": "UNAVAIL"}}}},
		{"zpool-status-8715-raidz2-unavail.txt", []want{{"FM-C8", "zpool storage", finding.High,
			map[string]string{"member": "sde", "state": "UNAVAIL", "device": "sde"}}}},
		{"zpool-status-5018-cksum.txt", []want{{"FM-C8", "zpool dstore1", finding.Medium, map[string]string{"member": "raidz1-0"}}}},
		{"zpool-status-4832-permanent.txt", []want{{"FM-C8", "zpool big", finding.High, map[string]string{"pool": "big"}}}},
		{"zpool-status-15932-abbrev.txt", []want{{"FM-C8", "zpool tank30", finding.High,
			map[string]string{"member": "scsi-35000c50094bacf9f", "state": "DEGRADED"}}}},
		{"zpool-status-3267-healthy-logs-cache.txt", nil},
		// raidz1 with one disk gone: the last copy is at risk.
		{"zpool-status-1754-raidz1-offline.txt", []want{{"FM-C8", "zpool data", finding.Catastrophic,
			map[string]string{"member": "B2", "state": "OFFLINE"}}}},
		{"zpool-status-17262-v23-unavail.txt", []want{{"FM-C8", "zpool Regression-Pool", finding.Catastrophic,
			map[string]string{"member": "wwn-0x50000394f803873c", "state": "REMOVED"}}}},
		// The vdev says ONLINE with a member UNAVAIL: the members count.
		{"zpool-status-3998-raidz1-unavail-online.txt", []want{{"FM-C8", "zpool rpool", finding.Catastrophic,
			map[string]string{"member": "17682433485448789979", "state": "UNAVAIL"}}}},
		{"zpool-status-unraid-2547-v23.txt", []want{{"FM-C8", "zpool storage", finding.High,
			map[string]string{"member": "11687508470009778260", "state": "UNAVAIL"}}}},
		// The capture ends before the faulted member: the pool's own
		// DEGRADED state is all there is.
		{"zpool-status-17472-v23-resilvered.txt", []want{{"FM-C8", "zpool HomeBackup", finding.High, map[string]string{"pool": "HomeBackup"}}}},
	} {
		t.Run(c.file, func(t *testing.T) {
			pools, _ := ParseZpoolStatus(read(t, c.file))
			if len(pools) != 1 {
				t.Fatalf("%d pools; want 1", len(pools))
			}
			check(t, DiagnoseZFS(pools, nil, time.Time{}, "zpool status"), c.want)
		})
	}
}

func TestZpoolStatusDetails(t *testing.T) {
	pools, _ := ParseZpoolStatus(read(t, "zpool-status-7537-replacing.txt"))
	p := pools[0]
	if p.ScanKind != "resilver" || !p.ScanRunning || p.ScanPercent != 66.46 || p.ScanToGo != "0 days 01:24:38" ||
		!p.ScanTime.Equal(time.Date(2018, 5, 12, 19, 45, 12, 0, time.UTC)) {
		t.Errorf("scan = %+v", p)
	}
	if len(p.Root.Children) != 3 || p.Root.Children[0].Children[0].Name != "replacing-0" || len(p.Root.Children[0].Children[0].Children) != 2 {
		t.Errorf("tree = %+v", p.Root)
	}
	pools, _ = ParseZpoolStatus(read(t, "zpool-status-unraid-2547-v23.txt"))
	if p := pools[0]; p.ScanPercent != 46.64 || p.ScanToGo != "07:58:49" || p.DataErrors != 1 || strings.Contains(p.Scan, "expand") {
		t.Errorf("2.3 scan: %+v", p)
	}
	pools, _ = ParseZpoolStatus(read(t, "zpool-status-3267-healthy-logs-cache.txt"))
	if len(pools[0].Sections) != 2 || pools[0].Sections[0].Name != "logs" || len(pools[0].Sections[1].Children) != 2 {
		t.Errorf("sections = %+v", pools[0].Sections)
	}
	pools, _ = ParseZpoolStatus(read(t, "zpool-status-15932-abbrev.txt"))
	if pools[0].Root.Cksum != 13_400_000 {
		t.Errorf("abbreviated counter 13.4M read as %d", pools[0].Root.Cksum)
	}
	pools, _ = ParseZpoolStatus(read(t, "zpool-status-4832-permanent.txt"))
	if pools[0].DataErrors != -1 || pools[0].Root.Write != 169 {
		t.Errorf("errors %d, write %d", pools[0].DataErrors, pools[0].Root.Write)
	}
}

func TestZpoolScrubAge(t *testing.T) {
	pools, _ := ParseZpoolStatus(read(t, "zpool-status-4070-was.txt"))
	pools[0].State, pools[0].Root = "ONLINE", nil
	pools[0].Scan, pools[0].ScanKind = "scrub repaired 0B in 00:05:33 with 0 errors on Mon Dec  7 06:23:52 2015", "scrub"
	fs := DiagnoseZFS(pools, nil, pools[0].ScanTime.Add(90*24*time.Hour), "zpool status")
	if len(fs) != 1 || fs[0].Severity != finding.Low || !strings.Contains(fs[0].Summary, "last scrubbed 90d") {
		t.Errorf("an old scrub: %+v", fs)
	}
	if fs := DiagnoseZFS(pools, nil, pools[0].ScanTime.Add(24*time.Hour), "zpool status"); len(fs) != 0 {
		t.Errorf("yesterday's scrub: %+v", fs)
	}
}

func TestZpoolList(t *testing.T) {
	us := ParseZpoolList(read(t, "zpool-list-netdata-18359.txt"))
	if len(us) != 1 || us[0].Name != "store" || us[0].Size != 9981503995904 || us[0].Cap != 30 || us[0].Health != "DEGRADED" {
		t.Errorf("got %+v", us)
	}
	// The scripted form doctor runs: tab-separated, no header.
	us = ParseZpoolList([]byte("rpool\t996432412672\t98817093632\t897615319040\t9\tONLINE\n"))
	if len(us) != 1 || us[0].Alloc != 98817093632 || us[0].Cap != 9 {
		t.Errorf("scripted: %+v", us)
	}
}

func TestMdstat(t *testing.T) {
	for _, c := range []struct {
		file string
		want []want
	}{
		{"mdstat-hetzner-failed.txt", []want{
			{"FM-C8", "md md0", finding.Catastrophic, map[string]string{"array": "/dev/md0", "member": "sda1", "state": "faulty", "device": "sda"}},
			{"FM-C8", "md md3", finding.Catastrophic, map[string]string{"member": "sda4"}},
			{"FM-C8", "md md1", finding.Catastrophic, map[string]string{"member": "sda2"}},
			{"FM-C8", "md md2", finding.Catastrophic, map[string]string{"member": "sda3"}},
		}},
		{"mdstat-recovery-wrapped.txt", []want{{"FM-C8", "md md0", finding.Catastrophic, map[string]string{"state": "missing"}}}},
		{"mdstat-raid6-recovery.txt", []want{{"FM-C8", "md md0", finding.Catastrophic, nil}}},
		{"mdstat-raid5-failed-node-exporter-261.txt", []want{{"FM-C8", "md md5", finding.Catastrophic, map[string]string{"member": "sdb1", "device": "sdb"}}}},
		{"mdstat-inactive-probert-125.txt", []want{{"FM-C8", "md md127", finding.High, map[string]string{"state": "inactive"}}}},
		{"mdstat-check-delayed-centreon-18.txt", nil},
		{"mdstat-raid0-nested-netdata-2195.txt", nil},
		{"mdstat-replacement-procfs-676.txt", nil},
	} {
		t.Run(c.file, func(t *testing.T) {
			arrays, _ := ParseMdstat(read(t, c.file))
			if len(arrays) == 0 {
				t.Fatal("no array parsed")
			}
			check(t, DiagnoseMD(arrays, "/proc/mdstat"), c.want)
		})
	}
	arrays, _ := ParseMdstat(read(t, "mdstat-recovery-wrapped.txt"))
	a := arrays[0]
	if a.Action != "recovery" || a.Percent != 0.4 || a.FinishMin != 23.8 || a.SpeedKiB != 1452 || a.Want != 2 || a.Have != 1 || a.Map != "_U" {
		t.Errorf("wrapped recovery line: %+v", a)
	}
	arrays, _ = ParseMdstat(read(t, "mdstat-check-delayed-centreon-18.txt"))
	if arrays[0].Pending != "DELAYED" || arrays[1].Action != "check" || arrays[1].Percent != 42.0 {
		t.Errorf("delayed and check: %+v", arrays)
	}
	arrays, _ = ParseMdstat(read(t, "mdstat-replacement-procfs-676.txt"))
	if arrays[0].Members[0].Flag != "R" || arrays[0].Members[1].Flag != "S" || arrays[0].Level != "raid5" {
		t.Errorf("flags: %+v", arrays[0].Members)
	}
}

func TestSmart(t *testing.T) {
	for _, c := range []struct {
		file string
		json bool
		want []want
	}{
		{"smartctl-json-scrutiny-smart-fail2.json.txt", true, []want{{"FM-C8", "disk sdc", finding.High, map[string]string{"device": "sdc", "state": "SMART FAILED"}}}},
		{"smartctl-json-scrutiny-smart-nvme-failed.json.txt", true, []want{{"FM-C8", "disk nvme0", finding.Medium, map[string]string{"device": "nvme0", "state": "media errors"}}}},
		{"smartctl-json-scrutiny-smart-scsi.json.txt", true, []want{{"FM-C8", "disk sdg", finding.Medium, map[string]string{"state": "sectors failing"}}}},
		{"smartctl-json-scrutiny-smart-ata.json.txt", true, nil},
		{"smartctl-json-scrutiny-smart-nvme.json.txt", true, nil},
		{"smartctl-json-vm-vda.txt", true, nil},
		{"smartctl-a-72-failed-scrutiny-448.txt", false, []want{{"FM-C8", "disk sdb", finding.High, map[string]string{"device": "sdb"}}}},
		{"smartctl-a-66-failed-napsty-102.txt", false, []want{{"FM-C8", "disk sdb", finding.High, map[string]string{"state": "SMART FAILED"}}}},
		{"smartctl-a-attrs-fastvps-10.txt", false, []want{{"FM-C8", "disk sda", finding.Medium, map[string]string{"state": "sectors failing"}}}},
		{"smartctl-attr-failing-now-smartmontools-163.txt", false, []want{{"FM-C8", "disk ?", finding.High, map[string]string{"state": "FAILING_NOW"}}}},
		{"smartctl-a-75-ata-bredos.txt", false, nil},
		{"smartctl-a-75-nvme-bredos.txt", false, nil},
	} {
		t.Run(c.file, func(t *testing.T) {
			var d SmartDisk
			if c.json {
				var err error
				if d, err = ParseSmartJSON(read(t, c.file)); err != nil {
					t.Fatal(err)
				}
			} else {
				d = ParseSmartText(read(t, c.file), "")
			}
			var got []finding.Finding
			if f, ok := DiagnoseSmart(d, "smartctl"); ok {
				got = append(got, f)
			}
			for i := range got {
				got[i].Key = finding.MakeKey(got[i].Mode, got[i].Subject)
			}
			check(t, got, c.want)
		})
	}
	d := ParseSmartText(read(t, "smartctl-a-75-ata-bredos.txt"), "")
	if d.Version != "7.5" || d.Model != "TOSHIBA DT01ACA050" || len(d.Attrs) != 17 || d.Attrs[4].ID != 5 || !d.Attrs[4].Prefail || d.Attrs[7].Raw != 65606 {
		t.Errorf("7.5 text: %+v", d)
	}
	d = ParseSmartText(read(t, "smartctl-a-75-nvme-bredos.txt"), "/dev/nvme0")
	if d.NVMe == nil || d.NVMe.AvailableSpare != 100 || d.NVMe.SpareThreshold != 32 || d.Protocol != "NVMe" {
		t.Errorf("NVMe text: %+v %+v", d, d.NVMe)
	}
	j, _ := ParseSmartJSON(read(t, "smartctl-json-scrutiny-smart-fail2.json.txt"))
	if j.Version != "7.1" || j.Attrs[4].WhenFailed != "now" || j.Attrs[4].Raw != 1975 {
		t.Errorf("7.1 JSON: %+v", j.Attrs[4])
	}
}

func TestSmartScan(t *testing.T) {
	devs, err := ParseSmartScan(read(t, "smartctl-smartctl_scan_simple.json.txt"))
	if err != nil || len(devs) != 7 || devs[0] != (ScanDevice{"/dev/sda", "scsi"}) {
		t.Errorf("scan: %+v %v", devs, err)
	}
	// A VM with only a virtio disk: smartctl lists nothing.
	devs, err = ParseSmartScan(read(t, "smartctl-scan-json-vm.txt"))
	if err != nil || len(devs) != 0 {
		t.Errorf("VM scan: %+v %v", devs, err)
	}
}

func TestDRBDMountFull(t *testing.T) {
	f, ok := DiagnoseDRBDMount(DRBDMount{Device: "/dev/drbd8", Mountpoint: "/var/lib/docker/volumes/ldap_data/_data", Resource: "ldap_data", Used: 93, Size: 100})
	if !ok || f.Mode != "FM-D9" || f.Severity != finding.Medium || f.Subject != "drbd volume ldap_data" ||
		f.Evidence.Vars["volume"] != "ldap_data" || f.Evidence.Vars["resource"] != "ldap_data" || f.Evidence.Vars["used_pct"] != "93" {
		t.Errorf("93%%: %+v", f)
	}
	if _, ok := DiagnoseDRBDMount(DRBDMount{Device: "/dev/drbd8", Mountpoint: "/srv", Used: 80, Size: 100}); ok {
		t.Error("80% is not a finding")
	}
	for src, want := range map[string]bool{"/dev/drbd8": true, "/dev/drbd/by-res/r0/0": true, "/dev/sda1": false, "/dev/drbd": false} {
		if _, _, ok := DRBDDevice(src); ok != want {
			t.Errorf("DRBDDevice(%q) = %v; want %v", src, ok, want)
		}
	}
}

// What people paste: Windows line ends, colours, prompts, trailing
// spaces, a line cut in the middle.
func TestPasteTolerance(t *testing.T) {
	seed := parts(read(t, "drbd-2.txt"))[1]
	mangled := strings.ReplaceAll(string(seed), "\n", "  \r\n")
	mangled = strings.Replace(mangled, "disk:Outdated", "\x1b[1;31mdisk:Outdated\x1b[0m", 1)
	rs, _ := ParseDRBDStatus([]byte(mangled))
	check(t, DiagnoseDRBD(LatestViews(rs), nil, "drbdadm status"), []want{{"FM-D8", "drbd ボリューム名", finding.Catastrophic, map[string]string{"case": DRBDAllOutdated}}})

	md := "root@pve:~# cat /proc/mdstat\r\nPersonalities : [raid1] \r\nmd0 : active raid1 sdb1[1] sda1[0](F)\r\n      12581816 blocks super 1.2 [2/1] [_U]\r\n"
	arrays, _ := ParseMdstat([]byte(md))
	check(t, DiagnoseMD(arrays, "/proc/mdstat"), []want{{"FM-C8", "md md0", finding.Catastrophic, map[string]string{"member": "sda1"}}})

	zb := read(t, "zpool-status-8715-raidz2-unavail.txt")
	cut := zb[:strings.Index(string(zb), "sdf ")]
	pools, _ := ParseZpoolStatus([]byte(strings.ReplaceAll(string(cut), "\n", "\r\n")))
	check(t, DiagnoseZFS(pools, nil, time.Time{}, "zpool status"), []want{{"FM-C8", "zpool storage", finding.High, map[string]string{"member": "sde"}}})
}

// Every capture in testdata is read by its parser and gives something.
func TestEveryCaptureParses(t *testing.T) {
	files, _ := filepath.Glob("testdata/*")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		n := filepath.Base(f)
		if !strings.HasPrefix(string(b), "# source: ") {
			t.Errorf("%s: first line is not # source: URL", n)
		}
		got := 0
		switch {
		case strings.HasPrefix(n, "drbd-5"):
			continue // kernel log lines: read by SinceFromKernel
		case strings.HasPrefix(n, "drbd-7"):
			rs, _ := ParseDRBDEvents2(b)
			got = len(rs)
		case strings.HasPrefix(n, "drbd-6"), strings.HasPrefix(n, "drbd-json"):
			rs, _, err := ParseDRBDJSON(b)
			if err != nil {
				t.Errorf("%s: %v", n, err)
			}
			got = len(rs)
		case strings.HasPrefix(n, "drbd"):
			rs, _ := ParseDRBDStatus(b)
			got = len(rs)
		case strings.HasPrefix(n, "proc-drbd"):
			rs, _ := ParseProcDRBD(b)
			got = len(rs)
		case strings.HasPrefix(n, "zpool-status"):
			ps, _ := ParseZpoolStatus(b)
			got = len(ps)
		case strings.HasPrefix(n, "zpool-list"):
			got = len(ParseZpoolList(b))
		case strings.HasPrefix(n, "mdstat"):
			as, _ := ParseMdstat(b)
			got = len(as)
		case strings.Contains(n, "scan"):
			devs, err := ParseSmartScan(b)
			if err != nil {
				t.Errorf("%s: %v", n, err)
			}
			got = len(devs) + 1 // a scan may rightly list nothing
		case strings.HasPrefix(n, "smartctl-json"):
			d, err := ParseSmartJSON(b)
			if err != nil {
				t.Errorf("%s: %v", n, err)
			}
			if d.Version != "" || d.Passed != nil {
				got = 1
			}
		case strings.HasPrefix(n, "smartctl-"):
			d := ParseSmartText(b, "")
			if d.Passed != nil || len(d.Attrs) > 0 {
				got = 1
			}
		default:
			t.Errorf("%s: no parser claims this capture", n)
			continue
		}
		if got == 0 {
			t.Errorf("%s: parsed nothing", n)
		}
	}
}

// The kernel's state-change lines date a finding.
func TestSinceFromKernel(t *testing.T) {
	// drbd-5's second excerpt: the peer is lost and the disk goes Outdated.
	var kernel []finding.Line
	base := time.Date(2021, 1, 18, 11, 20, 1, 0, time.UTC)
	for i, l := range strings.Split(string(parts(read(t, "drbd-5.txt"))[1]), "\n") {
		if _, msg, ok := strings.Cut(l, "] "); ok {
			ts := base.Add(time.Duration(i) * time.Millisecond)
			kernel = append(kernel, finding.Line{Time: &ts, Source: "kernel", Text: msg})
		}
	}
	f := finding.Finding{Mode: "FM-D8", Evidence: finding.Evidence{Vars: map[string]string{
		"case": DRBDAllOutdated, "resource": "pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71", "disk_state": "Outdated"}}}
	SinceFromKernel(&f, kernel)
	if f.Since == nil || !strings.Contains(f.Evidence.Lines[0].Text, "disk( UpToDate -> Outdated )") {
		t.Fatalf("since %v, lines %v", f.Since, f.Evidence.Lines)
	}
	// Another resource, or another state, is not dated by these lines.
	g := finding.Finding{Mode: "FM-D8", Evidence: finding.Evidence{Vars: map[string]string{
		"case": DRBDStandAlone, "resource": "pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71", "connection": "StandAlone"}}}
	SinceFromKernel(&g, kernel)
	h := finding.Finding{Mode: "FM-D8", Evidence: finding.Evidence{Vars: map[string]string{
		"case": DRBDAllOutdated, "resource": "pvc-1ed", "disk_state": "Outdated"}}}
	SinceFromKernel(&h, kernel)
	if g.Since != nil || h.Since != nil {
		t.Errorf("dated wrongly: %v %v", g.Since, h.Since)
	}
}

func TestDRBDEvents2(t *testing.T) {
	p := parts(read(t, "drbd-7.txt"))
	rs, skipped := ParseDRBDEvents2(p[0])
	if len(rs) != 1 || skipped != 1 { // the fixture's "# source:" line
		t.Fatalf("%d resources, %d skipped; want 1, 1", len(rs), skipped)
	}
	r := rs[0]
	if r.Name != "pvc-0a2826c9-7108-11e9-8f74-0026b954ca4c" || r.Role != "Secondary" || r.Volumes[0].Minor != 1016 ||
		r.Volumes[0].Disk != "UpToDate" || r.Peers[0].Name != "kubelet-b" || r.Peers[0].Volumes[0].PeerDisk != "UpToDate" {
		t.Errorf("got %+v", r)
	}
	check(t, DiagnoseDRBD(rs, nil, "drbdsetup events2"), nil)
	// Older utils: no peer-node-id; a SyncSource with 196 GiB out of sync.
	rs, _ = ParseDRBDEvents2(p[1])
	check(t, DiagnoseDRBD(rs, nil, "drbdsetup events2"), []want{{"FM-D8", "drbd test0", finding.Medium,
		map[string]string{"case": DRBDResync, "peer": "peer", "replication": "SyncSource", "peer_disk": "Inconsistent"}}})
	if rs[0].Peers[0].Volumes[0].OutOfSyncKiB != 205655500 {
		t.Errorf("out-of-sync = %d", rs[0].Peers[0].Volumes[0].OutOfSyncKiB)
	}
	// drbd-reactor's inputs: newer fields, and a device still Attaching.
	rs, _ = ParseDRBDEvents2(p[2])
	if len(rs) != 1 || rs[0].Volumes[0].Disk != "Attaching" || !rs[0].Suspended {
		t.Errorf("drbd-reactor lines: %+v", rs)
	}
}
