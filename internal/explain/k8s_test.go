package explain

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func k8sInput(t *testing.T, name string) *Input {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "kube", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	return &Input{Name: name, Text: text, Lines: strings.Split(text, "\n"), Now: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)}
}

// Each real capture is recognised as the command that printed it and
// diagnosed: the format, and the mode and subject of a finding.
func TestKubernetesFormatsRecogniseRealCaptures(t *testing.T) {
	cases := []struct {
		file, format, mode, subject string
	}{
		{"samples-k8s-1.txt", "kubectl-get-pods", "FM-C4", "pod kube-flannel/kube-flannel-ds-b9pmh"},
		{"get-pods-watch-wide.txt", "kubectl-get-pods", "FM-C4", "pod nginx"},
		{"get-pods-oomkilled.txt", "kubectl-get-pods", "FM-C4", "pod memory-demo-2"},
		{"get-pods-A-createcontainererror.txt", "kubectl-get-pods", "FM-C4", "pod kube-system/kube-apiserver-kiv-cp-v48fw"},
		{"get-nodes-notready.txt", "kubectl-get-nodes", "FM-D10", "node docker02"},
		{"describe-pod-crashloop-sigterm.txt", "kubectl-describe-pod", "FM-C4", "pod (name not in the paste)"},
		{"describe-node-k3os-unreachable.txt", "kubectl-describe-node", "FM-D10", "node k3os-3040"},
		{"describe-node-conditions-tabs.txt", "kubectl-describe-node", "FM-D10", "node (name not in the paste)"},
		{"describe-pod-events-failedscheduling.txt", "kubectl-describe-pod", "FM-C4", "pod (name not in the paste)"},
		{"crictl-ps-a-etcd-loop.txt", "crictl-ps", "FM-C4", "pod pod 5c17fc84618de"},
		{"pulumi-pod-imagepullbackoff.json", "kubectl-get-json", "FM-C4", "pod default/foo"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			in := k8sInput(t, tc.file)
			f, ok := Recognise(in, All())
			if !ok || f.Name != tc.format {
				t.Fatalf("recognised as %q (%v); want %s", f.Name, ok, tc.format)
			}
			res, err := f.Explain(in)
			if err != nil {
				t.Fatal(err)
			}
			for _, fd := range res.Findings {
				if fd.Mode == tc.mode && fd.Subject == tc.subject {
					return
				}
			}
			t.Errorf("no %s finding about %q in %+v", tc.mode, tc.subject, res.Findings)
		})
	}
}

// The seed 004 kubelet log and other text are not mistaken for a table.
func TestKubernetesFormatsIgnoreLogs(t *testing.T) {
	in := k8sInput(t, "samples-k8s-2.txt")
	for _, f := range []Format{K8sGetPods, K8sGetNodes, K8sGetJSON, K8sDescribePod, K8sDescribeNode, K8sCrictlPs} {
		if s := f.Detect(in); s > 0 {
			t.Errorf("%s claims a kubelet log with score %d", f.Name, s)
		}
	}
}
