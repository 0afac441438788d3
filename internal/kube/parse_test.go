package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func findingAbout(t *testing.T, fs []finding.Finding, subject string) finding.Finding {
	t.Helper()
	var got []string
	for _, f := range fs {
		if f.Subject == subject {
			return f
		}
		got = append(got, f.Mode+" "+f.Subject)
	}
	t.Fatalf("no finding about %q; got %q", subject, got)
	return finding.Finding{}
}

var now = time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)

// diagnoseFixture parses a testdata capture with parse and diagnoses it.
func diagnoseFixture(t *testing.T, name string, parse func(string) (Parsed, error)) []finding.Finding {
	t.Helper()
	p, err := parse(readFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return Diagnose(&p.Cluster, now)
}

func getPods(s string) (Parsed, error)     { return ParseGetPods(s, now) }
func describePod(s string) (Parsed, error) { return ParseDescribePod(s, now) }

// The shared sample: `kubectl get pods -A` with three flannel pods in
// CrashLoopBackOff and coredns ContainerCreating for 8 minutes, plus a
// `kubectl get all` line of a pod restarted 141 times; the events table
// and describe blocks in the same file are skipped, not misread.
func TestGetPodsSampleK8s1(t *testing.T) {
	fs := diagnoseFixture(t, "samples-k8s-1.txt", getPods)
	for _, name := range []string{"kube-flannel-ds-b9pmh", "kube-flannel-ds-m4fgh", "kube-flannel-ds-wd7hs"} {
		f := findingAbout(t, fs, "pod kube-flannel/"+name)
		if f.Mode != "FM-C4" || f.Severity != finding.High || f.Evidence.Vars["restarts"] != "6" || f.Evidence.Vars["state"] != "crashloop" {
			t.Errorf("%s: %s %s vars %v; want FM-C4 high crashloop with 6 restarts", name, f.Mode, f.Severity, f.Evidence.Vars)
		}
		if f.Evidence.Vars["namespace"] != "kube-flannel" || f.Evidence.Vars["pod"] != name {
			t.Errorf("%s: vars %v", name, f.Evidence.Vars)
		}
	}
	f := findingAbout(t, fs, "pod kube-system/coredns-5d78c9869d-859jv")
	if f.Severity != finding.Medium || f.Evidence.Vars["state"] != "pending" || !strings.Contains(f.Summary, "ContainerCreating for 8m 16s") {
		t.Errorf("coredns: %s %q; want medium pending ContainerCreating for 8m 16s", f.Severity, f.Summary)
	}
	f = findingAbout(t, fs, "pod srl-probes-76b8468567-8pztg")
	if f.Evidence.Vars["restarts"] != "141" || f.Severity != finding.High {
		t.Errorf("srl-probes: %s vars %v; want high with 141 restarts", f.Severity, f.Evidence.Vars)
	}
	if len(fs) != 5 {
		t.Errorf("%d findings; want 5", len(fs))
	}
}

// --watch -o wide: the last line of a pod wins, its node is read.
func TestGetPodsWatchWide(t *testing.T) {
	p, err := ParseGetPods(readFixture(t, "get-pods-watch-wide.txt"), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Cluster.Pods) != 1 {
		t.Fatalf("%d pods; want nginx once", len(p.Cluster.Pods))
	}
	f := findingAbout(t, Diagnose(&p.Cluster, now), "pod nginx")
	if f.Evidence.Vars["restarts"] != "13" || f.Evidence.Vars["node"] != "node03" || f.Evidence.Vars["rate"] != "17.3" {
		t.Errorf("vars %v; want 13 restarts on node03 at 17.3 per hour", f.Evidence.Vars)
	}
}

// The OOMKilled line of the Kubernetes docs' memory exercise.
func TestGetPodsOOMKilled(t *testing.T) {
	p, err := ParseGetPods(readFixture(t, "get-pods-oomkilled.txt"), now)
	if err != nil {
		t.Fatal(err)
	}
	f := findingAbout(t, Diagnose(&p.Cluster, now), "pod memory-demo-2")
	if f.Severity != finding.High || f.Evidence.Vars["oom"] != "true" || f.Evidence.Vars["state"] != "oom" {
		t.Errorf("%s vars %v; want high oom", f.Severity, f.Evidence.Vars)
	}
}

// A container block of `kubectl describe pod` pasted alone: the loop,
// its last termination (Error, exit 143, SIGTERM) and restart count.
func TestDescribePodContainerBlock(t *testing.T) {
	fs := diagnoseFixture(t, "describe-pod-crashloop-sigterm.txt", describePod)
	if len(fs) != 1 {
		t.Fatalf("%d findings; want 1", len(fs))
	}
	f := fs[0]
	v := f.Evidence.Vars
	if f.Mode != "FM-C4" || f.Severity != finding.High || v["exit_code"] != "143" || v["restarts"] != "859" || v["reason"] != "Error, exit code 143" {
		t.Errorf("%s %s vars %v", f.Mode, f.Severity, v)
	}
	if !strings.Contains(f.Summary, "exit code 143 (SIGTERM) at 2025-07-11 07:50:51 UTC") {
		t.Errorf("summary %q lacks the last termination", f.Summary)
	}
}

// The sample's second describe block: a loop whose runs exit 0.
func TestDescribePodSampleCompletedLoop(t *testing.T) {
	text := readFixture(t, "samples-k8s-1.txt")
	i := strings.Index(text, "## fourth source")
	j := strings.Index(text, "## note")
	p, err := ParseDescribePod(text[i:j], now)
	if err != nil {
		t.Fatal(err)
	}
	fs := Diagnose(&p.Cluster, now)
	if len(fs) != 1 || fs[0].Evidence.Vars["exit_code"] != "0" || fs[0].Evidence.Vars["restarts"] != "6" || !strings.Contains(fs[0].Summary, "Completed") {
		t.Errorf("findings %+v; want one loop with Completed, exit 0, 6 restarts", fs)
	}
}

// `kubectl get nodes` with a NotReady node (misaligned as pasted).
func TestGetNodesNotReady(t *testing.T) {
	fs := diagnoseFixture(t, "get-nodes-notready.txt", ParseGetNodes)
	if len(fs) != 1 {
		t.Fatalf("%d findings; want docker02 only", len(fs))
	}
	f := findingAbout(t, fs, "node docker02")
	if f.Mode != "FM-D10" || f.Severity != finding.High || f.Evidence.Vars["status"] != "NotReady" || f.Evidence.Vars["platform"] != "kubernetes" {
		t.Errorf("%s %s vars %v", f.Mode, f.Severity, f.Evidence.Vars)
	}
}

// describe node of a k3s worker the node controller marked unreachable.
func TestDescribeNodeUnreachable(t *testing.T) {
	p, err := ParseDescribeNode(readFixture(t, "describe-node-k3os-unreachable.txt"))
	if err != nil {
		t.Fatal(err)
	}
	f := findingAbout(t, Diagnose(&p.Cluster, now), "node k3os-3040")
	if f.Mode != "FM-D10" || f.Severity != finding.High || f.Evidence.Vars["status"] != "Unreachable" {
		t.Errorf("%s %s vars %v", f.Mode, f.Severity, f.Evidence.Vars)
	}
	if !strings.Contains(strings.Join(f.Evidence.Notes, " "), "node.kubernetes.io/unreachable:NoExecute") {
		t.Errorf("notes %q lack the taint", f.Evidence.Notes)
	}
}

// A tab-separated Conditions table alone: Ready Unknown since when.
func TestDescribeNodeConditionsTabs(t *testing.T) {
	fs := diagnoseFixture(t, "describe-node-conditions-tabs.txt", ParseDescribeNode)
	if len(fs) != 1 {
		t.Fatalf("%d findings; want 1", len(fs))
	}
	f := fs[0]
	if f.Evidence.Vars["status"] != "Unknown" || f.Since == nil || !f.Since.Equal(time.Date(2016, 11, 3, 12, 19, 12, 0, time.UTC)) {
		t.Errorf("vars %v since %v; want Unknown since 2016-11-03 12:19:12", f.Evidence.Vars, f.Since)
	}
	if !strings.Contains(f.Summary, "kubelet stopped posting its status") {
		t.Errorf("summary %q", f.Summary)
	}
}

// -o json: the same conversion as the live check; a list cut short gives
// the pods before the cut.
func TestParseJSONListAndTruncation(t *testing.T) {
	pod := readFixture(t, "pulumi-pod-imagepullbackoff.json")
	list := `$ kubectl get pods -o json` + "\n" + `{"apiVersion":"v1","kind":"List","items":[` + pod + `,` + pod[:len(pod)/2]
	p, err := ParseJSON(list)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Cluster.Pods) != 1 || len(p.Notes) == 0 || !strings.Contains(p.Notes[0], "cut short") {
		t.Fatalf("pods %d notes %q; want 1 pod and a note on the cut", len(p.Cluster.Pods), p.Notes)
	}
	f := findingAbout(t, Diagnose(&p.Cluster, time.Date(2019, 6, 25, 20, 10, 0, 0, time.UTC)), "pod default/foo")
	if f.Evidence.Vars["state"] != "image" || f.Evidence.Vars["image"] != "nginx:1.13-invalid" {
		t.Errorf("vars %v", f.Evidence.Vars)
	}
	one, err := ParseJSON(readFixture(t, "pulumi-pod-unschedulable.json"))
	if err != nil || len(one.Cluster.Pods) != 1 || one.Cluster.Pods[0].Phase != "Pending" {
		t.Errorf("single pod: %v %+v", err, one.Cluster.Pods)
	}
}

