package explain

import (
	"regexp"

	"github.com/hinomi/hinomi/internal/kube"
)

var (
	reCrictlHeader = regexp.MustCompile(`^\s*CONTAINER(\s+ID)?\s+IMAGE\s+CREATED\s+STATE\s+NAME\s+ATTEMPT\s+POD ID\b`)
	reCrictlRow    = regexp.MustCompile(`^\s*[0-9a-f]{12,64}\s+\S+\s+.*\bago\s+(Running|Exited|Created|Unknown|CONTAINER_\w+)\s+\S+\s+\d+\s+[0-9a-f]{12,64}\b`)
)

// K8sCrictlPs reads `crictl ps` and `crictl ps -a` on a Kubernetes node.
var K8sCrictlPs = Format{
	Name:    "crictl-ps",
	Command: "crictl ps -a",
	Detect: func(in *Input) int {
		if s := headerScore(in, reCrictlHeader); s > 0 {
			return s
		}
		if headerScore(in, reCrictlRow) > 0 {
			return 70
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		p, err := kube.ParseCrictlPs(in.Text)
		return k8sResult("crictl-ps", in, p, err)
	},
}
