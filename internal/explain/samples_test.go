package explain

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// want is one expected finding, by what identifies it.
type want struct {
	mode     string
	severity finding.Severity
	subject  string
}

// sampleCase is what explain must make of one capture.
type sampleCase struct {
	// formats are the formats of the capture's parts, in order ("" for a
	// part nothing recognises, such as the "# source:" line before a
	// prompt).
	formats []string
	want    []want
	// pending names the family whose formats will read the capture; until
	// they merge only a clean run (no error, no panic) is asserted.
	pending string
	// neither says why a capture is neither a command output explain
	// reads nor a log.
	neither string
}

// explainNow is the time the captures are judged at.
var explainNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// sampleCases covers every capture in testdata/samples (copied from
// ../shared/samples, real captures from public sources, source in each
// file's first line) and testdata/*.txt (real docker ps / inspect / info
// captures from public GitHub issues, URL in each file's first line).
var sampleCases = map[string]sampleCase{
	// Docker Swarm family: docker service ps / docker node ls.
	"samples/docker-1.txt": {formats: []string{"docker-service-ps"}, want: []want{
		{"FM-C5", finding.High, "swarm service ldap"},
	}},
	"samples/docker-2.txt": {formats: []string{"docker-node-ls"}, want: []want{
		{"FM-D10", finding.High, "swarm node s-hive0"},
	}},
	"samples/docker-3.txt": {formats: []string{"docker-service-ps"}, want: []want{
		{"FM-C4", finding.High, "swarm service sandbox-swarm_helloworld"},
	}},
	"samples/docker-5.txt": {neither: "docker system df (-v) and du: sizes without the filesystem's size or growth, nothing FM-C2 can judge; no format reads it yet"},
	// The engine's event stream as JSON lines reads as a log; none of
	// its events (resize, die with code 0) is distress.
	"samples/docker-6.txt": {formats: []string{"log"}},

	// DRBD, ZFS, md RAID and SMART family.
	// Bring-up, ending UpToDate: nothing wrong at the end.
	"samples/drbd-1.txt": {formats: []string{"drbdadm-status"}},
	"samples/drbd-2.txt": {formats: []string{"", "drbdadm-status", "drbdadm-status", "drbdadm-status"}, want: []want{
		{"FM-D8", finding.Catastrophic, "drbd ボリューム名"},
		{"FM-D8", finding.High, "drbd ボリューム名"},
	}},
	"samples/drbd-3.txt": {formats: []string{"", "drbdadm-status", "drbdadm-status", "drbdadm-status"}, want: []want{
		{"FM-D8", finding.Medium, "drbd one-vm-9120-disk-0"},
		{"FM-D8", finding.Medium, "drbd one-vm-9120-disk-0"},
		{"FM-D8", finding.Catastrophic, "drbd one-vm-7707-disk-0"},
	}},
	// Kernel state-change lines: the signatures already read them.
	"samples/drbd-5.txt": {formats: []string{"log"}, want: []want{
		{"FM-D8", finding.High, "drbd-connection-lost resource=pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 peer=kube-node-2"},
		{"FM-D8", finding.High, "drbd-disk-degraded resource=one-vm-8737-disk-0 volume=0"},
		{"FM-D8", finding.High, "drbd-disk-degraded resource=pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 volume=0"},
	}},
	"samples/drbd-6.txt": {formats: []string{"drbdsetup-status-json"}},
	"samples/drbd-7.txt": {formats: []string{"drbdsetup-events2"}, want: []want{
		{"FM-D8", finding.Medium, "drbd test0"},
	}},

	// Kubernetes family.
	// Flannel crash-looping, a pod stuck creating behind it; then a pod
	// killed by its startup probe (kubectl get events + get all).
	"samples/k8s-1.txt": {formats: []string{"", "kubectl-get-pods", "kubectl-get-pods"}, want: []want{
		{"FM-C4", finding.High, "pod kube-flannel/kube-flannel-ds-b9pmh"},
		{"FM-C4", finding.High, "pod kube-flannel/kube-flannel-ds-m4fgh"},
		{"FM-C4", finding.High, "pod kube-flannel/kube-flannel-ds-wd7hs"},
		{"FM-C4", finding.Medium, "pod kube-system/coredns-5d78c9869d-859jv"},
		{"FM-C4", finding.High, "pod srl-probes-76b8468567-8pztg"},
	}},
	// kubelet's log: the signatures read it; the second part is
	// kubectl logs -f failing with fsnotify's error.
	"samples/k8s-2.txt": {formats: []string{"log", "log"}, want: []want{
		{"FM-B2", finding.High, "fsnotify-watcher-failed"},
		{"FM-B2", finding.High, "fsnotify-watcher-failed"}, // kubectl logs -f's own error, pasted alone
		{"FM-B2", finding.High, "inotify-init-emfile"},
	}},

	// Kernel logs.
	"samples/kernel-1.txt": {formats: []string{"log"}, want: []want{
		{"FM-E1", finding.High, "kernel-sched-atomic comm=rmmod"},
		{"FM-E1", finding.High, "kernel-sched-atomic comm=swapper/0"},
	}},
	// The second part is `sysctl net.netfilter.nf_conntrack_max`'s one
	// line: no format reads sysctl values.
	"samples/kernel-10.txt": {formats: []string{"log", ""}, want: []want{
		{"FM-B4", finding.High, "nf-conntrack-table-full"},
	}},
	"samples/kernel-3.txt": {formats: []string{"log"}, want: []want{
		{"FM-E3", finding.High, "hung-task comm=glusterfsd"},
		{"FM-E3", finding.High, "hung-task comm=kworker/2:1"},
		{"FM-E3", finding.High, "hung-task comm=kworker/u32:2"},
		{"FM-E3", finding.High, "hung-task comm=ntpd"},
	}},
	"samples/kernel-5.txt": {formats: []string{"log"}, want: []want{
		{"FM-C6", finding.Low, "fscache-duplicate-cookie"},
	}},
	// Two hosts' java kills: one finding per host.
	"samples/kernel-7.txt": {formats: []string{"log"}, want: []want{
		{"FM-E4", finding.High, "oom-killed-process comm=(resolved)"},
		{"FM-E4", finding.High, "oom-killed-process comm=java"},
		{"FM-E4", finding.High, "oom-killed-process comm=java"},
		{"FM-E4", finding.High, "oom-killed-process comm=lgraph_server"},
		{"FM-E4", finding.High, "oom-killed-process comm=python3"},
	}},
	"samples/kernel-9.txt": {formats: []string{"log"}, want: []want{
		{"FM-E1", finding.Catastrophic, "kernel-panic"},
		{"FM-E2", finding.High, "soft-lockup cpu=0"},
		{"FM-E2", finding.High, "soft-lockup cpu=10"},
		{"FM-E2", finding.High, "soft-lockup cpu=2"},
		{"FM-E2", finding.High, "soft-lockup cpu=2"},
	}},

	// Proxmox VE and corosync family.
	"samples/proxmox-1.txt": {formats: []string{"pvecm-status"}}, // quorate, both votes
	// A replication job's log and zfs recv's own error: the signatures
	// know the error even without a time on the line.
	"samples/proxmox-11.txt": {formats: []string{"log"}, want: []want{
		{"FM-D4", finding.Catastrophic, "zfs-recv-incremental-mismatch dataset=backup-zfs-1/encrypted/hamster-zfs/Docker"},
		{"FM-D4", finding.Catastrophic, "zfs-recv-incremental-mismatch dataset=pool00/dataset01_a"},
	}},
	"samples/proxmox-12.txt": {neither: "a Prometheus scrape of prometheus-pve-exporter: metrics, not a command a person runs on the host"},
	"samples/proxmox-2.txt": {formats: []string{"corosync-quorumtool"}, want: []want{
		{"FM-D5", finding.High, "corosync cluster"},
	}},
	// corosync's journal: the signatures read it (the family may add
	// trending on top).
	"samples/proxmox-5.txt": {formats: []string{"log"}, want: []want{
		{"FM-D5", finding.Catastrophic, "corosync-quorum-lost"},
		{"FM-D5", finding.Catastrophic, "pacemaker-quorum-lost"},
		{"FM-D6", finding.High, "corosync-members-left"},
		{"FM-D6", finding.High, "corosync-processor-failed"},
		{"FM-D6", finding.High, "corosync-token-timeout"},
		{"FM-D6", finding.High, "corosync-token-timeout"},
		{"FM-D6", finding.High, "knet-no-active-links host_id=2"},
		{"FM-D6", finding.Medium, "corosync-leave-message-failed"},
	}},
	"samples/proxmox-6.txt": {formats: []string{"pvesm-status"}, want: []want{
		{"FM-C6", finding.High, "storage drbdpool"},
	}},
	"samples/proxmox-8.txt": {neither: "configuration files (/etc/pve/ha/resources.cfg, replication.cfg), not command output; the Proxmox family reads them from the host"},
	// A process holding CT 110's config lock file, then other sources'
	// lock errors, one of which names its guest (101) in a bash trace.
	"samples/proxmox-9.txt": {formats: []string{"", "", "pve-guest-lock", "pve-guest-lock", "pve-guest-lock"}, want: []want{
		{"FM-D1", finding.Low, "guest 110"},
		{"FM-D1", finding.Low, "guest 110"},
		{"FM-D1", finding.Low, "guest 110"},
		{"FM-D1", finding.Low, "guest 101"},
	}},

	// docker ps -a.
	"docker-ps-restarting.txt": {formats: []string{"docker-ps"}, want: []want{
		{"FM-C4", finding.High, "container yyy-2012"},
	}},
	"docker-ps-unhealthy.txt": {formats: []string{"docker-ps"}, want: []want{
		{"FM-C4", finding.Medium, "container harbor-adminserver"},
		{"FM-C4", finding.Medium, "container harbor-db"},
		{"FM-C4", finding.Medium, "container harbor-ui"},
		{"FM-C4", finding.Medium, "container nginx"},
	}},
	"docker-ps-exited.txt": {formats: []string{"docker-ps"}, want: []want{
		{"FM-C4", finding.Low, "container agitated_blackwell"},
		{"FM-C4", finding.Low, "container kickass_babbage"},
		{"FM-C4", finding.Low, "container modest_feynman"},
	}},
	"docker-ps-healthy-mixed.txt": {formats: []string{"docker-ps"}},
	// A header exactly a terminal's width is not a wrapped line.
	"docker-ps-header-132.txt": {formats: []string{"", "docker-ps"}, want: []want{
		{"FM-C4", finding.Medium, "container explain-c4-unhealthy-29313"},
	}},
	"docker-compose-ps.txt": {formats: []string{"", "docker-ps"}},
	// Up for seconds though created hours ago: restarted, but how often
	// the list does not say, and the live rule wants the count.
	"docker-container-list.txt": {formats: []string{"", "docker-ps"}},

	// docker inspect. An exited container's stale "unhealthy" and an
	// exit 137 without a restart policy are not loops.
	"docker-inspect-exited-unhealthy.txt": {formats: []string{"", "docker-inspect"}},
	"docker-inspect-exited-137.txt":       {formats: []string{"docker-inspect"}},
	"docker-inspect-running-1.8.txt":      {formats: []string{"docker-inspect"}},
	"docker-inspect-health-unhealthy.txt": {formats: []string{"", "docker-inspect"}, want: []want{
		{"FM-C4", finding.Medium, "container 196f25856b9d"},
	}},
	"docker-inspect-health-streak.txt": {formats: []string{"docker-inspect"}, want: []want{
		{"FM-C4", finding.Medium, "container (unnamed)"},
	}},
	"docker-inspect-health-wrapped.txt": {formats: []string{"docker-inspect"}, want: []want{
		{"FM-C4", finding.Medium, "container (unnamed)"},
	}},

	// docker info.
	"docker-info-warnings.txt":      {formats: []string{"docker-info"}},
	"docker-info-devicemapper.txt":  {formats: []string{"docker-info"}},
	"docker-info-json.txt":          {formats: []string{"docker-info"}},
	"docker-info-client-server.txt": {formats: []string{"", "docker-info"}},
	"docker-info-swarm-error.txt": {formats: []string{"", "docker-info"}, want: []want{
		{"FM-D10", finding.High, "swarm node ubuntu"},
	}},
	"docker-info-swarm-pending.txt": {formats: []string{"", "docker-info"}, want: []want{
		{"FM-D10", finding.Medium, "swarm node (unnamed)"},
	}},
}

