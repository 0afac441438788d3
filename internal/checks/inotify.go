package checks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/proctable"
)

// checkInotify is FM-B2: inotify instances and watches per user against
// fs.inotify.max_user_instances and max_user_watches. The kernel charges
// both to the effective UID, so root in every container (without user
// namespace remapping) draws on the host root's budget.
func checkInotify(_ context.Context, env *Env) (Result, error) {
	var res Result
	maxWatches, err := readInt(env.Src, "/proc/sys/fs/inotify/max_user_watches")
	if err != nil {
		return res, fmt.Errorf("inotify limits: %w", err)
	}
	maxInstances, err := readInt(env.Src, "/proc/sys/fs/inotify/max_user_instances")
	if err != nil {
		return res, fmt.Errorf("inotify limits: %w", err)
	}
	type user struct {
		uid                int
		watches, instances int
		watchT, instT      *tally
		procs              []*proctable.Proc
	}
	users := map[int]*user{}
	for _, p := range env.Procs.Procs {
		if p.InotifyInstances == 0 {
			continue
		}
		u := users[p.EUID]
		if u == nil {
			u = &user{uid: p.EUID, watchT: newTally(), instT: newTally()}
			users[p.EUID] = u
		}
		u.watches += p.InotifyWatches
		u.instances += p.InotifyInstances
		u.watchT.add(p, float64(p.InotifyWatches), "")
		u.instT.add(p, float64(p.InotifyInstances), "")
		u.procs = append(u.procs, p)
	}
	names := userNames(env)
	worstW, worstI := &user{uid: -1}, &user{uid: -1}
	for _, u := range users {
		if u.watches > worstW.watches {
			worstW = u
		}
		if u.instances > worstI.instances {
			worstI = u
		}
	}
	res.Headroom = append(res.Headroom,
		finding.Figure{Name: "inotify watches" + busiest(names, worstW.uid), Value: float64(worstW.watches), Limit: float64(maxWatches), Source: "/proc/*/fdinfo"},
		finding.Figure{Name: "inotify instances" + busiest(names, worstI.uid), Value: float64(worstI.instances), Limit: float64(maxInstances), Source: "/proc/*/fd"},
	)

	uids := make([]int, 0, len(users))
	for uid := range users {
		uids = append(uids, uid)
	}
	sort.Ints(uids)
	for _, uid := range uids {
		u := users[uid]
		sevW := finding.ForRatio(float64(u.watches), float64(maxWatches))
		sevI := finding.ForRatio(float64(u.instances), float64(maxInstances))
		if sevW == 0 && sevI == 0 {
			continue
		}
		who := userLabel(names, uid)
		fw := finding.Figure{Name: "inotify watches", Value: float64(u.watches), Limit: float64(maxWatches), Source: "/proc/sys/fs/inotify/max_user_watches"}
		fi := finding.Figure{Name: "inotify instances", Value: float64(u.instances), Limit: float64(maxInstances), Source: "/proc/sys/fs/inotify/max_user_instances"}
		vars := map[string]string{
			"uid": itoa(uid), "user": names[uid],
			"watches": itoa(u.watches), "instances": itoa(u.instances),
			"max_user_watches": itoa(maxWatches), "max_user_instances": itoa(maxInstances),
			"max_user_watches_new":   itoa(suggest(int64(u.watches), maxWatches, 524288)),
			"max_user_instances_new": itoa(suggest(int64(u.instances), maxInstances, 1024)),
		}
		var what string
		var consumers []finding.Consumer
		var sev finding.Severity
		total := u.watches
		if sevW >= sevI {
			sev, what = sevW, fmt.Sprintf("inotify watches are %.0f%% used (%d of %d)", fw.Percent(), u.watches, maxWatches)
			consumers = u.watchT.top(5)
		} else {
			sev, what = sevI, fmt.Sprintf("inotify instances are %.0f%% used (%d of %d)", fi.Percent(), u.instances, maxInstances)
			consumers, total = u.instT.top(5), u.instances
		}
		top := env.Procs.ByPID(consumers[0].PID)
		varsOfProcess(vars, top)
		// Restarting kubelet is offered only where one runs.
		vars["kubelet"] = yesNo(env.Procs.HasComm("kubelet", "k3s-server", "k3s-agent", "k3s", "k0s"))
		blame := fmt.Sprintf("%s (pid %d", top.Comm, top.PID)
		switch {
		case top.Owner.Kind == "lxc" || top.Owner.Kind == "vm":
			blame += ", " + top.Owner.Label()
		case top.Owner.IsContainer():
			blame += ", container " + containerRef(top.Owner)
		}
		blame += fmt.Sprintf(") holds %.0f%% of them", 100*consumers[0].Value/float64(max(1, total)))
		notes := []string{}
		if containers := countContainers(u.procs); uid == 0 && containers > 0 {
			notes = append(notes, fmt.Sprintf("Root in each of %d container(s) and root on the host share this one budget: when it runs out, host services such as kubelet and systemd can no longer watch their files either.", containers))
		}
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-B2", Severity: sev, Subject: "uid " + itoa(uid),
			Summary: fmt.Sprintf("For user %s, %s; %s. %s", who, what, blame, inotifyConsequence(sevW >= sevI)),
			Since:   timePtr(top.Started),
			Evidence: finding.Evidence{
				Figures: []finding.Figure{fw, fi}, Consumers: consumers, Notes: notes, Vars: vars,
			},
		})
	}
	return res, nil
}

func countContainers(ps []*proctable.Proc) int {
	seen := map[string]bool{}
	for _, p := range ps {
		if p.Owner.IsContainer() {
			seen[p.Owner.ID] = true
		}
	}
	return len(seen)
}

// busiest names the user a per-user figure is about; with no user holding
// any, the figure is just per user.
func busiest(names map[int]string, uid int) string {
	if uid < 0 {
		return " (per user)"
	}
	return " (busiest user: " + userLabel(names, uid) + ")"
}

func userLabel(names map[int]string, uid int) string {
	if uid < 0 {
		return "-"
	}
	if n := names[uid]; n != "" {
		return n
	}
	return "uid " + strconv.Itoa(uid)
}

// userNames reads /etc/passwd; an unreadable file only costs the names.
func userNames(env *Env) map[int]string {
	b, err := env.Src.ReadFile("/etc/passwd")
	if err != nil {
		return map[int]string{}
	}
	return ParsePasswd(b)
}

// ParsePasswd maps UIDs to user names from /etc/passwd content.
func ParsePasswd(b []byte) map[int]string {
	out := map[int]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if uid, err := strconv.Atoi(f[2]); err == nil {
			if _, dup := out[uid]; !dup {
				out[uid] = f[0]
			}
		}
	}
	return out
}

// inotifyConsequence says how tools fail once the budget is spent.
func inotifyConsequence(watches bool) string {
	if watches {
		return "Out of watches, tools fail with \"inotify resources exhausted\" or \"no space left on device\"."
	}
	return "Out of instances, inotify_init fails with \"Too many open files\" (\"failed to create fsnotify watcher\")."
}
