package doctor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/proctable"
)

// The text view's "recover:" and the JSON's recover_ready hold, for each
// finding, the steps that fit its case and its owner, with every value
// shell-quoted: never the conntrack timeout for a cgroup at pids.max,
// never docker for an LXC guest or a Kubernetes pod.
func TestRecoverStepsFitTheFinding(t *testing.T) {
	book := builtinBook(t)
	withOwner := func(vars map[string]string, o proctable.Owner) map[string]string {
		checks.OwnerVars(vars, o)
		return vars
	}
	const cid = "3f1c0e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e"
	d := &Diagnosis{Host: "pve1", Taken: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC), Source: "live"}
	d.Findings = []finding.Finding{
		{Key: "FM-B4/pids LXC 9105", Mode: "FM-B4", Runbook: "FM-B4", Severity: finding.High, Summary: "LXC 9105 runs 512 tasks of its cgroup limit pids.max 512.",
			Evidence: finding.Evidence{Vars: withOwner(map[string]string{"resource": "cgroup-pids", "used": "512", "limit": "512",
				"cgroup_dir": "/sys/fs/cgroup/lxc/9105", "pid": "4242", "comm": "java"}, proctable.Owner{Kind: "lxc", ID: "9105"})}},
		{Key: "FM-B1/process api (prod/api-1/api)", Mode: "FM-B1", Runbook: "FM-B1", Severity: finding.Medium, Summary: "api holds 1000 open files of its own limit 1024.",
			Evidence: finding.Evidence{Vars: withOwner(map[string]string{"case": "process", "fds": "1000", "nofile": "1024", "nofile_new": "65536",
				"pid": "777", "comm": "api"}, proctable.Owner{Kind: "kubernetes", ID: cid, Name: "prod/api-1/api"})}},
		{Key: "FM-C6//mnt/my disk", Mode: "FM-C6", Runbook: "FM-C6", Severity: finding.High, Summary: "/mnt/my disk from nas has not answered for 3m0s.",
			Evidence: finding.Evidence{Vars: map[string]string{"mount": "/mnt/my disk", "server": "nas", "fstype": "nfs4", "stuck_for": "3m0s"}}},
	}
	want := map[string][]string{
		"FM-B4/pids LXC 9105": {"pct reboot 9105"},
		"FM-B1/process api (prod/api-1/api)": {"kubectl -n prod delete pod api-1",
			"prlimit --pid 777 --nofile=65536:", "grep 'Max open files' /proc/777/limits"},
		"FM-C6//mnt/my disk": {"timeout -s KILL 10 fuser -vm '/mnt/my disk'",
			"find /proc/[0-9]*/cwd /proc/[0-9]*/fd -maxdepth 1 -lname '/mnt/my disk''*' 2>/dev/null",
			"umount -nlf '/mnt/my disk'"},
	}

	var js bytes.Buffer
	if err := WriteJSON(&js, d, finding.Info, book); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Findings []struct {
			Key          string   `json:"key"`
			RecoverReady []string `json:"recover_ready"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(js.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Findings {
		if fmt.Sprint(f.RecoverReady) != fmt.Sprint(want[f.Key]) {
			t.Errorf("%s: recover_ready %q; want %q", f.Key, f.RecoverReady, want[f.Key])
		}
	}

	var text bytes.Buffer
	if err := WriteText(&text, d, TextOptions{Min: finding.Info, Location: time.UTC}, book); err != nil {
		t.Fatal(err)
	}
	for _, cmds := range want {
		for _, c := range cmds {
			if !strings.Contains(text.String(), "            "+c+"\n") {
				t.Errorf("text view lacks ready step %q:\n%s", c, text.String())
			}
		}
	}
	// The LXC guest's pids.max step needs a value: counted, not shown.
	if !strings.Contains(text.String(), "            pct reboot 9105\n          (1 more command(s), needing values or a decision of yours, are in the runbook.)\n") {
		t.Errorf("text view does not count the pids.max step left to fill:\n%s", text.String())
	}
	for _, never := range []string{"nf_conntrack_tcp_timeout_established", "docker ", "umount -nlf /mnt/my disk"} {
		if strings.Contains(text.String(), never) {
			t.Errorf("text view holds %q:\n%s", never, text.String())
		}
	}
}