// explainFile runs a capture through what `hinomi explain FILE` does:
// Clean, Recognise each part, Explain it.
func explainFile(t *testing.T, path string) (formats []string, results []Result) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range Clean(filepath.Base(path), b, explainNow) {
		f, ok := Recognise(&in, All())
		if !ok {
			formats = append(formats, "")
			continue
		}
		formats = append(formats, f.Name)
		res, err := Explain(&in, f)
		if err != nil {
			t.Errorf("%s: %s: %v", path, f.Name, err)
		}
		results = append(results, res)
	}
	return formats, results
}

func TestExplainEveryCapture(t *testing.T) {
	files, err := filepath.Glob("testdata/samples/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("testdata/*.txt")
	files = append(files, more...)
	seen := map[string]bool{}
	for _, path := range files {
		name := strings.TrimPrefix(filepath.ToSlash(path), "testdata/")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			c, ok := sampleCases[name]
			if !ok {
				t.Fatalf("no case for %s: add what explain must make of it (or why it is neither a command output nor a log)", name)
			}
			formats, results := explainFile(t, path)
			if c.pending != "" || c.neither != "" {
				if c.neither != "" && slices.ContainsFunc(formats, func(f string) bool { return f != "" && f != "log" }) {
					t.Errorf("formats %q for a capture that is neither (%s)", formats, c.neither)
				}
				return
			}
			if !slices.Equal(formats, c.formats) {
				t.Errorf("formats %q; want %q", formats, c.formats)
			}
			var got []string
			for _, r := range results {
				for _, f := range r.Findings {
					got = append(got, fmt.Sprintf("%s %s %s", f.Mode, f.Severity, f.Subject))
					if f.Key != finding.MakeKey(f.Mode, f.Subject) || f.Runbook == "" || f.Summary == "" {
						t.Errorf("finding %q: key %q runbook %q summary %q; want all set", f.Subject, f.Key, f.Runbook, f.Summary)
					}
				}
			}
			var exp []string
			for _, w := range c.want {
				exp = append(exp, fmt.Sprintf("%s %s %s", w.mode, w.severity, w.subject))
			}
			slices.Sort(got)
			slices.Sort(exp)
			if !slices.Equal(got, exp) {
				t.Errorf("findings\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(exp, "\n  "))
			}
		})
	}
	for name := range sampleCases {
		if !seen[name] {
			t.Errorf("case %s has no file in testdata", name)
		}
	}
}

// testdata/samples is a copy of the shared samples directory; when that
// directory is at hand, the copy must be current.
func TestSamplesCopyIsCurrent(t *testing.T) {
	var dir string
	for _, d := range []string{os.Getenv("HINOMI_SAMPLES"), "../../../shared/samples", "../../../../shared/samples"} {
		if d == "" {
			continue
		}
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			dir = d
			break
		}
	}
	if dir == "" {
		t.Skip("the shared samples directory is not here (set HINOMI_SAMPLES)")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	for _, f := range files {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join("testdata/samples", filepath.Base(f)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("testdata/samples/%s differs from %s: copy it (cp %s internal/explain/testdata/samples/)", filepath.Base(f), f, f)
		}
	}
}
