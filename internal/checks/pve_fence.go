package checks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/pve"
)

// fenceWindow is how close before the end of a boot a quorum loss or a
// watchdog expiry must be to explain its reset.
const fenceWindow = 15 * time.Minute

// fencedBoot ties an unclean end of the previous boot to fencing (FM-D7):
// on an HA node, the previous boot's cluster log shows quorum lost, the HA
// lock lost or watchdog-mux expiring shortly before it ended.
func fencedBoot(ctx context.Context, env *Env, tailLines []finding.Line) (finding.Finding, bool) {
	st, err := pveStateOf(ctx, env)
	if err != nil || !st.Corosync {
		return finding.Finding{}, false
	}
	out, err := pveCommand(ctx, env, "journal-prev-cluster", "journalctl", "-b", "-1", "-q", "--no-pager", "-o", "short-iso",
		"-u", "corosync", "-u", "pve-cluster", "-u", "pve-ha-lrm", "-u", "pve-ha-crm", "-u", "watchdog-mux", "-n", "2000")
	if err != nil || out.ExitCode != 0 {
		return finding.Finding{}, false
	}
	m, err := pve.LogMatcher(env.Signatures, logContext(env))
	if err != nil {
		return finding.Finding{}, false
	}
	evs := pve.ParseClusterLog(string(out.Stdout), m)
	var end time.Time
	lastLine := ""
	for i := len(tailLines) - 1; i >= 0; i-- {
		if tailLines[i].Time != nil {
			end, lastLine = *tailLines[i].Time, tailLines[i].Text
			break
		}
	}
	var cause *pve.Event
	ha := false
	for i := range evs {
		e := &evs[i]
		if e.Kind == pve.HALostLock || e.Kind == pve.WatchdogExp {
			ha = true
		}
		switch e.Kind {
		case pve.QuorumLost, pve.HALostLock, pve.WatchdogExp:
			if !end.IsZero() && !e.Time.IsZero() && end.Sub(e.Time) > fenceWindow {
				continue
			}
			if cause == nil || e.Kind == pve.QuorumLost && cause.Kind != pve.QuorumLost {
				cause = e
			}
		case pve.QuorumBack:
			cause = nil // quorum came back: what follows must explain the reset
		}
	}
	if !ha && st.PVE && !st.EtcHung {
		if b, err := env.Src.ReadFile("/etc/pve/ha/resources.cfg"); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			ha = true
		}
	}
	if cause == nil || !ha {
		return finding.Finding{}, false
	}
	node := st.Scope.Node
	boot := ""
	if !env.Procs.Boot.IsZero() {
		boot = env.Procs.Boot.UTC().Format(time.RFC3339)
	}
	lost := ""
	if !cause.Time.IsZero() {
		lost = cause.Time.UTC().Format(time.RFC3339)
	}
	vars := st.Scope.Vars()
	for k, v := range map[string]string{"node": node, "boot_time": boot, "quorum_lost_at": lost, "last_line": lastLine} {
		if v != "" {
			vars[k] = v
		}
	}
	lines := []finding.Line{{Source: "journal -b -1 (cluster)", Text: cause.Text, Time: timePtr(cause.Time)}}
	lines = append(lines, tail(tailLines, 3)...)
	f := finding.Finding{
		Mode: "FM-D7", Severity: finding.Catastrophic, Subject: "node " + node + " fenced",
		Summary: fmt.Sprintf("HA node %s was reset without a shutdown (fenced) after it lost quorum: the previous boot logged %q shortly before it ended; every service on it was killed and HA restarted its guests elsewhere.", node, cause.Message),
		Since:   timePtr(cause.Time),
		Evidence: finding.Evidence{
			Lines: lines,
			Notes: []string{"The previous boot's last journal lines hold no shutdown message; its cluster log shows the loss of quorum or of the HA watchdog before the end. Fencing repeats while the network cause (FM-D6) remains."},
			Vars:  vars,
		},
	}
	return f, true
}
