package explain

import (
	"strings"

	"github.com/hinomi/hinomi/internal/pve"
)

// pvecmStatus is `pvecm status`: corosync's quorum view with PVE's
// "Cluster information" block in front.
func pvecmStatus() Format {
	return Format{
		Name:    "pvecm-status",
		Command: "pvecm status",
		Detect: func(in *Input) int {
			if !hasQuorumBlock(in.Text) {
				return 0
			}
			if strings.Contains(in.Text, "Cluster information") || strings.HasPrefix(in.Command, "pvecm") {
				return 100
			}
			return 0
		},
		Explain: explainQuorum("pvecm-status"),
	}
}

// hasQuorumBlock reports whether text holds the votequorum block both
// pvecm and corosync-quorumtool print.
func hasQuorumBlock(text string) bool {
	return strings.Contains(text, "Votequorum information") ||
		(strings.Contains(text, "Expected votes:") && strings.Contains(text, "Total votes:")) ||
		strings.Contains(text, "Quorum provider:")
}

// explainQuorum diagnoses either quorum format with the live check's code.
func explainQuorum(name string) func(in *Input) (Result, error) {
	return func(in *Input) (Result, error) {
		q, err := pve.ParseQuorum(in.Text)
		if err != nil {
			return Result{}, err
		}
		res := Result{Format: name}
		if !q.HasQuorate && !q.HasVotes {
			res.Notes = append(res.Notes, "The paste holds neither the Quorate line nor the votes: nothing to judge.")
		}
		if len(q.Members) == 0 {
			res.Notes = append(res.Notes, "No membership table: the nodes present cannot be named.")
		}
		res.Notes = append(res.Notes, "Missing nodes are named only from corosync.conf, which a paste does not carry; doctor on the node names them.")
		res.Findings = pve.DiagnoseQuorum(q, pve.Scope{Node: in.Host, Cluster: q.Cluster, Now: in.Now}, timeZero)
		return res, nil
	}
}
