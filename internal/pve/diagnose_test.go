package pve

import (
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/logline"
)

func liveScope(t *testing.T, node string) Scope {
	conf, err := ParseCorosyncConf(fixture(t, "corosync-conf-live.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return Scope{Node: node, Cluster: conf.Cluster, Conf: conf, Now: time.Date(2026, 12, 2, 1, 30, 0, 0, time.UTC)}
}

func TestDiagnoseQuorum(t *testing.T) {
	for _, c := range []struct {
		file, node string
		sev        finding.Severity
		missing    string
	}{
		{"corosync-quorumtool-q1-healthy.txt", "pve1", 0, ""},
		{"corosync-quorumtool-q1-two-of-three.txt", "pve1", finding.High, "pve3"},
		{"corosync-quorumtool-q3-alone.txt", "pve3", finding.Catastrophic, "pve1,pve2"},
		{"corosync-quorumtool-q1-alone.txt", "pve1", finding.Catastrophic, "pve2,pve3"},
	} {
		q, err := ParseQuorum(fixture(t, c.file))
		if err != nil {
			t.Fatal(err)
		}
		fs := DiagnoseQuorum(q, liveScope(t, c.node), time.Time{})
		if c.sev == 0 {
			if len(fs) != 0 {
				t.Errorf("%s: %+v", c.file, fs)
			}
			continue
		}
		if len(fs) != 1 {
			t.Fatalf("%s: %d findings", c.file, len(fs))
		}
		f := fs[0]
		if f.Mode != "FM-D5" || f.Severity != c.sev || f.Subject != "cluster pvelive" || f.Key != "FM-D5/cluster pvelive" ||
			f.Evidence.Vars["missing"] != c.missing || f.Evidence.Vars["cluster"] != "pvelive" || f.Evidence.Vars["expected_votes"] != "3" {
			t.Errorf("%s: %+v", c.file, f)
		}
	}
	// A quorate 4-node cluster with a QDevice and two nodes down: one
	// more lost vote blocks it.
	q, _ := ParseQuorum(fixture(t, "proxmox-2.txt"))
	fs := DiagnoseQuorum(q, Scope{}, time.Time{})
	if len(fs) != 1 || fs[0].Severity != finding.High || !strings.Contains(fs[0].Summary, "1 vote(s) missing") {
		t.Errorf("qdevice: %+v", fs)
	}
}

func TestDiagnoseClusterLog(t *testing.T) {
	evs := ParseClusterLog(fixture(t, "seed-003-journal.txt"), matcher(t, logline.Context{}))
	fs := DiagnoseClusterLog(TrendOf(evs, time.Now(), 24*time.Hour), Scope{Node: "pve5", Cluster: "c"})
	if len(fs) != 1 {
		t.Fatalf("%+v", fs)
	}
	f := fs[0]
	if f.Mode != "FM-D6" || f.Severity != finding.Catastrophic || f.Subject != "corosync network of pve5" || f.Evidence.Vars["peer"] != "8" || f.Evidence.Vars["link"] != "0" || f.Evidence.Vars["token_losses"] != "11" {
		t.Errorf("seed 003: %+v", f)
	}
	sc := liveScope(t, "pve1")
	ctx := logline.Context{Now: sc.Now, Location: time.UTC}
	// Only the first cut of node 3, a minute in: high, peer pve3.
	text := fixture(t, "corosync-log-live.txt")
	text = text[:strings.Index(text, "Dec 02 01:28:09")]
	fs = DiagnoseClusterLog(TrendOf(ParseClusterLog(text, matcher(t, ctx)), sc.Now, 24*time.Hour), sc)
	if len(fs) != 1 || fs[0].Severity != finding.High || fs[0].Evidence.Vars["peer_name"] != "pve3" || fs[0].Since == nil {
		t.Errorf("live: %+v", fs)
	}
	// The healthy start and join, then one late token of the same
	// capture and nothing else (what a starved corosync logs on a loaded
	// machine): low, not a page.
	full := fixture(t, "corosync-log-live.txt")
	late := full[strings.Index(full, "Dec 02 01:28:06 notice  [TOTEM ] Token has not been received"):]
	late = late[:strings.Index(late, "\n")+1]
	fs = DiagnoseClusterLog(TrendOf(ParseClusterLog(full[:strings.Index(full, "Dec 02 01:28:06")]+late, matcher(t, ctx)), sc.Now, 24*time.Hour), sc)
	if len(fs) != 1 || fs[0].Severity != finding.Low || !strings.Contains(fs[0].Summary, "1 token losses") {
		t.Errorf("one late token: %+v", fs)
	}
}

func TestDiagnoseHA(t *testing.T) {
	s, _ := ParseHAStatus(fixture(t, "ha-manager-status-dead-lrm.txt"))
	fs := DiagnoseHA(s, Scope{Cluster: "c"})
	if len(fs) != 1 || fs[0].Mode != "FM-D7" || fs[0].Subject != "node pve2" || fs[0].Evidence.Vars["node"] != "pve2" {
		t.Errorf("%+v", fs)
	}
	// The same node dead and being fenced: one finding, the fence.
	s, _ = ParseHAStatus("quorum OK\nmaster pve1 (active, x)\nlrm pve2 (old timestamp - dead?, x)\nservice vm:100 (pve2, fence)\n")
	if fs := DiagnoseHA(s, Scope{}); len(fs) != 1 || fs[0].Severity != finding.Catastrophic || fs[0].Subject != "node pve2" {
		t.Errorf("dead and fenced: %+v", fs)
	}
	for _, f := range []string{"ha-manager-status-maintenance.txt", "ha-manager-status-2016.txt", "ha-manager-status-watchdog.txt", "ha-manager-status-docs-pve9.txt"} {
		s, _ := ParseHAStatus(fixture(t, f))
		if fs := DiagnoseHA(s, Scope{}); len(fs) != 0 {
			t.Errorf("%s: %+v", f, fs)
		}
	}
}

func haConfig(t *testing.T, resources, replication string) *HAConfig {
	t.Helper()
	mustSections := func(s string) []Section {
		secs, err := ParseSections(s)
		if err != nil {
			t.Fatal(err)
		}
		return secs
	}
	return &HAConfig{
		Resources:   mustSections(resources),
		Groups:      mustSections(fixture(t, "groups-cfg-docs.txt")),
		Replication: mustSections(replication),
		Storage:     mustSections("zfspool: local-zfs\n\tpool rpool/data\n\tcontent images,rootdir\n"),
		Guests:      map[string]Guest{"100": {ID: "100", Kind: "qemu", Node: "node1", Conf: ParseGuestConfig(fixture(t, "qemu-server-100-docs.txt"))}},
		Nodes:       []string{"node1", "node2", "node3", "node4"},
	}
}

func TestDiagnoseHAReplication(t *testing.T) {
	// mygroup1 is node1:2, node2:1, node3:1, node4: after node1, HA picks
	// node2 or node3; the VM is replicated to node2 only.
	c := haConfig(t, "vm: 100\n\tgroup mygroup1\n\tstate started\n", "local: 100-0\n\ttarget node2\n\tschedule */15\n")
	fs := DiagnoseHAReplication(c, Scope{Cluster: "c"})
	if len(fs) != 1 {
		t.Fatalf("%+v", fs)
	}
	v := fs[0].Evidence.Vars
	if fs[0].Mode != "FM-D3" || fs[0].Severity != finding.Catastrophic || fs[0].Subject != "guest 100" ||
		v["ha_preferred"] != "node3" || v["repl_target"] != "node2" || v["repl_job"] != "100-0" || v["ha_group"] != "mygroup1" || v["node"] != "node1" {
		t.Errorf("%+v", fs[0])
	}
	// Replicated to both: no finding.
	c = haConfig(t, "vm: 100\n\tgroup mygroup1\n", "local: 100-0\n\ttarget node2\nlocal: 100-1\n\ttarget node3\n")
	if fs := DiagnoseHAReplication(c, Scope{}); len(fs) != 0 {
		t.Errorf("replicated to both: %+v", fs)
	}
	// No replication at all, no group: every other node lacks the disks.
	c = haConfig(t, "vm: 100\n", "")
	if fs := DiagnoseHAReplication(c, Scope{}); len(fs) != 1 || fs[0].Evidence.Vars["ha_preferred"] != "node2" || !strings.Contains(fs[0].Summary, "not replicated anywhere") {
		t.Errorf("no replication: %+v", fs)
	}
	// PVE 9: a node-affinity rule places it.
	c = haConfig(t, "vm: 100\n", "local: 100-0\n\ttarget node2\n")
	c.Rules, _ = ParseSections("node-affinity: db\n\tresources vm:100\n\tnodes node1:2,node2:1\n\tstrict 0\n")
	if fs := DiagnoseHAReplication(c, Scope{}); len(fs) != 0 {
		t.Errorf("rule prefers the replica: %+v", fs)
	}
}

func TestDiagnoseLocksAndServices(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	locks := []GuestLock{
		{Guest: "105", Kind: "qemu", Node: "pve1", Lock: "backup", Since: now.Add(-26 * time.Hour)},
		{Guest: "110", Kind: "lxc", Node: "pve1", Lock: "snapshot-delete", Since: now.Add(-10 * time.Minute)},
		{Guest: "111", Kind: "qemu", Node: "pve1", Lock: "suspended", Since: now.Add(-100 * time.Hour)},
	}
	fs := DiagnoseLocks(locks, Scope{Now: now})
	if len(fs) != 1 || fs[0].Subject != "guest 105" || fs[0].Evidence.Vars["held_for"] != "1d 2h" || fs[0].Severity != finding.Low {
		t.Errorf("%+v", fs)
	}
	units := ParseUnitStates("Id=pveproxy.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\n\nId=pve-cluster.service\nLoadState=loaded\nActiveState=inactive\nSubState=dead\n\nId=spiceproxy.service\nLoadState=loaded\nActiveState=active\nSubState=running\n\nId=pve-ha-crm.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n")
	fs = DiagnoseServices(units, Scope{Node: "pve1"})
	if len(fs) != 1 || fs[0].Evidence.Vars["service"] != "pve-cluster" || len(fs[0].Evidence.Consumers) != 2 {
		t.Errorf("%+v", fs)
	}
}
