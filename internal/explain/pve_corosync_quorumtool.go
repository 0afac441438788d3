package explain

import (
	"strings"
	"time"
)

// timeZero is "not known" for the times a paste cannot tell.
var timeZero time.Time

// corosyncQuorumtool is `corosync-quorumtool -s` (corosync 2 and 3).
func corosyncQuorumtool() Format {
	return Format{
		Name:    "corosync-quorumtool",
		Command: "corosync-quorumtool -s",
		Detect: func(in *Input) int {
			if !hasQuorumBlock(in.Text) || strings.Contains(in.Text, "Cluster information") || strings.HasPrefix(in.Command, "pvecm") {
				return 0
			}
			return 90
		},
		Explain: explainQuorum("corosync-quorumtool"),
	}
}
