package checks

import (
	"context"
	"fmt"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
)

// checkConntrack is the conntrack part of FM-B4: when the table is full
// the kernel drops new connections ("nf_conntrack: table full, dropping
// packet") for every container and the host alike.
func checkConntrack(_ context.Context, env *Env) (Result, error) {
	var res Result
	count, err := readInt(env.Src, "/proc/sys/net/netfilter/nf_conntrack_count")
	if host.Missing(err) {
		return res, ErrNotApplicable // module not loaded: no table to fill
	}
	if err != nil {
		return res, err
	}
	limit, err := readInt(env.Src, "/proc/sys/net/netfilter/nf_conntrack_max")
	if err != nil {
		return res, err
	}
	fig := finding.Figure{Name: "conntrack entries", Value: float64(count), Limit: float64(limit), Source: "/proc/sys/net/netfilter/nf_conntrack_count"}
	res.Headroom = append(res.Headroom, fig)
	if sev := finding.ForRatio(float64(count), float64(limit)); sev > 0 {
		vars := map[string]string{"resource": "conntrack", "used": itoa(count), "limit": itoa(limit),
			"sysctl": "net.netfilter.nf_conntrack_max", "sysctl_new": itoa(suggest(count, limit, 262144))}
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-B4", Severity: sev, Subject: "conntrack",
			Summary: fmt.Sprintf("The connection-tracking table is %.0f%% full (%d of %d); when full the kernel drops new connections for every container and the host.",
				fig.Percent(), count, limit),
			Evidence: finding.Evidence{Figures: []finding.Figure{fig}, Lines: env.Kernel.Matching("nf_conntrack: table full", "nf_conntrack: nf_conntrack: table full"), Vars: vars},
		})
	}
	return res, nil
}
