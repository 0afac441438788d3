package checks

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
)

// checkConntrack is the conntrack part of FM-B4: when the table is full
// the kernel drops new connections ("nf_conntrack: table full, dropping
// packet") for every container and the host alike.
//
// Each network namespace counts its own entries against the one
// kernel-wide nf_conntrack_max, so a container's namespace can fill up while
// the host's own table is nearly empty. Since 5.x the kernel names the
// namespace ("table full in netns 4026532246, dropping packet"): those
// lines become a finding of their own, naming what runs in that namespace.
func checkConntrack(ctx context.Context, env *Env) (Result, error) {
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
	drops := env.Kernel.Matching("table full, dropping packet", "table full in netns")
	byNetns := map[uint64][]finding.Line{}
	var unnamed []finding.Line // older kernels do not say which namespace
	for _, l := range drops {
		if m := reCtFullNetns.FindStringSubmatch(l.Text); m != nil {
			ino, _ := strconv.ParseUint(m[1], 10, 64)
			byNetns[ino] = append(byNetns[ino], l)
		} else {
			unnamed = append(unnamed, l)
		}
	}
	owners, ok := netnsOwnersOf(env, byNetns)
	own := unnamed
	for ino, ls := range byNetns {
		// Without knowing its own namespace the check cannot tell: it
		// keeps every line for the table it can see.
		if !ok || ino == owners.Self {
			own = append(own, ls...)
			delete(byNetns, ino)
		}
	}
	sort.SliceStable(own, func(i, j int) bool { return lineBefore(own[i], own[j]) })

	vars := func() map[string]string {
		return map[string]string{"resource": "conntrack", "used": itoa(count), "limit": itoa(limit),
			"sysctl": "net.netfilter.nf_conntrack_max", "sysctl_new": itoa(suggest(count, limit, 262144))}
	}
	fig := finding.Figure{Name: "conntrack entries", Value: float64(count), Limit: float64(limit), Source: "/proc/sys/net/netfilter/nf_conntrack_count"}
	res.Headroom = append(res.Headroom, fig)
	sev := finding.ForRatio(float64(count), float64(limit))
	summary := fmt.Sprintf("The connection-tracking table is %.0f%% full (%d of %d); when full the kernel drops new connections for every container and the host.",
		fig.Percent(), count, limit)
	if sev == 0 && len(own) > 0 {
		// Full earlier, not now: still worth knowing while it is recent.
		sev = dropSeverity(env.Now, own[len(own)-1])
		summary = fmt.Sprintf("The connection-tracking table was full and the kernel dropped packets (last at %s); it now holds %d of %d.",
			lineTime(own[len(own)-1]), count, limit)
	}
	if sev > 0 {
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-B4", Severity: sev, Subject: "conntrack", Summary: summary,
			Evidence: finding.Evidence{Figures: []finding.Figure{fig}, Lines: tail(own, 8), Vars: vars()},
		})
	}

	inos := make([]uint64, 0, len(byNetns))
	for ino := range byNetns {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(i, j int) bool { return inos[i] < inos[j] })
	for _, ino := range inos {
		lines := byNetns[ino]
		last := lines[len(lines)-1]
		ns := fmt.Sprintf("network namespace %d", ino)
		v := vars()
		delete(v, "used") // that namespace's count is not the host's
		v["netns"] = strconv.FormatUint(ino, 10)
		var consumers []finding.Consumer
		if name := owners.Names[strconv.FormatUint(ino, 10)]; name != "" {
			ns += ", ip netns " + name
			v["netns_name"] = name
		}
		who := ns
		if pid := owners.PIDs[strconv.FormatUint(ino, 10)]; pid > 0 {
			if p := env.Procs.ByPID(pid); p != nil {
				if p.Owner.IsContainer() {
					who = ownerWords(p.Owner) + " (" + ns + ")"
				} else {
					who += fmt.Sprintf(", where %s (pid %d) runs", p.Comm, p.PID)
				}
				varsOfProcess(v, p)
				uid := p.EUID
				consumers = append(consumers, finding.Consumer{Kind: "process", Name: p.Comm, PID: p.PID, UID: &uid, Owner: p.Owner.Label(), Value: float64(len(lines))})
			}
		}
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-B4", Severity: dropSeverity(env.Now, last), Subject: fmt.Sprintf("conntrack netns %d", ino),
			Summary: fmt.Sprintf("The connection-tracking table of %s was full and the kernel dropped its packets (last at %s); every namespace counts against the one kernel-wide nf_conntrack_max (%d).",
				who, lineTime(last), limit),
			Since: lines[0].Time,
			Evidence: finding.Evidence{
				Figures:   []finding.Figure{{Name: "kernel-wide nf_conntrack_max", Value: float64(limit), Source: "/proc/sys/net/netfilter/nf_conntrack_max"}},
				Consumers: consumers, Lines: lines, Vars: v,
			},
		})
	}
	return res, nil
}

