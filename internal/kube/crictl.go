package kube

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// crictlStates are crictl ps's STATE words (newer and older spellings).
var crictlStates = map[string]string{
	"Running": "running", "Exited": "exited", "Created": "created", "Unknown": "unknown",
	"CONTAINER_RUNNING": "running", "CONTAINER_EXITED": "exited", "CONTAINER_CREATED": "created", "CONTAINER_UNKNOWN": "unknown",
}

// reHexID is a container or pod ID as crictl prints it (13 hex digits,
// or the full 64).
var reHexID = regexp.MustCompile(`^[0-9a-f]{12,64}$`)

// crictlRow is one line of crictl ps -a.
type crictlRow struct {
	id, image, created, state, name, podID, pod, namespace string
	attempt                                                int
}

// CrictlLoopAttempts is how many attempts of one container, the newest
// exited, make a restart loop as the node sees it.
const CrictlLoopAttempts = 3

// ParseCrictlPs reads `crictl ps` or `crictl ps -a` on a node: CONTAINER
// IMAGE CREATED STATE NAME ATTEMPT POD ID [POD [NAMESPACE]]. A container
// whose newest attempt exited after several is a restart loop; crictl
// does not say why (crictl inspect and crictl logs do), so the pod is
// given the waiting reason kubelet shows for it, CrashLoopBackOff.
func ParseCrictlPs(text string) (Parsed, error) {
	lines, cmd := cleanLines(text)
	out := Parsed{Command: cmd, Cluster: Cluster{Source: "crictl ps -a"}}
	var rows []crictlRow
	skipped := 0
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == "CONTAINER" || f[0] == "CONTAINER_ID") {
			continue
		}
		r, ok := crictlLine(f)
		if !ok {
			skipped++
			continue
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return out, errors.New("no container line found (want CONTAINER IMAGE CREATED STATE NAME ATTEMPT POD ID)")
	}
	type key struct{ pod, name string }
	groups := map[key][]crictlRow{}
	var order []key
	for _, r := range rows {
		k := key{r.podID, r.name}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	pods := map[string]*Pod{}
	var podOrder []string
	for _, k := range order {
		g := groups[k]
		sort.SliceStable(g, func(i, j int) bool { return g[i].attempt > g[j].attempt })
		newest := g[0]
		p := pods[k.pod]
		if p == nil {
			name := newest.pod
			if name == "" {
				name = "pod " + k.pod
			}
			p = &Pod{Namespace: newest.namespace, Name: name}
			pods[k.pod] = p
			podOrder = append(podOrder, k.pod)
		}
		c := Container{Name: newest.name, ID: newest.id, Image: newest.image, Restarts: newest.attempt}
		switch {
		case crictlStates[newest.state] == "exited" && newest.attempt >= CrictlLoopAttempts:
			c.State, c.Reason = "waiting", "CrashLoopBackOff"
			c.Message = fmt.Sprintf("inferred from crictl: attempt %d exited (created %s)", newest.attempt, newest.created)
		case crictlStates[newest.state] == "running":
			c.State, c.Ready = "running", true
		default:
			c.State = crictlStates[newest.state]
		}
		p.Containers = append(p.Containers, c)
		p.Restarts += c.Restarts
	}
	for _, id := range podOrder {
		p := pods[id]
		p.Status = StatusOf(p)
		out.Cluster.Pods = append(out.Cluster.Pods, *p)
	}
	if skipped > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d %s not read as containers.", skipped, plural(skipped, "line was", "lines were")))
	}
	out.Notes = append(out.Notes, "crictl ps shows attempts and states, not exit codes or reasons: `crictl inspect CONTAINER` and `crictl logs CONTAINER` show them.")
	return out, nil
}

// crictlLine reads a row by its anchors: the ID first, the STATE word
// after the CREATED phrase, then NAME ATTEMPT POD-ID [POD [NAMESPACE]].
func crictlLine(f []string) (crictlRow, bool) {
	if len(f) < 6 || !reHexID.MatchString(f[0]) {
		return crictlRow{}, false
	}
	st := -1
	for i := 2; i < len(f); i++ {
		if _, ok := crictlStates[f[i]]; ok {
			st = i
			break
		}
	}
	if st < 0 {
		return crictlRow{}, false
	}
	r := crictlRow{id: f[0], image: f[1], created: strings.Join(f[2:st], " "), state: f[st]}
	rest := f[st+1:]
	if len(rest) < 3 {
		return crictlRow{}, false
	}
	r.name = rest[0]
	n, err := strconv.Atoi(rest[1])
	if err != nil || n < 0 {
		return crictlRow{}, false
	}
	r.attempt = n
	r.podID = rest[2]
	if len(rest) > 3 {
		r.pod = rest[3]
	}
	if len(rest) > 4 {
		r.namespace = rest[4]
	}
	return r, true
}
