package checks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/runbook"
)

// fakeKubeToken is what the test kubeconfig authenticates with; the
// server refuses requests without it, so a finding proves client-go
// carried the kubeconfig's credentials.
const fakeKubeToken = "hinomi-test-token"

// kubeAPI is a real HTTPS server on 127.0.0.1 answering the three lists
// the check reads with the given bodies.
func kubeAPI(t testing.TB, pods, nodes string) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fakeKubeToken {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/pods":
			fmt.Fprint(w, pods)
		case "/api/v1/nodes":
			fmt.Fprint(w, nodes)
		case "/api/v1/events":
			fmt.Fprint(w, `{"kind":"EventList","apiVersion":"v1","items":[]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// useKubeconfig points $KUBECONFIG at a kubeconfig for server that
// authenticates with the test token, and hides the machine's own
// (~/.kube/config).
func useKubeconfig(t testing.TB, server string) {
	t.Helper()
	writeKubeconfig(t, server, "    token: "+fakeKubeToken)
}

// writeKubeconfig writes a kubeconfig for server whose user stanza is
// user (indented lines) and points $KUBECONFIG and $HOME at it.
func writeKubeconfig(t testing.TB, server, user string) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "config")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: test
  user:
%s
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
`, server, user)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", p)
	t.Setenv("HOME", dir)
}

// podList wraps verbatim pod captures from testdata into a PodList.
func podList(t *testing.T, files ...string) string {
	t.Helper()
	var items []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("..", "kube", "testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, string(b))
	}
	return `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[` + strings.Join(items, ",") + `]}`
}

const emptyNodes = `{"kind":"NodeList","apiVersion":"v1","items":[]}`

func kubeEnv(now time.Time) *Env {
	return &Env{Src: host.Live(), Host: "test", Now: now, Log: slog.New(slog.DiscardHandler)}
}

// Real pod objects (recorded from Docker Desktop by pulumi-kubernetes)
// served by a real HTTPS server, read by client-go through a kubeconfig
// with a token: each is a finding naming the pod with the reason the
// API gave, and the snapshot replays to the same finding.
func TestKubernetesCheckAgainstAPIServer(t *testing.T) {
	cases := []struct {
		fixture string
		now     time.Time
		sev     finding.Severity
		state   string
		reason  string
	}{
		{"pulumi-pod-imagepullbackoff.json", time.Date(2019, 6, 25, 20, 10, 0, 0, time.UTC), finding.Medium, "image", `Back-off pulling image "nginx:1.13-invalid"`},
		{"pulumi-pod-unschedulable.json", time.Date(2019, 6, 25, 20, 45, 2, 0, time.UTC), finding.Medium, "pending", "Unschedulable: 0/1 nodes are available: 1 Insufficient memory."},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			srv := kubeAPI(t, podList(t, tc.fixture), emptyNodes)
			useKubeconfig(t, srv.URL)
			dir := filepath.Join(t.TempDir(), "snap")
			rec, err := host.NewRecorder(dir)
			if err != nil {
				t.Fatal(err)
			}
			env := kubeEnv(tc.now)
			env.Src.Record(rec)
			res, err := checkKubernetes(t.Context(), env)
			if err != nil {
				t.Fatal(err)
			}
			if err := rec.Close(host.Meta{Host: "test", Taken: tc.now}); err != nil {
				t.Fatal(err)
			}
			f := findingFor(t, res, "pod default/foo")
			if f.Mode != "FM-C4" || f.Severity != tc.sev {
				t.Errorf("mode %s severity %s; want FM-C4 %s", f.Mode, f.Severity, tc.sev)
			}
			v := f.Evidence.Vars
			if v["state"] != tc.state || v["reason"] != tc.reason || v["namespace"] != "default" || v["pod"] != "foo" || v["owner"] != "kubernetes" {
				t.Errorf("vars %v; want state %s, reason %q, pod default/foo", v, tc.state, tc.reason)
			}
			if !strings.Contains(f.Summary, tc.reason) {
				t.Errorf("summary %q lacks the reason %q", f.Summary, tc.reason)
			}
			if f.Since == nil {
				t.Error("no since")
			}

			src, err := host.FromDir(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			// The replay must not touch the server: close it first.
			srv.Close()
			replayed, err := checkKubernetes(t.Context(), &Env{Src: src, Now: tc.now, Log: env.Log})
			if err != nil {
				t.Fatal(err)
			}
			if g := findingFor(t, replayed, "pod default/foo"); g.Summary != f.Summary || g.Severity != f.Severity {
				t.Errorf("replayed %s %q; want %s %q", g.Severity, g.Summary, f.Severity, f.Summary)
			}
		})
	}
}

