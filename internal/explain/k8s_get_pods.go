package explain

import (
	"regexp"

	"github.com/hinomi/hinomi/internal/kube"
)

var (
	reGetPodsHeader = regexp.MustCompile(`^\s*(NAMESPACE\s+)?NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\b`)
	// A header-less row: [ns] name 0/1 CrashLoopBackOff 6 (111s ago) 8m8s
	reGetPodsRow = regexp.MustCompile(`^\s*(\S+\s+)?\S+\s+\d+/\d+\s+[A-Za-z][\w:]*\s+\d+(\s+\([^)]*\))?\s+(\d+[ydhms])+\b`)
)

// K8sGetPods reads `kubectl get pods` (plain, -o wide, -A).
var K8sGetPods = Format{
	Name:    "kubectl-get-pods",
	Command: "kubectl get pods -A -o wide",
	Detect: func(in *Input) int {
		if s := headerScore(in, reGetPodsHeader); s > 0 {
			return s
		}
		rows := 0
		for _, l := range in.Lines {
			if reGetPodsRow.MatchString(l) {
				rows++
			}
		}
		switch {
		case rows > 0 && commandIs(k8sCommand(in), "get", "pods", "pod", "po", "all"):
			return 90
		case rows >= 2:
			return 60
		case rows == 1:
			return 40
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		p, err := kube.ParseGetPods(in.Text, in.Now)
		return k8sResult("kubectl-get-pods", in, p, err)
	},
}