// FM-C7 rules on model values (no capture shows both addresses): the CNI
// annotation, kubeadm's advertise address and the certificate each name
// the old address.
func TestAddressChanged(t *testing.T) {
	cp := Node{Name: "cp1", Roles: []string{"control-plane"}, InternalIPs: []string{"192.168.1.23"},
		SeenAddrs:  map[string]string{"flannel.alpha.coreos.com/public-ip": "192.168.1.10"},
		Conditions: []Condition{{Type: "Ready", Status: "True"}}}
	c := Cluster{Nodes: []Node{cp}, CertIPs: []string{"10.96.0.1", "192.168.1.10"}, Server: "https://192.168.1.10:6443",
		Pods: []Pod{{Namespace: "kube-system", Name: "kube-apiserver-cp1", Node: "cp1", AdvertiseAddr: "192.168.1.10", Status: "Running"}}}
	f := findingAbout(t, Diagnose(&c, now), "node cp1")
	v := f.Evidence.Vars
	if f.Mode != "FM-C7" || f.Severity != finding.High || v["old_addr"] != "192.168.1.10" || v["new_addr"] != "192.168.1.23" {
		t.Errorf("%s %s vars %v", f.Mode, f.Severity, v)
	}
	if !strings.Contains(f.Summary, "kube-system/kube-apiserver-cp1") || !strings.Contains(strings.Join(f.Evidence.Notes, " "), "certificate is valid for 10.96.0.1, 192.168.1.10") {
		t.Errorf("summary %q notes %q", f.Summary, f.Evidence.Notes)
	}
	// Same address everywhere: nothing.
	c.Nodes[0].InternalIPs = []string{"192.168.1.10"}
	if fs := Diagnose(&c, now); len(fs) != 0 {
		t.Errorf("findings %+v; want none", fs)
	}
}

