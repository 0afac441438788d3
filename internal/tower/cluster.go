package tower

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
)

// Findings about a cluster as a whole (they carry Vars["cluster"], as
// the Proxmox/corosync checks' do) are one alert per cluster and finding
// key, whatever number of its nodes report them: a cluster that lost
// quorum pages once, "cluster pvelive: …", with each node's view, not
// once per node. A key that names a node ("corosync network of pve2")
// stays that node's.

// clusterFindings gathers a cluster's findings by alert key.
type clusterFindings map[string][]*Finding

// clusterKey is the alert key of a cluster finding.
func clusterKey(cluster, findingKey string) string {
	return "finding/cluster " + cluster + "/" + findingKey
}

func (c clusterFindings) add(f *Finding) {
	k := clusterKey(f.Finding.Evidence.Vars["cluster"], f.Finding.Key)
	c[k] = append(c[k], f)
}

// clusterSignals is one signal per cluster finding, marked in seen.
func (e *evaluation) clusterSignals(c clusterFindings, seen map[string]bool, rule alerting.Rule) []signal {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sigs []signal
	for _, key := range keys {
		fs := c[key]
		// The worst view leads; ties go to the first node by name.
		slices.SortFunc(fs, func(a, b *Finding) int {
			if a.Finding.Severity != b.Finding.Severity {
				return int(b.Finding.Severity) - int(a.Finding.Severity)
			}
			return strings.Compare(a.Host, b.Host)
		})
		lead := fs[0]
		cluster := "cluster " + lead.Finding.Evidence.Vars["cluster"]
		var hosts []string
		since := lead.Opened
		for _, f := range fs {
			hosts = append(hosts, f.Host)
			if f.Opened.Before(since) {
				since = f.Opened
			}
			if f.Finding.Since != nil && f.Finding.Since.Before(since) {
				since = *f.Finding.Since
			}
		}
		sort.Strings(hosts)
		seen[key] = true
		// Every node that sees the cluster's trouble reports it within
		// about one of its cycles: the page waits for them (like
		// Alertmanager's group_wait), so that it names them all.
		r := rule
		r.For = max(r.For, e.clusterWait(hosts))
		al := e.alertAs(key, cluster, "finding", cluster+": "+lead.Finding.Summary, lead.Finding.Severity.String(), lead.Finding.Runbook,
			fmt.Sprintf("%s Reported by %s.", lead.Finding.Summary, strings.Join(hosts, ", ")), "cluster", lead.Finding.Evidence.Vars["cluster"])
		sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: true, BadSince: since}, rule: r})
	}
	return sigs
}

// Bounds of the wait before a cluster finding pages.
const (
	clusterWaitMin = 10 * time.Second
	clusterWaitMax = 2 * time.Minute
)

// clusterWait is how long a cluster finding waits before it pages: two
// of the reporting agents' longest cycle, within clusterWaitMin and
// clusterWaitMax.
func (e *evaluation) clusterWait(hosts []string) time.Duration {
	var longest time.Duration
	for _, h := range hosts {
		if hh := e.st.hosts[h]; hh != nil {
			longest = max(longest, hh.Interval)
		}
	}
	return min(max(2*longest, clusterWaitMin), clusterWaitMax)
}

// clusterDetail is each node's view of a cluster finding, for its
// notification: the node and its own summary, then its lines.
func (e *evaluation) clusterDetail(key string) []string {
	var out []string
	hosts := make([]string, 0, len(e.st.findings))
	for h := range e.st.findings {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		for _, f := range e.st.findings[h] {
			if f.Finding.Evidence.Vars["cluster"] == "" || clusterKey(f.Finding.Evidence.Vars["cluster"], f.Finding.Key) != key {
				continue
			}
			out = append(out, fmt.Sprintf("%s (since %s): %s", h, f.Opened.UTC().Format(time.DateTime), f.Finding.Summary))
			for _, l := range f.Finding.Evidence.Lines {
				out = append(out, "  "+l.Text)
			}
		}
	}
	return out
}