// client-go reads the certificate's addresses the server presents: the
// test server's is valid for 127.0.0.1, which is what FM-C7 compares a
// control-plane node's InternalIP with.
func TestKubernetesReadsAPIServerCertificateAddresses(t *testing.T) {
	srv := kubeAPI(t, `{"kind":"PodList","apiVersion":"v1","items":[]}`, emptyNodes)
	ips := certIPs(t.Context(), srv.URL)
	found := false
	for _, ip := range ips {
		found = found || ip == "127.0.0.1"
	}
	if !found {
		t.Errorf("certificate IPs %v; want 127.0.0.1 among them", ips)
	}
}

// Wrong credentials are a Blind line with the server's own message.
func TestKubernetesUnauthorizedIsBlind(t *testing.T) {
	srv := kubeAPI(t, "", emptyNodes)
	useKubeconfig(t, srv.URL)
	cfg, _ := os.ReadFile(os.Getenv("KUBECONFIG"))
	_ = os.WriteFile(os.Getenv("KUBECONFIG"), []byte(strings.Replace(string(cfg), fakeKubeToken, "wrong", 1)), 0o600)
	res, err := checkKubernetes(t.Context(), kubeEnv(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 || len(res.Blind) != 1 || !strings.Contains(res.Blind[0], "HTTP 401: Unauthorized") {
		t.Errorf("findings %d, blind %q; want one Blind line with HTTP 401: Unauthorized", len(res.Findings), res.Blind)
	}
}

// An API server that accepts connections and never answers costs one
// call deadline, not a hang, and is a Blind line naming the deadline.
func TestKubernetesSilentAPIServerDoesNotHang(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; c.Close() }()
		}
	}()
	useKubeconfig(t, "https://"+ln.Addr().String())
	start := time.Now()
	res, err := checkKubernetes(t.Context(), kubeEnv(time.Now()))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if took > kubeCallTimeout+2*time.Second {
		t.Errorf("took %s; want about one call deadline (%s)", took, kubeCallTimeout)
	}
	if len(res.Blind) != 1 || !strings.Contains(res.Blind[0], "no answer within") {
		t.Errorf("blind %q; want one line saying the server did not answer in time", res.Blind)
	}
}

// Without a kubeconfig and outside a cluster the check is not
// applicable, and costs nothing measurable.
func TestKubernetesWithoutKubeconfigIsNotApplicable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBECONFIG", filepath.Join(dir, "none"))
	t.Setenv("HOME", dir)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := os.Stat("/etc/kubernetes/admin.conf"); err == nil {
		t.Skip("this machine has /etc/kubernetes/admin.conf")
	}
	if _, err := os.Stat("/etc/rancher/k3s/k3s.yaml"); err == nil {
		t.Skip("this machine has k3s")
	}
	_, err := checkKubernetes(context.Background(), kubeEnv(time.Now()))
	if err != ErrNotApplicable {
		t.Errorf("err %v; want ErrNotApplicable", err)
	}
}

// The Kubernetes steps of FM-C4's runbook fit the pod: kubectl with its
// namespace, name and container, crictl with its container ID.
func TestKubernetesPodRunbookSteps(t *testing.T) {
	srv := kubeAPI(t, podList(t, "pulumi-pod-imagepullbackoff.json"), emptyNodes)
	useKubeconfig(t, srv.URL)
	res, err := checkKubernetes(t.Context(), kubeEnv(time.Date(2019, 6, 25, 20, 10, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "pod default/foo")
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := book.Get(f.Mode).Render(f.Evidence.Vars)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kubectl describe pod -n default foo", "kubectl logs -n default foo -c nginx --previous"} {
		if !strings.Contains(rb, want) {
			t.Errorf("runbook lacks %q:\n%s", want, rb)
		}
	}
	if strings.Contains(rb, "docker restart") {
		t.Errorf("runbook offers docker restart for a pod:\n%s", rb)
	}
}

// BenchmarkKubernetesNotApplicable is the check's cost on a host without
// Kubernetes (looking for four kubeconfigs, the in-cluster variables and
// the kube-apiserver manifest), printed beside its baseline measured in
// the same run: one read of /proc/sys/fs/file-nr, the cheapest input of
// the open-files check.
func BenchmarkKubernetesNotApplicable(b *testing.B) {
	dir := b.TempDir()
	b.Setenv("KUBECONFIG", filepath.Join(dir, "none"))
	b.Setenv("HOME", dir)
	env := kubeEnv(time.Now())
	const n = 2000
	start := time.Now()
	for range n {
		_, _ = env.Src.ReadFile("/proc/sys/fs/file-nr")
	}
	base := time.Since(start) / n
	for b.Loop() {
		if _, err := checkKubernetes(context.Background(), env); err != ErrNotApplicable {
			b.Fatal(err)
		}
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per.Nanoseconds())/1000, "µs/check")
	b.ReportMetric(float64(base.Nanoseconds())/1000, "µs/baseline-read")
	b.ReportMetric(float64(per)/float64(max(base, 1)), "x-baseline")
}