// crictl ps -a on a node: etcd's 25th attempt exited, a loop named by
// its container ID (for crictl logs/inspect); the cut row is skipped.
func TestCrictlPsLoop(t *testing.T) {
	fs := diagnoseFixture(t, "crictl-ps-a-etcd-loop.txt", ParseCrictlPs)
	if len(fs) != 1 {
		t.Fatalf("%d findings; want 1", len(fs))
	}
	f := fs[0]
	v := f.Evidence.Vars
	if f.Mode != "FM-C4" || f.Severity != finding.High || v["container"] != "etcd" || v["container_id"] != "4e53debaa3ddc" || v["restarts"] != "25" {
		t.Errorf("%s %s %s vars %v", f.Mode, f.Severity, f.Subject, v)
	}
	if f.Subject != "pod pod 5c17fc84618de" {
		t.Errorf("subject %q; want the pod by its ID", f.Subject)
	}
}

// get po -A from a fresh cluster: the API server cannot be created and
// coredns waits; the running pods are not findings.
func TestGetPodsCreateContainerError(t *testing.T) {
	fs := diagnoseFixture(t, "get-pods-A-createcontainererror.txt", getPods)
	if len(fs) != 3 {
		t.Errorf("%d findings; want 3", len(fs))
	}
	f := findingAbout(t, fs, "pod kube-system/kube-apiserver-kiv-cp-v48fw")
	if f.Severity != finding.Medium || f.Evidence.Vars["state"] != "config" || f.Evidence.Vars["reason"] != "CreateContainerError" {
		t.Errorf("%s vars %v", f.Severity, f.Evidence.Vars)
	}
	f = findingAbout(t, fs, "pod kube-system/coredns-5dd5756b68-57dz9")
	if f.Evidence.Vars["state"] != "pending" || !strings.Contains(f.Summary, "Pending for 28m") {
		t.Errorf("summary %q", f.Summary)
	}
}

