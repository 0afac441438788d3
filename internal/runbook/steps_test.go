package runbook_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/runbook"
)

// step is what a ready step must be: its first command's program and the
// thing it acts on (a word of the command, or the name in name=value).
type step struct{ tool, subject string }

func (s step) String() string { return s.tool + " " + s.subject }

const cid = "3f1c0e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e"

// owners are the kinds of owner a process can have, as proctable
// attributes them, with what a restart, a start and a CPU cap of each
// must run (nil: nothing that can be run as it is).
var owners = []struct {
	name                 string
	owner                proctable.Owner
	restart, start, cpus []step
}{
	{"host process", proctable.Owner{Kind: "host"}, nil, nil, []step{{"renice", "4242"}}},
	{"login session", proctable.Owner{Kind: "session", ID: "session-3.scope"}, nil, nil, []step{{"renice", "4242"}}},
	{"systemd unit", proctable.Owner{Kind: "service", ID: "nginx.service"},
		[]step{{"systemctl", "nginx.service"}}, []step{{"systemctl", "nginx.service"}}, nil},
	{"docker container", proctable.Owner{Kind: "docker", ID: cid, Name: "web"},
		[]step{{"docker", "web"}}, []step{{"docker", "web"}}, nil},
	{"docker container without name", proctable.Owner{Kind: "docker", ID: cid},
		[]step{{"docker", cid[:12]}}, []step{{"docker", cid[:12]}}, nil},
	{"podman container", proctable.Owner{Kind: "podman", ID: cid, Name: "db"},
		[]step{{"podman", "db"}}, []step{{"podman", "db"}}, nil},
	{"kubernetes pod", proctable.Owner{Kind: "kubernetes", ID: cid, Name: "prod/api-7d9f5/api", Pod: "0d3b5a0e-8f7c-4d5e-9a1b-2c3d4e5f6a7b"},
		[]step{{"kubectl", "api-7d9f5"}}, nil, nil},
	{"kubernetes container without names", proctable.Owner{Kind: "kubernetes", ID: cid, Pod: "0d3b5a0e-8f7c-4d5e-9a1b-2c3d4e5f6a7b"},
		[]step{{"crictl", cid}}, nil, nil},
	{"containerd container", proctable.Owner{Kind: "containerd", ID: cid}, nil, nil, nil},
	{"LXC guest", proctable.Owner{Kind: "lxc", ID: "9105", Name: "ci"},
		[]step{{"pct", "9105"}}, []step{{"pct", "9105"}}, nil},
	{"VM", proctable.Owner{Kind: "vm", ID: "101"},
		[]step{{"qm", "101"}}, []step{{"qm", "101"}}, nil},
}

