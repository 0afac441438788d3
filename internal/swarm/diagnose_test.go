package swarm

import (
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/runbook"
)

func findingAbout(t *testing.T, r Report, subject string) finding.Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Subject == subject {
			return f
		}
	}
	t.Fatalf("no finding about %s in %+v", subject, r.Findings)
	return finding.Finding{}
}

func TestDiagnoseCases(t *testing.T) {
	mgr := func(host, state, reach string) Node {
		return Node{ID: host + "-id", Hostname: host, Role: "manager", State: state, Reachability: reach, Availability: "active"}
	}
	t.Run("two of three managers lost", func(t *testing.T) {
		st := &State{LocalState: "active", Manager: true, Nodes: []Node{mgr("a", "ready", "reachable"), mgr("b", "down", "unreachable"), mgr("c", "down", "unreachable")}}
		r := Diagnose(st, testNow)
		q := findingAbout(t, r, "swarm managers")
		if q.Severity != finding.Catastrophic || q.Evidence.Vars["reachable"] != "1" || q.Evidence.Vars["quorum"] != "2" {
			t.Errorf("severity %s vars %v; want catastrophic, 1 reachable, 2 needed", q.Severity, q.Evidence.Vars)
		}
		if b := findingAbout(t, r, "swarm node b"); !strings.Contains(b.Summary, "lost its Raft majority (1 of 3") {
			t.Errorf("summary: %s", b.Summary)
		}
	})
	t.Run("one of five managers lost keeps the majority", func(t *testing.T) {
		st := &State{LocalState: "active", Manager: true, Nodes: []Node{mgr("a", "ready", "reachable"), mgr("b", "ready", "reachable"), mgr("c", "ready", "reachable"), mgr("d", "ready", "reachable"), mgr("e", "down", "unreachable")}}
		r := Diagnose(st, testNow)
		if len(r.Findings) != 1 || r.Findings[0].Subject != "swarm node e" || !strings.Contains(r.Findings[0].Summary, "4 of 5 managers remain reachable (3 needed)") {
			t.Errorf("findings %+v; want node e alone", r.Findings)
		}
	})
	t.Run("worker is blind", func(t *testing.T) {
		r := Diagnose(&State{LocalState: "active", RemoteManagers: []string{"10.0.0.1:2377"}}, testNow)
		if len(r.Findings) != 0 || len(r.Blind) != 1 || !strings.Contains(r.Blind[0], "Swarm worker") || !strings.Contains(r.Blind[0], "10.0.0.1:2377") {
			t.Errorf("findings %v blind %q", r.Findings, r.Blind)
		}
	})
	t.Run("locked manager", func(t *testing.T) {
		r := Diagnose(&State{LocalState: "locked", NodeID: "n1"}, testNow)
		if f := findingAbout(t, r, "swarm node n1"); f.Mode != "FM-D10" || !strings.Contains(f.Summary, "docker swarm unlock") {
			t.Errorf("finding %+v", f)
		}
	})
	t.Run("replicas up but tasks keep failing", func(t *testing.T) {
		st := &State{LocalState: "active", Manager: true,
			Services: []Service{{Name: "web", Running: 1, Desired: 1}},
			Tasks: []Task{
				{ID: "t1", Service: "web", State: "failed", Err: "task: non-zero exit (137)", Time: testNow.Add(-3 * time.Minute)},
				{ID: "t2", Service: "web", State: "failed", Err: "task: non-zero exit (137)", Time: testNow.Add(-2 * time.Minute)},
				{ID: "t3", Service: "web", State: "running", DesiredState: "running", Current: true, Time: testNow.Add(-time.Minute)},
			}}
		f := findingAbout(t, Diagnose(st, testNow), "swarm service web")
		if f.Severity != finding.Medium || f.Evidence.Vars["exit_code"] != "137" || !strings.Contains(f.Summary, "OOM killer") {
			t.Errorf("severity %s vars %v summary %s", f.Severity, f.Evidence.Vars, f.Summary)
		}
	})
	t.Run("old failures and a healthy service", func(t *testing.T) {
		st := &State{LocalState: "active", Manager: true,
			Services: []Service{{Name: "web", Running: 1, Desired: 1}},
			Tasks: []Task{
				{ID: "t1", Service: "web", State: "failed", Err: "task: non-zero exit (1)", Time: testNow.Add(-3 * time.Hour)},
				{ID: "t2", Service: "web", State: "failed", Err: "task: non-zero exit (1)", Time: testNow.Add(-2 * time.Hour)},
			}}
		if r := Diagnose(st, testNow); len(r.Findings) != 0 {
			t.Errorf("findings %+v; want none", r.Findings)
		}
	})
	t.Run("starting task is not a finding", func(t *testing.T) {
		st := &State{LocalState: "active", Manager: true,
			Services: []Service{{Name: "web", Running: 0, Desired: 1, Updated: testNow.Add(-time.Minute)}},
			Tasks:    []Task{{ID: "t1", Service: "web", State: "preparing", DesiredState: "running", Current: true}}}
		if r := Diagnose(st, testNow); len(r.Findings) != 0 {
			t.Errorf("findings %+v; want none", r.Findings)
		}
	})
	t.Run("truncated volume error points at FM-C5", func(t *testing.T) {
		st := &State{Tasks: []Task{{ID: "t1", Service: "ldap", Slot: 1, Current: true, DesiredState: "ready", State: "rejected", Err: "failed to mount local volu", Truncated: true, Time: testNow.Add(-time.Second)}}}
		f := findingAbout(t, Diagnose(st, testNow), "swarm service ldap")
		if f.Mode != "FM-C4" || !strings.Contains(f.Summary, "FM-C5") || !strings.Contains(f.Summary, "docker service ps --no-trunc ldap") {
			t.Errorf("mode %s summary %s", f.Mode, f.Summary)
		}
	})
	t.Run("device from the service's volume", func(t *testing.T) {
		st := &State{LocalState: "active", Manager: true,
			Services: []Service{{Name: "db", Desired: 1, Mounts: []Mount{{Type: "volume", Source: "pg", Target: "/var/lib/postgresql", Device: "/dev/drbd3"}}}},
			Tasks:    []Task{{ID: "t1", Service: "db", State: "rejected", Err: "failed to mount local volume: mount /dev/drbd3:/var/lib/docker/volumes/pg/_data, flags: 0x400: structure needs cleaning", Time: testNow.Add(-time.Minute)}}}
		f := findingAbout(t, Diagnose(st, testNow), "swarm service db")
		if f.Mode != "FM-C5" || f.Evidence.Vars["device"] != "/dev/drbd3" || f.Evidence.Vars["volume"] != "pg" {
			t.Errorf("mode %s vars %v", f.Mode, f.Evidence.Vars)
		}
	})
}

