package checks

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/runbook"
	"github.com/hinomi/hinomi/internal/signatures"
)

// Kernel lines of FM-B4 say which case they are, and a cgroup at its
// pids.max names its owner, so the runbook's ready steps fit: restart
// that container or unit, drop idle conntrack entries; never the other
// case's steps. The lines are real (the catalogue's sources, and this
// build machine's kernel log).
func TestKernelLineFindingsGetTheirCasesSteps(t *testing.T) {
	cat, err := signatures.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Src: host.Live(), Host: "vm", Signatures: signatures.NewMatcher(cat)}
	for _, c := range []struct {
		line  string
		ready []string
	}{
		{"2026-12-01T22:46:56.025296Z vm kernel: cgroup: fork rejected by pids controller in /docker/1a78f47b8d9bfdcac4289f516d24eb750b65c7dde91a1ed606516f8a3cc2a0f8",
			[]string{"docker restart 1a78f47b8d9b"}},
		{"kernel: [  743.772608] cgroup: fork rejected by pids controller in /system.slice/docker.service",
			[]string{"systemctl restart docker.service"}},
		{"obs kernel: [38775494.392631] nf_conntrack: table full, dropping packet",
			[]string{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=86400"}},
	} {
		fs := logFindings(env, "kernel log", []byte(c.line+"\n"), "")
		if len(fs) != 1 || fs[0].Mode != "FM-B4" {
			t.Fatalf("%s: findings %+v; want one FM-B4", c.line, fs)
		}
		steps, err := book.Get("FM-B4").Steps("Recover", fs[0].Evidence.Vars)
		if err != nil {
			t.Fatal(err)
		}
		var ready []string
		for _, s := range steps {
			if s.Ready {
				ready = append(ready, s.Lines...)
			}
		}
		if fmt.Sprint(ready) != fmt.Sprint(c.ready) {
			t.Errorf("%s: ready %q; want %q (vars %v)", c.line, ready, c.ready, fs[0].Evidence.Vars)
		}
		if v := fs[0].Evidence.Vars; v["resource"] == "cgroup-pids" && !strings.HasPrefix(v["cgroup_dir"], "/sys/fs/cgroup/") {
			t.Errorf("cgroup dir %q", v["cgroup_dir"])
		}
	}
}