// Seed 004: the control-plane node's address changed, so the API server
// cannot be reached at all. The check finds it on the host, from a real
// kube-apiserver manifest (advertising 10.211.55.110) and this machine's
// real `ip -o addr show`, recorded into a snapshot and replayed.
func TestKubernetesControlPlaneAddressChangedOnHost(t *testing.T) {
	manifest, err := os.ReadFile(filepath.Join("..", "kube", "testdata", "kube-apiserver-manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "snap")
	rec, err := host.NewRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	live := host.Live()
	live.Record(rec)
	out, err := live.Command(t.Context(), "ip-addr", "ip", "-o", "addr", "show")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no ip command (iproute2): %v", err)
		}
		t.Skipf("no ip command here: %v", err)
	}
	rec.File("/etc/kubernetes/manifests/kube-apiserver.yaml", manifest)
	if err := rec.Close(host.Meta{Host: "cp1", Taken: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out.Stdout), "10.211.55.110") {
		t.Skip("this machine has the manifest's address")
	}
	src, err := host.FromDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	useKubeconfig(t, "https://127.0.0.1:1") // not captured: the snapshot has no "kubernetes" probe
	res, err := checkKubernetes(t.Context(), &Env{Src: src, Host: "cp1", Now: time.Now(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "node cp1")
	v := f.Evidence.Vars
	if f.Mode != "FM-C7" || f.Severity != finding.High || v["old_addr"] != "10.211.55.110" || v["node"] != "cp1" {
		t.Errorf("%s %s vars %v; want FM-C7 high from 10.211.55.110", f.Mode, f.Severity, v)
	}
	if v["new_addr"] == "" || !strings.Contains(string(out.Stdout), v["new_addr"]) || v["iface"] == "" {
		t.Errorf("new_addr %q iface %q; want one of this machine's addresses:\n%s", v["new_addr"], v["iface"], out.Stdout)
	}
}

// A node the node controller marked unreachable, served as a NodeList:
// FM-D10 naming the node, from its taints (its conditions are not in the
// capture).
func TestKubernetesUnreachableNodeFromAPI(t *testing.T) {
	node, err := os.ReadFile(filepath.Join("..", "kube", "testdata", "k3os-node-from-describe.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := kubeAPI(t, `{"kind":"PodList","apiVersion":"v1","items":[]}`, `{"kind":"NodeList","apiVersion":"v1","items":[`+string(node)+`]}`)
	useKubeconfig(t, srv.URL)
	res, err := checkKubernetes(t.Context(), kubeEnv(time.Date(2021, 4, 29, 9, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "node k3os-3040")
	if f.Mode != "FM-D10" || f.Severity != finding.High || f.Evidence.Vars["status"] != "Unreachable" || f.Evidence.Vars["platform"] != "kubernetes" {
		t.Errorf("%s %s vars %v; want FM-D10 high Unreachable", f.Mode, f.Severity, f.Evidence.Vars)
	}
	if len(res.Headroom) != 2 || res.Headroom[0].Value != 0 || res.Headroom[0].Limit != 1 {
		t.Errorf("headroom %+v; want 0 of 1 nodes Ready", res.Headroom)
	}
}

// BenchmarkKubernetesCheck500Pods is one agent cycle's Kubernetes work on
// a cluster of 500 pods (the recorded ImagePullBackOff pod under 500
// names, so every one is also a finding) served by a real HTTPS server:
// listing, decoding, reducing and diagnosing. It prints the CPU time of
// a cycle and its share of a core at the agent's default interval (15 s),
// and beside it, as the baseline measured in the same run, the CPU time
// of fetching the same list with net/http alone.
func BenchmarkKubernetesCheck500Pods(b *testing.B) {
	pod, err := os.ReadFile(filepath.Join("..", "kube", "testdata", "pulumi-pod-imagepullbackoff.json"))
	if err != nil {
		b.Fatal(err)
	}
	items := make([]string, 500)
	for i := range items {
		items[i] = strings.Replace(string(pod), `"name": "foo"`, fmt.Sprintf(`"name": "foo-%d"`, i), 1)
	}
	list := `{"kind":"PodList","apiVersion":"v1","items":[` + strings.Join(items, ",") + `]}`
	srv := kubeAPI(b, list, emptyNodes)
	useKubeconfig(b, srv.URL)
	env := kubeEnv(time.Date(2019, 6, 25, 20, 10, 0, 0, time.UTC))

	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	hc := srv.Client()
	const baseRuns = 5
	c0 := cpu()
	for range baseRuns {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/pods", nil)
		req.Header.Set("Authorization", "Bearer "+fakeKubeToken)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	base := (cpu() - c0) / baseRuns

	c0 = cpu()
	for b.Loop() {
		res, err := checkKubernetes(context.Background(), env)
		if err != nil || len(res.Findings) != 500 {
			b.Fatalf("err %v, %d findings; want 500", err, len(res.Findings))
		}
	}
	per := (cpu() - c0) / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms-cpu/cycle")
	b.ReportMetric(100*per.Seconds()/15, "%core@15s")
	b.ReportMetric(float64(base.Microseconds())/1000, "ms-cpu/baseline-fetch")
	b.ReportMetric(float64(per)/float64(max(base, 1)), "x-baseline")
}

// A kubeconfig whose exec credential plugin never returns (here: sleep
// 600) does not hang the check, nor outlive it: the plugin is stopped
// after execPluginLimit and the check says what failed.
func TestKubernetesHungCredentialPluginDoesNotHang(t *testing.T) {
	srv := kubeAPI(t, `{"kind":"PodList","apiVersion":"v1","items":[]}`, emptyNodes)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep program")
	}
	writeKubeconfig(t, srv.URL, fmt.Sprintf(`    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: %s
      args: ["600"]
      interactiveMode: Never`, sleep))
	start := time.Now()
	res, err := checkKubernetes(t.Context(), kubeEnv(time.Now()))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if took > execPluginLimit+2*time.Second {
		t.Errorf("took %s; want the plugin stopped after %s", took, execPluginLimit)
	}
	if len(res.Blind) != 1 || !strings.Contains(res.Blind[0], "list nodes") || !strings.Contains(res.Blind[0], srv.URL) {
		t.Errorf("blind %q; want one line naming the server and the failed call", res.Blind)
	}
	t.Logf("took %s: %s", took, res.Blind)
}

// The ready recovery steps of a Kubernetes node finding are kubelet and
// kubectl ones, never Docker or Swarm commands; deleting the node is left
// to a person.
func TestKubernetesNodeRunbookStepsFitKubernetes(t *testing.T) {
	node, err := os.ReadFile(filepath.Join("..", "kube", "testdata", "k3os-node-from-describe.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := kubeAPI(t, `{"kind":"PodList","apiVersion":"v1","items":[]}`, `{"kind":"NodeList","apiVersion":"v1","items":[`+string(node)+`]}`)
	useKubeconfig(t, srv.URL)
	res, err := checkKubernetes(t.Context(), kubeEnv(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "node k3os-3040")
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := book.Get(f.Mode).Steps("Recover", f.Evidence.Vars)
	if err != nil {
		t.Fatal(err)
	}
	var ready []string
	for _, s := range steps {
		if s.Ready {
			ready = append(ready, s.Lines...)
		}
	}
	all := strings.Join(ready, "\n")
	if !strings.Contains(all, "kubectl cordon k3os-3040") || !strings.Contains(all, "systemctl restart kubelet") {
		t.Errorf("ready steps lack cordon or the kubelet restart:\n%s", all)
	}
	for _, bad := range []string{"docker", "kubectl delete node"} {
		if strings.Contains(all, bad) {
			t.Errorf("ready steps hold %q:\n%s", bad, all)
		}
	}
}

// Nodes readable but pods forbidden (an RBAC role that lists nodes only):
// the nodes are judged and the refusal is a Blind line.
func TestKubernetesPodsForbiddenIsBlind(t *testing.T) {
	srv := kubeAPI(t, "", emptyNodes)
	useKubeconfig(t, srv.URL)
	forbid := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/nodes" {
			srv.Config.Handler.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods is forbidden: User \"hinomi\" cannot list resource \"pods\" in API group \"\" at the cluster scope","reason":"Forbidden","code":403}`)
	}))
	defer forbid.Close()
	useKubeconfig(t, forbid.URL)
	res, err := checkKubernetes(t.Context(), kubeEnv(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blind) == 0 || !strings.Contains(res.Blind[0], `HTTP 403: pods is forbidden: User "hinomi" cannot list resource "pods"`) {
		t.Errorf("blind %q; want the 403 with the server's message", res.Blind)
	}
}
