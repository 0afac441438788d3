package explain

import (
	"regexp"

	"github.com/hinomi/hinomi/internal/kube"
)

var (
	reDescribePodKeys = regexp.MustCompile(`(?m)^\s*(Restart Count|Last State|Container ID|QoS Class|Controlled By):`)
	reDescribeState   = regexp.MustCompile(`(?m)^\s*State:\s+(Waiting|Running|Terminated)\s*$`)
	// describe's Events table header, the part people paste most.
	reDescribeEvents = regexp.MustCompile(`(?m)^\s*Type\s+Reason\s+Age\s+From\s+Message\s*$`)
)

// K8sDescribePod reads `kubectl describe pod` (whole, or one container's
// block).
var K8sDescribePod = Format{
	Name:    "kubectl-describe-pod",
	Command: "kubectl describe pod -n NAMESPACE POD",
	Detect: func(in *Input) int {
		keys := len(reDescribePodKeys.FindAllString(in.Text, 4))
		state := reDescribeState.MatchString(in.Text)
		switch {
		case state && keys >= 2:
			return 95
		case state && commandIs(k8sCommand(in), "describe", "pod", "pods", "po"):
			return 95
		case state || keys >= 2:
			return 50
		case reDescribeEvents.MatchString(in.Text):
			return 60
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		p, err := kube.ParseDescribePod(in.Text, in.Now)
		return k8sResult("kubectl-describe-pod", in, p, err)
	},
}
