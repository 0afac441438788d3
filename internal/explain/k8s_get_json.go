package explain

import (
	"regexp"

	"github.com/hinomi/hinomi/internal/kube"
)

var reK8sKind = regexp.MustCompile(`"kind"\s*:\s*"(PodList|NodeList|EventList|Pod|Node|List)"`)

// K8sGetJSON reads `kubectl get pods|nodes -o json`.
var K8sGetJSON = Format{
	Name:    "kubectl-get-json",
	Command: "kubectl get pods -A -o json (or nodes, or one pod)",
	Detect: func(in *Input) int {
		if !reK8sKind.MatchString(in.Text) {
			return 0
		}
		if reK8sAPIVersion.MatchString(in.Text) {
			return 100
		}
		return 70
	},
	Explain: func(in *Input) (Result, error) {
		p, err := kube.ParseJSON(in.Text)
		return k8sResult("kubectl-get-json", in, p, err)
	},
}

var reK8sAPIVersion = regexp.MustCompile(`"apiVersion"\s*:\s*"v1"`)
