package doctor

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/finding"
)

// Each Proxmox VE / corosync scenario under testdata/snapshots/pve-* (see
// PVE-SOURCES.md there) replays into exactly its expected finding, whose
// runbook is filled in with the scenario's real names and offers ready
// recovery steps; the healthy cluster gives none.
func TestReplayPVEScenarios(t *testing.T) {
	book := builtinBook(t)
	for _, c := range []struct {
		dir     string
		mode    string
		sev     finding.Severity
		subject string
		// vars the finding must carry, and a ready step it must offer.
		vars  map[string]string
		ready string
	}{
		{dir: "pve-healthy"},
		{"pve-d1-lock", "FM-D1", finding.Low, "guest 105", map[string]string{"guest": "105", "guest_kind": "qemu", "lock": "backup", "held_for": "1d 1h", "node": "pve1", "cluster": "pvelive"}, "qm unlock 105"},
		{"pve-d2-services", "FM-D2", finding.Medium, "Proxmox services on pve1", map[string]string{"service": "pvestatd", "node": "pve1", "cluster": "pvelive"}, "systemctl restart pvestatd"},
		{"pve-d3-ha-replication", "FM-D3", finding.Catastrophic, "guest 100", map[string]string{"guest": "100", "node": "pve1", "repl_job": "100-0", "repl_target": "pve2", "ha_group": "prefer-pve1", "ha_preferred": "pve3", "placement": "group"}, "ha-manager groupset prefer-pve1 --nodes pve1:2,pve2:1"},
		{"pve-d4-replication", "FM-D4", finding.Catastrophic, "replication job 100-0", map[string]string{"guest": "100", "repl_job": "100-0", "repl_target": "pve2", "dataset": "rpool/data/vm-100-disk-1",
			"error": "cannot receive incremental stream: most recent snapshot of rpool/data/vm-100-disk-1 does not match incremental source"}, "ssh pve2 zfs destroy -r rpool/data/vm-100-disk-1"},
		{"pve-d5-quorum-lost", "FM-D5", finding.Catastrophic, "cluster pvelive", map[string]string{"total_votes": "1", "expected_votes": "3", "quorum": "2", "missing": "pve1,pve2", "node": "pve3", "cluster": "pvelive"}, "systemctl restart corosync"},
		{"pve-d6-network", "FM-D6", finding.High, "corosync network of pve1", map[string]string{"node": "pve1", "peer": "2", "peer_name": "pve2", "link": "0", "token_losses": "2", "cluster": "pvelive"}, "ha-manager crm-command node-maintenance enable pve1"},
		{"pve-d7-fenced", "FM-D7", finding.Catastrophic, "node pve1 fenced", map[string]string{"node": "pve1", "quorum_lost_at": "2026-12-02T01:28:32Z", "cluster": "pvelive"}, "ha-manager crm-command node-maintenance enable pve1"},
		{"pve-unclean-not-ha", "FM-C1", finding.Medium, "previous boot unclean", nil, ""},
		{"pve-c6-hung-mount", "FM-C6", finding.High, "/mnt/pve/truenas", map[string]string{"storage": "truenas", "mount": "/mnt/pve/truenas", "server": "192.168.1.10"}, "umount -nlf /mnt/pve/truenas"},
		{"pve-c6-storage", "FM-C6", finding.High, "storage drbdpool", map[string]string{"storage": "drbdpool", "node": "pve1"}, "pvesm set drbdpool --disable 1"},
	} {
		t.Run(c.dir, func(t *testing.T) {
			d, err := Diagnose(t.Context(), Options{From: filepath.Join("testdata", "snapshots", c.dir)})
			if err != nil {
				t.Fatal(err)
			}
			if c.mode == "" {
				if len(d.Findings) != 0 {
					t.Fatalf("healthy cluster: %+v", d.Findings)
				}
				return
			}
			if len(d.Findings) != 1 {
				t.Fatalf("%d findings, want exactly one: %+v", len(d.Findings), d.Findings)
			}
			f := d.Findings[0]
			if f.Mode != c.mode || f.Severity != c.sev || f.Subject != c.subject || f.Key != finding.MakeKey(c.mode, c.subject) {
				t.Errorf("got %s %s %q; want %s %s %q", f.Mode, f.Severity, f.Subject, c.mode, c.sev, c.subject)
			}
			for k, v := range c.vars {
				if got := f.Evidence.Vars[k]; got != v {
					t.Errorf("var %s = %q; want %q", k, got, v)
				}
			}
			if c.ready == "" {
				return
			}
			rb := book.Get(f.Runbook)
			if rb == nil {
				t.Fatalf("no runbook %s", f.Runbook)
			}
			steps, err := rb.Steps("Recover", f.Evidence.Vars)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range steps {
				if s.Ready && strings.Contains(strings.Join(s.Lines, "\n"), c.ready) {
					found = true
				}
			}
			if !found {
				t.Errorf("no ready step %q in %+v", c.ready, steps)
			}
		})
	}
}