// cases are the sub-cases of every failure mode doctor reports, with the
// vars its check sets, whether a process (and so an owner) is named, and
// the ready steps expected besides the owner's.
var cases = []struct {
	mode, name string
	vars       map[string]string
	// owner is the owner verb whose steps come at ownerAt in the list;
	// "" means the finding names no process.
	owner   string
	ownerAt int
	want    []step
}{
	{"FM-B1", "system table full", map[string]string{"case": "system", "file_nr": "1040000", "file_max": "1048576", "file_max_new": "4194304"},
		"restart", 0, []step{{"sysctl", "fs.file-max"}}},
	{"FM-B1", "process at its limit", map[string]string{"case": "process", "fds": "1000", "nofile": "1024", "nofile_new": "65536"},
		"restart", 0, []step{{"prlimit", "4242"}}},
	{"FM-B1", "process at its limit, new limit unknown", map[string]string{"case": "process"},
		"restart", 0, nil},
	{"FM-B2", "watches used up", map[string]string{"uid": "0", "max_user_watches_new": "1048576", "max_user_instances_new": "1024", "kubelet": "no"},
		"restart", 3, []step{{"sysctl", "fs.inotify.max_user_watches"}, {"echo", "fs.inotify.max_user_watches"}, {"tr", "/proc/4242/environ"}}},
	{"FM-B2", "watches used up where kubelet runs", map[string]string{"uid": "0", "max_user_watches_new": "1048576", "max_user_instances_new": "1024", "kubelet": "yes"},
		"restart", 3, []step{{"sysctl", "fs.inotify.max_user_watches"}, {"echo", "fs.inotify.max_user_watches"}, {"tr", "/proc/4242/environ"}, {"systemctl", "kubelet"}}},
	{"FM-B3", "backlog drops", map[string]string{"netdev_max_backlog_new": "4096", "squeezing": "no"},
		"", 0, []step{{"sysctl", "net.core.netdev_max_backlog"}}},
	{"FM-B3", "backlog drops and squeezing", map[string]string{"netdev_max_backlog_new": "4096", "squeezing": "yes"},
		"", 0, []step{{"sysctl", "net.core.netdev_max_backlog"}, {"sysctl", "net.core.netdev_budget"}}},
	{"FM-B4", "pid_max", map[string]string{"resource": "pids", "sysctl": "kernel.pid_max", "sysctl_new": "4194304"},
		"restart", 1, []step{{"sysctl", "kernel.pid_max"}}},
	{"FM-B4", "threads-max", map[string]string{"resource": "threads", "sysctl": "kernel.threads-max", "sysctl_new": "4194304"},
		"restart", 1, []step{{"sysctl", "kernel.threads-max"}}},
	{"FM-B4", "conntrack", map[string]string{"resource": "conntrack", "sysctl": "net.netfilter.nf_conntrack_max", "sysctl_new": "524288"},
		"", 0, []step{{"sysctl", "net.netfilter.nf_conntrack_max"}, {"sysctl", "net.netfilter.nf_conntrack_tcp_timeout_established"}}},
	{"FM-B4", "cgroup at pids.max", map[string]string{"resource": "cgroup-pids", "used": "100", "limit": "100", "cgroup_dir": "/sys/fs/cgroup/system.slice/x.service"},
		"restart", 0, nil},
	{"FM-B4", "oom, victim's owner unknown", map[string]string{"resource": "oom", "pid": "4242", "comm": "java"},
		"", 0, nil},
	{"FM-B4", "cpu pressure", map[string]string{"resource": "psi", "psi": "cpu"},
		"limit-cpu", 0, nil},
	{"FM-B4", "memory pressure", map[string]string{"resource": "psi", "psi": "memory"},
		"", 0, nil},
	{"FM-B4", "io pressure", map[string]string{"resource": "psi", "psi": "io"},
		"", 0, nil},
	{"FM-C1", "stuck processes", map[string]string{"runc_count": "12", "dstate_count": "40"},
		"", 0, nil},
	{"FM-C2", "disk full, journal here", map[string]string{"mount": "/", "device": "/dev/sda1", "used_pct": "97", "holds_journal": "yes", "holds_docker": "no"},
		"", 0, []step{{"journalctl", "--vacuum-size=500M"}}},
	{"FM-C3", "failed unit", map[string]string{"unit": "nginx.service"},
		"", 0, []step{{"systemctl", "nginx.service"}, {"systemctl", "nginx.service"}}},
	{"FM-C6", "hung NFS mount", map[string]string{"mount": "/mnt/pve/nas", "server": "nas", "fstype": "nfs4", "stuck_for": "3m0s"},
		"", 0, []step{{"timeout", "/mnt/pve/nas"}, {"umount", "/mnt/pve/nas"}}},
	{"FM-E4", "OOM kill in a container", map[string]string{"kind": "cgroup"},
		"start", 0, nil},
}

