package pve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/logline"
	"github.com/hinomi/hinomi/internal/signatures"
)

// matcher is the built-in signature catalogue dating lines with ctx.
func matcher(t testing.TB, ctx logline.Context) *signatures.Matcher {
	t.Helper()
	m, err := LogMatcher(nil, ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fixture reads testdata/NAME without its "# source:" line.
func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "# source:") {
		t.Fatalf("%s: first line is not a # source: line", name)
	}
	_, rest, _ := strings.Cut(s, "\n")
	return rest
}

// part returns the excerpt of a multi-source fixture that starts after the
// "## " line containing marker (or the first excerpt when marker is "").
func part(t testing.TB, name, marker string) string {
	t.Helper()
	s := fixture(t, name)
	chunks := strings.Split(s, "\n## ")
	if marker == "" {
		return chunks[0]
	}
	for _, c := range chunks[1:] {
		if strings.Contains(strings.SplitN(c, "\n", 2)[0], marker) {
			_, body, _ := strings.Cut(c, "\n")
			return body
		}
	}
	t.Fatalf("%s: no excerpt %q", name, marker)
	return ""
}

func TestParseQuorum(t *testing.T) {
	for _, c := range []struct {
		file                               string
		quorate, blocked                   bool
		expected, total, quorum, nMembers  int
		local                              uint32
		localName, cluster, flags, qdevice string
	}{
		{"proxmox-1.txt", true, false, 2, 2, 2, 2, 1, "192.168.10.201", "calotech", "Quorate", ""},
		{"proxmox-2.txt", true, false, 4, 3, 3, 3, 2, "192.168.50.218", "", "Quorate Qdevice", "A,V,NMW"},
		{"pvecm-status-pve9.txt", true, false, 3, 3, 2, 3, 3, "192.168.18.133", "myclust", "Quorate", ""},
		{"corosync-quorumtool-q1-healthy.txt", true, false, 3, 3, 2, 3, 1, "pve1", "", "Quorate", ""},
		{"corosync-quorumtool-q1-two-of-three.txt", true, false, 3, 2, 2, 2, 1, "pve1", "", "Quorate", ""},
		{"corosync-quorumtool-q3-alone.txt", false, true, 3, 1, 2, 1, 3, "pve3", "", "", ""},
		{"corosync-quorumtool-q1-alone.txt", false, true, 3, 1, 2, 1, 1, "pve1", "", "", ""},
		{"corosync-quorumtool-suse-2node.txt", true, false, 2, 2, 1, 2, 1084783549, "s153cl01.cl0.example.com", "", "2Node Quorate WaitForAll", ""},
		{"pcs-quorum-status-openshift.txt", true, false, 2, 2, 1, 2, 1, "master-0", "", "2Node Quorate WaitForAll", "NR"},
	} {
		t.Run(c.file, func(t *testing.T) {
			q, err := ParseQuorum(fixture(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if q.Quorate != c.quorate || !q.HasQuorate || q.Blocked != c.blocked {
				t.Errorf("quorate %v (known %v) blocked %v; want %v, %v", q.Quorate, q.HasQuorate, q.Blocked, c.quorate, c.blocked)
			}
			if q.ExpectedVotes != c.expected || q.TotalVotes != c.total || q.QuorumVotes != c.quorum {
				t.Errorf("votes %d/%d need %d; want %d/%d need %d", q.TotalVotes, q.ExpectedVotes, q.QuorumVotes, c.total, c.expected, c.quorum)
			}
			if len(q.Members) != c.nMembers {
				t.Fatalf("members %+v; want %d", q.Members, c.nMembers)
			}
			if q.LocalID != c.local || q.Cluster != c.cluster || strings.Join(q.Flags, " ") != c.flags {
				t.Errorf("local %d cluster %q flags %q", q.LocalID, q.Cluster, q.Flags)
			}
			var local *Member
			for i := range q.Members {
				if q.Members[i].Local {
					local = &q.Members[i]
				}
			}
			if local == nil || local.Name != c.localName || local.NodeID != c.local {
				t.Errorf("local member %+v; want %s (%d)", local, c.localName, c.local)
			}
			if q.Members[0].QDevice != c.qdevice {
				t.Errorf("qdevice column %q; want %q", q.Members[0].QDevice, c.qdevice)
			}
			if strings.Contains(c.flags, "Qdevice") && !q.Members[len(q.Members)-1].IsQDevice() {
				t.Errorf("last row %+v is not the Qdevice", q.Members[len(q.Members)-1])
			}
		})
	}
	if _, err := ParseQuorum("Quorate: whatever\n"); err != nil {
		t.Errorf("a lone Quorate line: %v", err)
	}
	if _, err := ParseQuorum("Cannot initialize CMAP service\n"); err == nil {
		t.Error("corosync's error text parsed as quorum information")
	}
}

// The same capture pasted with CRLF, ANSI colours and truncated after the
// Quorum line still says "not quorate, 1 of 3".
func TestParseQuorumMessyPaste(t *testing.T) {
	s := fixture(t, "corosync-quorumtool-q3-alone.txt")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	s = strings.Replace(s, "Quorate:", "\x1b[1mQuorate:\x1b[0m", 1)
	s = s[:strings.Index(s, "Flags:")]
	q, err := ParseQuorum(s)
	if err != nil {
		t.Fatal(err)
	}
	if q.Quorate || !q.Blocked || q.TotalVotes != 1 || q.ExpectedVotes != 3 {
		t.Errorf("got %+v", q)
	}
}

func TestParseCorosyncConfAndMissing(t *testing.T) {
	conf, err := ParseCorosyncConf(fixture(t, "corosync-conf-live.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if conf.Cluster != "pvelive" || len(conf.Nodes) != 3 || conf.Nodes[2].Name != "pve3" || conf.Nodes[2].Addrs[0] != "198.18.7.3" {
		t.Fatalf("got %+v", conf)
	}
	q, _ := ParseQuorum(fixture(t, "corosync-quorumtool-q1-two-of-three.txt"))
	m := MissingNodes(q, conf)
	if len(m) != 1 || m[0].Name != "pve3" {
		t.Errorf("missing %+v; want pve3", m)
	}
}

func TestParseHAStatus(t *testing.T) {
	for _, c := range []struct {
		file          string
		master        string
		lrms, svcs    int
		dead, fencing string
	}{
		{"ha-manager-status-maintenance.txt", "pve03", 3, 5, "", ""},
		{"ha-manager-status-2016.txt", "proxmox01", 2, 4, "", ""},
		{"ha-manager-status-watchdog.txt", "petunia", 3, 9, "", "armed (CRM watchdog active)"},
		{"ha-manager-status-dead-lrm.txt", "pve1", 1, 1, "pve2", ""},
	} {
		s, err := ParseHAStatus(fixture(t, c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if s.Master != c.master || len(s.LRMs) != c.lrms || len(s.Services) != c.svcs || !s.QuorumOK() || s.Fencing != c.fencing {
			t.Errorf("%s: %+v", c.file, s)
		}
		dead := ""
		for _, l := range s.LRMs {
			if l.Dead() {
				dead = l.Node
			}
		}
		if dead != c.dead {
			t.Errorf("%s: dead lrm %q; want %q", c.file, dead, c.dead)
		}
	}
	s, _ := ParseHAStatus(fixture(t, "ha-manager-status-watchdog.txt"))
	if l := s.LRMs[0]; l.State != "active" || l.Watchdog != "watchdog active" || l.Time != "Mon Jun  8 15:31:01 2026" {
		t.Errorf("lrm %+v", l)
	}
	if sv := s.Services[0]; sv.SID != "vm:10010" || sv.Node != "dalia" || sv.State != "started" {
		t.Errorf("service %+v", sv)
	}
	s, _ = ParseHAStatus(fixture(t, "ha-manager-status-maintenance.txt"))
	if s.LRMs[0].State != "maintenance mode" {
		t.Errorf("maintenance lrm %+v", s.LRMs[0])
	}
}

func TestParseReplStatus(t *testing.T) {
	jobs, err := ParseReplStatus(fixture(t, "pvesr-status-ok.txt"), time.UTC)
	if err != nil || len(jobs) != 6 {
		t.Fatalf("%d jobs, %v", len(jobs), err)
	}
	j := jobs[3]
	if j.ID != "146-0" || j.Guest != "146" || !j.Enabled || j.Target != "pve1" || j.FailCount != 0 || j.State != "OK" || j.Failed() ||
		!j.LastSync.Equal(time.Date(2024, 12, 18, 19, 30, 4, 0, time.UTC)) || j.Duration != "3.77723" {
		t.Errorf("job %+v", j)
	}
	jobs, err = ParseReplStatus(fixture(t, "pvesr-status-first-sync.txt"), time.UTC)
	if err != nil || len(jobs) != 3 {
		t.Fatalf("%d jobs, %v", len(jobs), err)
	}
	if !jobs[0].LastSync.IsZero() || jobs[0].NextSync != "pending" || jobs[1].State != "SYNCING" || jobs[1].Failed() || jobs[2].LastSync.IsZero() {
		t.Errorf("jobs %+v", jobs)
	}
	jobs, err = ParseReplStatus(fixture(t, "pvesr-status-quoted.txt"), time.UTC)
	if err != nil || len(jobs) != 2 || jobs[0].Target != "pve-ksy" || jobs[0].State != "SYNCING" {
		t.Fatalf("quoted: %+v, %v", jobs, err)
	}
}

// A failed job's State is the error text, and zfs wraps its error in two
// lines (samples/proxmox-11.txt): the parser joins them. The row is built
// around that real error text in pvesr's own column layout.
func TestParseReplStatusWrappedError(t *testing.T) {
	zfsErr := part(t, "proxmox-11.txt", "third source")
	zfsErr = strings.TrimSpace(zfsErr)
	header := strings.SplitN(fixture(t, "pvesr-status-ok.txt"), "\n", 2)[0]
	text := header + "\n100-0      Yes        local/pve2            2024-12-18_06:00:00              pending   3.1          3 " + zfsErr + "\n"
	jobs, err := ParseReplStatus(text, time.UTC)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("%+v, %v", jobs, err)
	}
	want := "cannot receive incremental stream: most recent snapshot of pool00/dataset01_a does not match incremental source"
	if j := jobs[0]; !j.Failed() || j.FailCount != 3 || j.State != want {
		t.Errorf("job %+v; want state %q", j, want)
	}
	fs := DiagnoseReplication(jobs, Scope{Now: time.Date(2024, 12, 18, 12, 0, 0, 0, time.UTC), Cluster: "c"})
	if len(fs) != 1 || fs[0].Evidence.Vars["dataset"] != "pool00/dataset01_a" || fs[0].Evidence.Vars["repl_target"] != "pve2" || fs[0].Since == nil {
		t.Errorf("findings %+v", fs)
	}
}

func TestParseStorageStatus(t *testing.T) {
	st, err := ParseStorageStatus(part(t, "proxmox-6.txt", ""))
	if err != nil || len(st) != 1 || st[0].Name != "drbdpool" || st[0].Status != "inactive" || !st[0].Down() {
		t.Fatalf("old format: %+v, %v", st, err)
	}
	st, err = ParseStorageStatus(part(t, "proxmox-6.txt", "second source"))
	if err != nil || len(st) != 3 || st[2].Name != "truenas" || st[2].Type != "nfs" || st[2].Total != 934724608 || st[2].UsedPct != 10.37 || st[2].Down() {
		t.Fatalf("KiB format: %+v, %v", st, err)
	}
	st, err = ParseStorageStatus(fixture(t, "pvesm-status-truncated.txt"))
	if err != nil || len(st) != 6 || st[0].Name != "local1" {
		t.Fatalf("truncated: %+v, %v", st, err)
	}
}

func TestParseSections(t *testing.T) {
	res, err := ParseSections(part(t, "proxmox-8.txt", ""))
	if err != nil || len(res) != 2 || res[0].Type != "vm" || res[0].ID != "501" || res[0].Props["max_relocate"] != "2" || res[1].Type != "ct" {
		t.Fatalf("resources.cfg: %+v, %v", res, err)
	}
	rep, err := ParseSections(part(t, "proxmox-8.txt", "second part"))
	if err != nil || len(rep) != 1 || rep[0].ID != "100-0" || rep[0].Props["target"] != "pve2" || rep[0].Props["schedule"] != "*/15" {
		t.Fatalf("replication.cfg: %+v, %v", rep, err)
	}
	if _, err := ParseSections("garbage line here\n"); err == nil {
		t.Error("no error for a line that is no section")
	}
}

func TestParseGuestConfig(t *testing.T) {
	g := ParseGuestConfig(part(t, "proxmox-9.txt", "third source"))
	if g.Lock != "backup" {
		t.Errorf("lock %q; want backup", g.Lock)
	}
}

func TestParseClusterLogSeed003(t *testing.T) {
	evs := ParseClusterLog(fixture(t, "seed-003-journal.txt"), matcher(t, logline.Context{}))
	tr := TrendOf(evs, time.Now(), 24*time.Hour)
	if tr.Timed {
		t.Error("the seed's excerpt has no times")
	}
	c := tr.Counts
	if c[TokenLost] != 11 || c[LinkDown] != 5 || c[QuorumLost] != 2 || c[CPGFailed] != 28 || c[HALostLock] != 3 {
		t.Errorf("counts %v", c)
	}
	if p := tr.WorstPeer(); p == nil || p.ID != "8" || p.LinkDowns != 4 || p.Link != "0" {
		t.Errorf("worst peer %+v; want 8 with 4 link-downs", p)
	}
}

func TestParseClusterLogLive(t *testing.T) {
	text := fixture(t, "corosync-log-live.txt")
	ctx := logline.Context{Now: time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC), Location: time.UTC}
	evs := ParseClusterLog(text, matcher(t, ctx))
	tr := TrendOf(evs, ctx.Now, 24*time.Hour)
	if !tr.Timed || tr.Counts[TokenLost] != 4 || tr.Counts[LinkDown] != 4 || tr.Counts[QuorumLost] != 2 || tr.Peers["3"].LinkDowns != 2 {
		t.Errorf("counts %v peers %+v", tr.Counts, tr.Peers)
	}
	// The start of the log, up to the healthy join, is no trouble.
	head := text[:strings.Index(text, "Token has not been received")]
	head = head[:strings.LastIndex(head, "\n")]
	if fs := DiagnoseClusterLog(TrendOf(ParseClusterLog(head, matcher(t, ctx)), ctx.Now, 24*time.Hour), Scope{Node: "pve1"}); len(fs) != 0 {
		t.Errorf("a healthy start and join gave %+v", fs)
	}
}
