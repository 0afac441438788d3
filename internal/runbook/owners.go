package runbook

import (
	"regexp"
	"strings"
)

// A process belongs to an owner: a Docker container, an LXC guest, a
// Kubernetes pod, a systemd unit, or nothing but the host (see
// proctable.Owner). Runbooks do not spell out how to restart or limit it;
// they write {{owner "restart"}} and the finding's vars say which kind of
// owner it is ("owner") and name it ("container", "guest", "unit", …).
//
// Adding an owner kind is one entry in ownerKinds (once proctable
// attributes it and checks.OwnerVars names it); adding a verb is one name
// in verbs and a command in the kinds that have one; a new mode's runbook
// only writes {{owner "verb"}}. TestReadyStepsFitCaseAndOwner lists every
// kind with what each verb must run.

// verbs are what a runbook can ask of an owner.
var verbs = []string{"restart", "start", "limit-pids", "limit-memory", "limit-cpu"}

// ownerKind is how commands act on one kind of owner. Each verb has
// alternatives, best first: the first whose values the finding all knows
// is printed (so a pod whose name is known gets kubectl, one known only by
// its container ID gets crictl). A kind without a verb gets no command:
// a process started by hand has nothing that restarts it.
type ownerKind struct {
	kind  string // as in the "owner" var: proctable.Owner.Kind
	label string // for a reader when the finding does not say the kind
	verbs map[string][]string
}

// In a command, {name:<placeholder>} is the finding's var name, shell-
// quoted, or the placeholder when the finding lacks it.
var ownerKinds = []ownerKind{
	{"docker", "a Docker container", map[string][]string{
		"restart":      {"docker restart {container:<container>}"},
		"start":        {"docker start {container:<container>}"},
		"limit-pids":   {"docker update --pids-limit <n> {container:<container>}"},
		"limit-memory": {"docker update --memory <size> --memory-swap <size> {container:<container>}"},
		"limit-cpu":    {"docker update --cpus <n> {container:<container>}"},
	}},
	{"podman", "a Podman container", map[string][]string{
		"restart":      {"podman restart {container:<container>}"},
		"start":        {"podman start {container:<container>}"},
		"limit-pids":   {"podman update --pids-limit <n> {container:<container>}"},
		"limit-memory": {"podman update --memory <size> --memory-swap <size> {container:<container>}"},
		"limit-cpu":    {"podman update --cpus <n> {container:<container>}"},
	}},
	{"kubernetes", "a Kubernetes pod", map[string][]string{
		// Deleting the pod lets its controller make a new one; stopping
		// the container lets kubelet restart it in place.
		"restart":      {"kubectl -n {namespace:<namespace>} delete pod {pod:<pod>}", "crictl stop {container_id:<container-id>}"},
		"limit-memory": {"kubectl -n {namespace:<namespace>} set resources deployment/<deployment> -c {container:<container>} --limits=memory=<size>"},
		"limit-cpu":    {"kubectl -n {namespace:<namespace>} set resources deployment/<deployment> -c {container:<container>} --limits=cpu=<n>"},
	}},
	{"lxc", "an LXC guest", map[string][]string{
		"restart":      {"pct reboot {guest:<ctid>}"},
		"start":        {"pct start {guest:<ctid>}"},
		"limit-memory": {"pct set {guest:<ctid>} --memory <MiB>"},
		"limit-cpu":    {"pct set {guest:<ctid>} --cpulimit <cores>"},
	}},
	{"vm", "a VM", map[string][]string{
		"restart":      {"qm reboot {guest:<vmid>}"},
		"start":        {"qm start {guest:<vmid>}"},
		"limit-memory": {"qm set {guest:<vmid>} --memory <MiB>"},
		"limit-cpu":    {"qm set {guest:<vmid>} --cpulimit <cores>"},
	}},
	{"service", "a systemd unit", map[string][]string{
		"restart":      {"systemctl restart {unit:<unit>}"},
		"start":        {"systemctl start {unit:<unit>}"},
		"limit-pids":   {"systemctl set-property {unit:<unit>} TasksMax=<n>"},
		"limit-memory": {"systemctl set-property {unit:<unit>} MemoryMax=<size>"},
		"limit-cpu":    {"systemctl set-property {unit:<unit>} CPUQuota=<percent>%"},
	}},
	// A process of the host or of a login session: only its priority can
	// be changed from outside.
	{"host", "a host process", map[string][]string{
		"limit-cpu": {"renice -n 10 -p {pid:<pid>}"},
	}},
	{"session", "a process of a login session", map[string][]string{
		"limit-cpu": {"renice -n 10 -p {pid:<pid>}"},
	}},
	// containerd without Kubernetes (nerdctl, a bare CRI) has no one tool
	// that is sure to know the container: no command.
	{"containerd", "a containerd container", map[string][]string{}},
}

var reOwnerVar = regexp.MustCompile(`\{([a-z_]+):(<[^>]+>)\}`)

// ownerCommand renders verb for the finding's owner. When the finding
// does not say its owner's kind, it lists every kind's command, each with
// a comment naming the kind; none of them is then ready.
func ownerCommand(verb string, vars map[string]string, val func(name, placeholder string) (string, bool)) (string, error) {
	known := false
	for _, v := range verbs {
		known = known || v == verb
	}
	if !known {
		return "", errUnknownVerb(verb)
	}
	fill := func(cmd string) (string, bool) {
		all := true
		out := reOwnerVar.ReplaceAllStringFunc(cmd, func(m string) string {
			sub := reOwnerVar.FindStringSubmatch(m)
			v, ok := val(sub[1], sub[2])
			if !ok {
				all = false
				return v
			}
			return Quote(v)
		})
		return out, all
	}
	kind := vars["owner"]
	if kind == "" {
		// The unknown kind makes each line incomplete, whatever else
		// the finding knows.
		unknown, _ := val("owner", "")
		var lines []string
		for _, k := range ownerKinds {
			if alts := k.verbs[verb]; len(alts) > 0 {
				cmd, _ := fill(alts[0])
				lines = append(lines, cmd+"  # "+k.label+unknown)
			}
		}
		return strings.Join(lines, "\n"), nil
	}
	for _, k := range ownerKinds {
		if k.kind != kind {
			continue
		}
		alts := k.verbs[verb]
		for _, alt := range alts {
			if cmd, all := fill(alt); all {
				return cmd, nil
			}
		}
		if len(alts) > 0 {
			cmd, _ := fill(alts[0])
			return cmd, nil
		}
	}
	return "", nil
}
