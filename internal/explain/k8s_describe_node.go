package explain

import (
	"regexp"

	"github.com/hinomi/hinomi/internal/kube"
)

var (
	reDescribeNodeCond = regexp.MustCompile(`(?m)^\s*(Ready|MemoryPressure|DiskPressure|PIDPressure|OutOfDisk|NetworkUnavailable)\s+(True|False|Unknown)\s+\w{3}, `)
	reDescribeNodeKeys = regexp.MustCompile(`(?m)^(Taints|Unschedulable|Roles|Non-terminated Pods|Allocatable|Capacity|System Info):`)
)

// K8sDescribeNode reads `kubectl describe node`.
var K8sDescribeNode = Format{
	Name:    "kubectl-describe-node",
	Command: "kubectl describe node NODE",
	Detect: func(in *Input) int {
		conds := reDescribeNodeCond.MatchString(in.Text)
		keys := len(reDescribeNodeKeys.FindAllString(in.Text, 3))
		switch {
		case conds && keys >= 1:
			return 100
		case conds || keys >= 2:
			return 80
		case keys == 1 && commandIs(k8sCommand(in), "describe", "node", "nodes", "no"):
			return 80
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		p, err := kube.ParseDescribeNode(in.Text)
		return k8sResult("kubectl-describe-node", in, p, err)
	},
}
