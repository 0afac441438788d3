package explain

import (
	"regexp"

	"github.com/hinomi/hinomi/internal/kube"
)

var (
	reGetNodesHeader = regexp.MustCompile(`^\s*NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\b`)
	reGetNodesRow    = regexp.MustCompile(`^\s*\S+\s+(Ready|NotReady|Unknown)(,SchedulingDisabled)?\s+\S+\s+(\d+[ydhms])+\s+v\d+\.\d+`)
)

// K8sGetNodes reads `kubectl get nodes` (plain or -o wide).
var K8sGetNodes = Format{
	Name:    "kubectl-get-nodes",
	Command: "kubectl get nodes -o wide",
	Detect: func(in *Input) int {
		if s := headerScore(in, reGetNodesHeader); s > 0 {
			return s
		}
		for _, l := range in.Lines {
			if reGetNodesRow.MatchString(l) {
				if commandIs(k8sCommand(in), "get", "nodes", "node", "no") {
					return 90
				}
				return 60
			}
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		p, err := kube.ParseGetNodes(in.Text)
		return k8sResult("kubectl-get-nodes", in, p, err)
	},
}