var reCtFullNetns = regexp.MustCompile(`table full in netns (\d+), dropping packet`)

// dropSeverity rates packet drops by how recent the last one is.
func dropSeverity(now time.Time, last finding.Line) finding.Severity {
	switch {
	case last.Time == nil:
		return finding.Medium
	case now.Sub(*last.Time) < 10*time.Minute:
		return finding.High
	case now.Sub(*last.Time) < time.Hour:
		return finding.Medium
	}
	return finding.Low
}

func lineTime(l finding.Line) string {
	if l.Time == nil {
		return "an unknown time"
	}
	return l.Time.UTC().Format("15:04:05 MST")
}

func lineBefore(a, b finding.Line) bool {
	return a.Time != nil && b.Time != nil && a.Time.Before(*b.Time)
}

// netnsOwners says which network namespace the doctor itself is in, and
// for the namespaces the kernel log names, a process inside each and the
// name `ip netns` gives it. Keys are namespace inode numbers.
type netnsOwners struct {
	Self  uint64            `json:"self"`
	PIDs  map[string]int    `json:"pids,omitempty"`
	Names map[string]string `json:"names,omitempty"`
}

func netnsOwnersOf(env *Env, wanted map[uint64][]finding.Line) (netnsOwners, bool) {
	var o netnsOwners
	if len(wanted) == 0 {
		return o, true
	}
	err := env.Src.Probe("conntrack-netns", &o, func() error {
		o = netnsOwners{PIDs: map[string]int{}, Names: map[string]string{}}
		self, err := netnsInode("/proc/self/ns/net")
		if err != nil {
			return err
		}
		o.Self = self
		missing := len(wanted)
		if _, ok := wanted[self]; ok {
			missing--
		}
		for _, p := range env.Procs.Procs {
			if missing == 0 {
				break
			}
			if p.Kernel {
				continue // in the initial namespace, never a container's
			}
			ino := p.NetNS // read by the pass on a live host
			if ino == 0 {
				if ino, err = netnsInode("/proc/" + strconv.Itoa(p.PID) + "/ns/net"); err != nil {
					continue
				}
			}
			if ino == self {
				continue
			}
			key := strconv.FormatUint(ino, 10)
			if _, ok := wanted[ino]; ok && o.PIDs[key] == 0 {
				o.PIDs[key] = p.PID
				missing--
			}
		}
		names, _ := os.ReadDir("/run/netns")
		for _, n := range names {
			var st syscall.Stat_t
			if syscall.Stat("/run/netns/"+n.Name(), &st) != nil {
				continue
			}
			if _, ok := wanted[st.Ino]; ok {
				o.Names[strconv.FormatUint(st.Ino, 10)] = n.Name()
			}
		}
		return nil
	})
	if err != nil {
		env.Log.Debug("conntrack: naming network namespaces", "err", err)
		return o, false
	}
	return o, true
}

// netnsInode reads a namespace link such as "net:[4026531840]".
func netnsInode(link string) (uint64, error) {
	target, err := os.Readlink(link)
	if err != nil {
		return 0, err
	}
	s, ok := strings.CutPrefix(target, "net:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, fmt.Errorf("%s: unexpected target %q", link, target)
	}
	return strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
}