// Only the Events of a describe: the scheduler's refusal is the finding,
// with its message as the reason.
func TestDescribePodEventsOnly(t *testing.T) {
	fs := diagnoseFixture(t, "describe-pod-events-failedscheduling.txt", describePod)
	if len(fs) != 1 {
		t.Fatalf("%d findings; want 1", len(fs))
	}
	f := fs[0]
	if f.Evidence.Vars["state"] != "pending" || f.Evidence.Vars["reason"] != "FailedScheduling: 0/3 nodes are available: 3 Insufficient memory." {
		t.Errorf("vars %v", f.Evidence.Vars)
	}
	if len(f.Evidence.Lines) != 1 || f.Evidence.Lines[0].Source != "event FailedScheduling" {
		t.Errorf("lines %+v; want the FailedScheduling event, not the Normal one", f.Evidence.Lines)
	}
}

// What people do to a paste, applied to a real capture: the same pods
// and findings come out.
func TestGetPodsSurvivesPasting(t *testing.T) {
	orig := readFixture(t, "get-pods-A-createcontainererror.txt")
	lines := strings.Split(orig, "\n")
	var noHeader []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "NAMESPACE") {
			noHeader = append(noHeader, l)
		}
	}
	// A terminal 60 columns wide wraps the apiserver's line.
	var wrapped []string
	for _, l := range lines {
		if strings.Contains(l, "kube-apiserver-kiv") && len(l) > 60 {
			wrapped = append(wrapped, l[:60], l[60:])
			continue
		}
		wrapped = append(wrapped, l)
	}
	variants := map[string]string{
		"crlf and trailing spaces": strings.ReplaceAll(orig, "\n", "   \r\n"),
		"no header":                strings.Join(noHeader, "\n"),
		"wrapped line":             strings.Join(wrapped, "\n"),
		"prompt":                   "root@cp1:~# kubectl get po -A\n" + orig + "\nroot@cp1:~# ",
	}
	wp := mustParsePods(t, orig)
	want := Diagnose(&wp.Cluster, now)
	for name, text := range variants {
		gp := mustParsePods(t, text)
		got := Diagnose(&gp.Cluster, now)
		if len(got) != len(want) {
			t.Errorf("%s: %d findings; want %d", name, len(got), len(want))
			continue
		}
		for i := range got {
			if got[i].Key != want[i].Key || got[i].Summary != want[i].Summary {
				t.Errorf("%s: finding %d is %q %q; want %q %q", name, i, got[i].Key, got[i].Summary, want[i].Key, want[i].Summary)
			}
		}
	}
}