// Every (mode, sub-case, owner kind) gets ready steps that fit it: the
// right program acting on the right thing, and nothing else. A step that
// depends on a value the finding lacks is never ready.
func TestReadyStepsFitCaseAndOwner(t *testing.T) {
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		variants := owners
		if c.owner == "" {
			variants = variants[:1] // no process: the owner plays no part
		}
		for _, o := range variants {
			t.Run(c.mode+"/"+c.name+"/"+o.name, func(t *testing.T) {
				vars := maps.Clone(c.vars)
				if c.owner != "" {
					vars["pid"], vars["comm"] = "4242", "leaky"
					checks.OwnerVars(vars, o.owner)
				}
				want := slices.Clone(c.want)
				switch c.owner {
				case "restart":
					want = slices.Insert(want, c.ownerAt, o.restart...)
				case "start":
					want = slices.Insert(want, c.ownerAt, o.start...)
				case "limit-cpu":
					want = slices.Insert(want, c.ownerAt, o.cpus...)
				}
				steps, err := book.Get(c.mode).Steps("Recover", vars)
				if err != nil {
					t.Fatal(err)
				}
				var got []step
				var text []string
				for _, s := range steps {
					if !s.Ready {
						continue
					}
					words := shellWords(t, s.Lines[0])
					got = append(got, step{words[0], subjectOf(words, want, len(got))})
					text = append(text, strings.Join(s.Lines, "\n"))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("ready steps %v; want %v\n%s", got, want, strings.Join(text, "\n--\n"))
				}
			})
		}
	}
}

// subjectOf returns the wanted subject of the i-th step when the command
// holds it as a word (or as name=value), else the command's last word.
func subjectOf(words []string, want []step, i int) string {
	if i < len(want) {
		for _, w := range words[1:] {
			if w == want[i].subject || strings.HasPrefix(w, want[i].subject+"=") {
				return want[i].subject
			}
		}
	}
	return words[len(words)-1]
}

// Without the owner's kind (a finding from an older agent), each kind's
// command is listed for the reader and none is ready, even when a
// container name is known.
func TestOwnerUnknownIsNeverReady(t *testing.T) {
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := book.Get("FM-B1").Steps("Recover", map[string]string{"case": "process", "pid": "9", "container": "web", "nofile_new": "65536"})
	if err != nil {
		t.Fatal(err)
	}
	restart := steps[0]
	if restart.Ready {
		t.Errorf("restart for an unknown owner is ready: %q", restart.Lines)
	}
	for _, tool := range []string{"docker restart web", "pct reboot <ctid>", "qm reboot <vmid>", "kubectl -n <namespace> delete pod <pod>", "systemctl restart <unit>"} {
		if !slices.ContainsFunc(restart.Lines, func(l string) bool { return strings.HasPrefix(l, tool+"  # ") }) {
			t.Errorf("restart lines %q lack %q", restart.Lines, tool)
		}
	}
	for _, l := range restart.Lines {
		if strings.ContainsAny(l, "\x1e\x1f") {
			t.Errorf("internal mark in %q", l)
		}
	}
}

// A block limited to a case is left out for other cases, also in the
// rendered runbook, and kept (not ready) when the case is not known.
func TestStepConditions(t *testing.T) {
	rb, err := runbook.Parse([]byte("---\nid: FM-X9\ntitle: t\n---\n## Recover\nA:\n```sh resource=conntrack\nsysctl -w a=1\n```\nB:\n```sh resource=pids,threads\nsysctl -w b=1\n```\nC:\n```sh manual\nreboot\n```\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		resource string
		want     string
	}{
		{"conntrack", "[{[sysctl -w a=1] true} {[reboot] false}]"},
		{"threads", "[{[sysctl -w b=1] true} {[reboot] false}]"},
		{"", "[{[sysctl -w a=1] false} {[sysctl -w b=1] false} {[reboot] false}]"},
	} {
		vars := map[string]string{"resource": c.resource}
		steps, err := rb.Steps("Recover", vars)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(steps); got != c.want {
			t.Errorf("resource=%q: steps %s; want %s", c.resource, got, c.want)
		}
		text, err := rb.Render(vars)
		if err != nil {
			t.Fatal(err)
		}
		if c.resource == "conntrack" && strings.Contains(text, "b=1") {
			t.Errorf("the pids step is rendered for conntrack:\n%s", text)
		}
	}
}