// Seed 002's findings hand over its own recovery, filled in: xfs_repair
// of the volume's device with the service scaled to 0, and demote+rm of
// the lost node; forcing a new cluster is never offered as ready.
func TestSeedRunbooks(t *testing.T) {
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	ready := func(f finding.Finding, section string) (readyText, all string) {
		t.Helper()
		steps, err := book.Get(f.Runbook).Steps(section, f.Evidence.Vars)
		if err != nil {
			t.Fatal(err)
		}
		var r, a []string
		for _, s := range steps {
			a = append(a, s.Lines...)
			if s.Ready {
				r = append(r, s.Lines...)
			}
		}
		return strings.Join(r, "\n"), strings.Join(a, "\n")
	}

	st, _, err := ParseServicePS(readFixture(t, "service-ps-seed002-drbd.txt"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	f := findingAbout(t, Diagnose(st, testNow), "swarm service ldap")
	f.Runbook = f.Mode
	r, _ := ready(f, "Recover")
	for _, want := range []string{"docker service scale ldap=0", "findmnt /dev/drbd8", "docker volume inspect ldap_data", "docker service scale ldap=1"} {
		if !strings.Contains(r, want) {
			t.Errorf("FM-C5 ready steps lack %q:\n%s", want, r)
		}
	}

	st, _, err = ParseNodeLS(readFixture(t, "node-ls-seed002-down.txt"))
	if err != nil {
		t.Fatal(err)
	}
	f = findingAbout(t, Diagnose(st, testNow), "swarm node s-hive0")
	f.Runbook = f.Mode
	r, all := ready(f, "Recover")
	for _, want := range []string{"docker node demote sn3njpuc7dnevr8c6b8zqv1c7", "docker node rm sn3njpuc7dnevr8c6b8zqv1c7"} {
		if !strings.Contains(r, want) {
			t.Errorf("FM-D10 ready steps lack %q:\n%s", want, r)
		}
	}
	if strings.Contains(r, "--force-new-cluster") || !strings.Contains(all, "--force-new-cluster") {
		t.Errorf("--force-new-cluster must be shown and never ready:\n%s", r)
	}
}