func mustParsePods(t *testing.T, text string) Parsed {
	t.Helper()
	p, err := ParseGetPods(text, now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A dead node's Terminating and Unknown pods are named in the node's
// finding, not one finding each; a crash loop elsewhere still is one.
func TestDeadNodeFoldsItsPods(t *testing.T) {
	c := Cluster{
		Nodes: []Node{{Name: "w1", Conditions: []Condition{{Type: "Ready", Status: "Unknown", Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status.", Since: now.Add(-time.Hour)}}}},
		Pods: []Pod{
			{Namespace: "a", Name: "db-0", Node: "w1", Terminating: true, Deleting: now.Add(-50 * time.Minute), Status: "Terminating"},
			{Namespace: "a", Name: "web-1", Node: "w1", Status: "Unknown"},
			{Namespace: "a", Name: "api-2", Node: "w2", Status: "CrashLoopBackOff", Containers: []Container{{Name: "api", State: "waiting", Reason: "CrashLoopBackOff", Restarts: 9}}},
		},
	}
	fs := Diagnose(&c, now)
	if len(fs) != 2 {
		t.Fatalf("%d findings; want the node and api-2", len(fs))
	}
	n := findingAbout(t, fs, "node w1")
	if len(n.Evidence.Consumers) != 2 || n.Since == nil || !n.Since.Equal(now.Add(-time.Hour)) {
		t.Errorf("node finding consumers %+v since %v; want its two pods, since an hour", n.Evidence.Consumers, n.Since)
	}
	findingAbout(t, fs, "pod a/api-2")
}

// Rules on model values: a Ready node under disk pressure is medium, a
// pod Terminating for 10 minutes past its grace on a Ready node is its
// own finding with since when, and one that just began deleting is not.
func TestPressureAndStuckTerminating(t *testing.T) {
	c := Cluster{
		Nodes: []Node{{Name: "w2", Conditions: []Condition{
			{Type: "Ready", Status: "True"},
			{Type: "DiskPressure", Status: "True", Reason: "KubeletHasDiskPressure", Message: "kubelet has disk pressure", Since: now.Add(-20 * time.Minute)},
		}}},
		Pods: []Pod{
			{Namespace: "a", Name: "old", Node: "w2", Terminating: true, Deleting: now.Add(-10 * time.Minute), GraceSeconds: 30},
			{Namespace: "a", Name: "new", Node: "w2", Terminating: true, Deleting: now.Add(-time.Minute), GraceSeconds: 30},
		},
	}
	fs := Diagnose(&c, now)
	n := findingAbout(t, fs, "node w2")
	if n.Mode != "FM-D10" || n.Severity != finding.Medium || n.Evidence.Vars["status"] != "DiskPressure" {
		t.Errorf("node: %s %s vars %v; want FM-D10 medium DiskPressure", n.Mode, n.Severity, n.Evidence.Vars)
	}
	p := findingAbout(t, fs, "pod a/old")
	if p.Severity != finding.Medium || p.Evidence.Vars["state"] != "terminating" || p.Since == nil || !p.Since.Equal(now.Add(-10*time.Minute-30*time.Second)) {
		t.Errorf("pod: %s vars %v since %v", p.Severity, p.Evidence.Vars, p.Since)
	}
	if len(fs) != 2 {
		t.Errorf("%d findings; want the node and a/old only", len(fs))
	}
}

// The agent's memory: a node whose InternalIP changes between two cycles
// is FM-C7 with the old and new address, until its old address is back.
func TestAddrMemoryAcrossCycles(t *testing.T) {
	m := NewAddrMemory()
	node := func(ip string) []Node {
		return []Node{{Name: "cp1", InternalIPs: []string{ip}, Conditions: []Condition{{Type: "Ready", Status: "True"}}}}
	}
	if got := m.Observe(node("192.168.1.10"), now); len(got) != 0 {
		t.Fatalf("first cycle: %+v; want nothing", got)
	}
	c := Cluster{Nodes: node("192.168.1.23")}
	c.Moved = m.Observe(c.Nodes, now.Add(15*time.Second))
	f := findingAbout(t, Diagnose(&c, now), "node cp1")
	if f.Mode != "FM-C7" || f.Evidence.Vars["old_addr"] != "192.168.1.10" || f.Evidence.Vars["new_addr"] != "192.168.1.23" {
		t.Errorf("%s vars %v", f.Mode, f.Evidence.Vars)
	}
	// Still reported a cycle later, gone once the old address is back.
	if got := m.Observe(node("192.168.1.23"), now.Add(30*time.Second)); len(got) != 1 {
		t.Errorf("next cycle: %+v; want the change still", got)
	}
	if got := m.Observe(node("192.168.1.10"), now.Add(45*time.Second)); len(got) != 0 {
		t.Errorf("address back: %+v; want nothing", got)
	}
}
