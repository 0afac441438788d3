package kube

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// kubectl describe prints "Key:  value" lines, indented by section, and
// tables (Conditions, Events). People paste whole outputs or only the
// block that matters (one container's State and Last State), with the
// indentation shifted, so the parsers go by key names, not by columns.

var reKV = regexp.MustCompile(`^(\s*)([A-Za-z][A-Za-z0-9 ()./-]*?):(?:\s+(.*)|\s*)$`)

// describeTime is how kubectl describe prints times.
const describeTime = "Mon, 02 Jan 2006 15:04:05 -0700"

func parseDescribeTime(s string) time.Time {
	t, err := time.Parse(describeTime, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// reContainerName is a container's heading in the Containers section.
var reContainerName = regexp.MustCompile(`^\s+([a-z0-9]([-a-z0-9.]*[a-z0-9])?):\s*$`)

// Keys of a container block (a heading is any other "name:" line).
var containerKeys = map[string]bool{
	"Container ID": true, "Image": true, "Image ID": true, "Port": true, "Host Port": true, "Ports": true, "Host Ports": true,
	"Command": true, "Args": true, "State": true, "Last State": true, "Ready": true, "Restart Count": true,
	"Limits": true, "Requests": true, "Environment": true, "Mounts": true, "Liveness": true, "Readiness": true,
	"Startup": true, "Environment Variables from": true, "Reason": true, "Message": true, "Exit Code": true,
	"Started": true, "Finished": true, "Signal": true, "cpu": true, "memory": true, "SeccompProfile": true,
}

// ParseDescribePod reads `kubectl describe pod` output, whole or in part.
func ParseDescribePod(text string, now time.Time) (Parsed, error) {
	lines, cmd := cleanLines(text)
	out := Parsed{Command: cmd, Cluster: Cluster{Source: "kubectl describe pod"}}
	var pods []Pod
	var p *Pod
	newPod := func() {
		pods = append(pods, Pod{})
		p = &pods[len(pods)-1]
	}
	section := ""
	var c *Container
	var target *Termination // the State or Last State being read
	var targetState string  // "waiting", "running", "terminated"
	var msg *string         // a Message whose value continues on the next lines
	init := false
	for _, l := range lines {
		if section == "events" && p != nil {
			// Event messages hold colons: read rows before key: value.
			if t := strings.TrimSpace(l); strings.HasPrefix(t, "Warning ") || strings.HasPrefix(t, "Normal ") {
				if e, ok := eventRow(l, p); ok {
					out.Cluster.Events = append(out.Cluster.Events, e)
				}
				continue
			}
		}
		m := reKV.FindStringSubmatch(l)
		indent := 0
		if m != nil {
			indent = len(strings.ReplaceAll(m[1], "\t", "        "))
		}
		if m == nil {
			switch {
			case section == "events":
				if p != nil {
					if e, ok := eventRow(l, p); ok {
						out.Cluster.Events = append(out.Cluster.Events, e)
					}
				}
			case section == "conditions":
				if f := strings.Fields(l); len(f) >= 2 && p != nil && (f[1] == "True" || f[1] == "False" || f[1] == "Unknown") {
					p.Conditions = append(p.Conditions, Condition{Type: f[0], Status: f[1]})
				}
			case msg != nil:
				*msg += "\n" + strings.TrimSpace(l)
			}
			continue
		}
		key, val := m[2], strings.TrimSpace(m[3])
		if key != "Message" {
			msg = nil
		}
		if indent == 0 {
			switch key {
			case "Name":
				newPod()
				p.Name = val
				section, c, target = "", nil, nil
				continue
			case "Containers", "Init Containers":
				if p == nil {
					newPod()
				}
				section, init, c, target = "containers", key == "Init Containers", nil, nil
				continue
			case "Conditions":
				section = "conditions"
				continue
			case "Events":
				if p == nil {
					newPod()
				}
				section = "events"
				continue
			case "Volumes", "QoS Class", "Node-Selectors", "Tolerations", "Readiness Gates", "Labels", "Annotations", "IPs":
				section = "other"
				continue
			}
		}
		if p == nil {
			newPod()
		}
		if section == "" && indent > 0 && containerKeys[key] && key != "Reason" && key != "Message" {
			section = "containers" // a container block pasted alone
		}
		if section == "" || (indent == 0 && section != "containers") {
			switch key {
			case "Namespace":
				p.Namespace = val
			case "Node":
				node, _, _ := strings.Cut(val, "/")
				if node != "<none>" {
					p.Node = node
				}
			case "Start Time":
				p.Created = parseDescribeTime(val)
			case "Status":
				status, rest, _ := strings.Cut(val, " ")
				p.Status = status
				switch status {
				case "Terminating":
					p.Terminating = true
					// "Terminating (lasts 2m)"
					if d, ok := ParseAge(strings.Trim(strings.TrimPrefix(strings.TrimSpace(rest), "(lasts"), " )")); ok {
						p.Deleting = now.Add(-d)
					}
				default:
					p.Phase = status
				}
			case "Reason":
				p.Reason = val
			case "Message":
				p.Message = val
				msg = &p.Message
			case "Termination Grace Period":
				if n, err := strconv.Atoi(strings.TrimSuffix(val, "s")); err == nil {
					p.GraceSeconds = int64(n)
				}
			}
			continue
		}
		if section != "containers" && section != "" {
			continue
		}
		if cm := reContainerName.FindStringSubmatch(l); cm != nil && !containerKeys[key] {
			p.Containers = append(p.Containers, Container{Name: cm[1], Init: init})
			c = &p.Containers[len(p.Containers)-1]
			target = nil
			continue
		}
		if c == nil {
			// A pasted container block without its heading.
			p.Containers = append(p.Containers, Container{Init: init})
			c = &p.Containers[len(p.Containers)-1]
		}
		switch key {
		case "Container ID":
			c.ID = TrimRuntime(val)
		case "Image":
			c.Image = val
		case "State":
			target, targetState = nil, strings.ToLower(val)
			c.State = targetState
			if targetState == "terminated" {
				c.Exit = &Termination{}
				target = c.Exit
			}
		case "Last State":
			target, targetState = nil, ""
			if strings.EqualFold(val, "Terminated") {
				c.Last = &Termination{}
				target = c.Last
				targetState = "last"
			}
		case "Ready":
			c.Ready = val == "True"
			target, targetState = nil, ""
		case "Restart Count":
			if n, err := strconv.Atoi(val); err == nil {
				c.Restarts = n
			}
		case "Reason":
			if target != nil {
				target.Reason = val
			}
			if targetState == "waiting" || targetState == "terminated" {
				c.Reason = val
			}
		case "Message":
			switch {
			case target != nil:
				target.Message = val
				msg = &target.Message
			case targetState == "waiting":
				c.Message = val
				msg = &c.Message
			}
		case "Exit Code":
			if n, err := strconv.Atoi(val); err == nil && target != nil {
				target.ExitCode = n
			}
		case "Signal":
			if n, err := strconv.Atoi(val); err == nil && target != nil {
				target.Signal = n
			}
		case "Started":
			if target != nil {
				target.Started = parseDescribeTime(val)
			} else if targetState == "running" {
				c.Since = parseDescribeTime(val)
			}
		case "Finished":
			if target != nil {
				target.Finished = parseDescribeTime(val)
			}
		}
	}
	for i := range pods {
		q := &pods[i]
		scheduling := false
		for _, e := range out.Cluster.Events {
			scheduling = scheduling || (e.Name == q.Name && e.Reason == "FailedScheduling")
		}
		if q.Name == "" && len(q.Containers) == 0 && !scheduling {
			continue
		}
		if scheduling && q.Phase == "" && q.Status == "" {
			q.Phase = "Pending" // the scheduler has not placed it
		}
		if q.Name == "" {
			q.Name = nameFromCommand(cmd, "pod")
			if q.Name == "" {
				q.Name = "(name not in the paste)"
				out.Notes = append(out.Notes, "The paste does not hold the pod's Name: line.")
			}
			for j := range out.Cluster.Events {
				if out.Cluster.Events[j].Name == "" {
					out.Cluster.Events[j].Name = q.Name
				}
			}
		}
		for j := range q.Containers {
			if c := &q.Containers[j]; c.State == "terminated" && c.Exit != nil {
				c.Reason, c.Message, c.Since = c.Exit.Reason, c.Exit.Message, c.Exit.Finished
			}
			q.Restarts += q.Containers[j].Restarts
		}
		if q.Status == "" || q.Status == "Running" || q.Status == "Pending" {
			if s := StatusOf(q); s != "" {
				q.Status = s
			}
		}
		out.Cluster.Pods = append(out.Cluster.Pods, *q)
	}
	if len(out.Cluster.Pods) == 0 {
		return out, errors.New("no pod or container block found")
	}
	return out, nil
}

// nameFromCommand picks the object's name from "kubectl describe pod NAME
// -n NS" (or "kubectl describe pods/NAME").
func nameFromCommand(cmd, kind string) string {
	f := strings.Fields(cmd)
	for i, w := range f {
		if w == "describe" && i+1 < len(f) {
			rest := f[i+1:]
			if r, ok := strings.CutPrefix(rest[0], kind+"/"); ok {
				return r
			}
			if r, ok := strings.CutPrefix(rest[0], kind+"s/"); ok {
				return r
			}
			for j := 1; j < len(rest); j++ {
				if strings.HasPrefix(rest[j], "-") {
					if !strings.Contains(rest[j], "=") {
						j++
					}
					continue
				}
				return rest[j]
			}
		}
	}
	return ""
}

// eventRow reads one row of describe's Events table: Type Reason Age From
// Message.
func eventRow(l string, p *Pod) (Event, bool) {
	f := fields(l)
	if len(f) < 5 || (f[0] != "Warning" && f[0] != "Normal") || f[0] != "Warning" {
		return Event{}, false
	}
	from := 3
	// Older kubectl wrote "kubelet, node1" in From.
	if strings.HasSuffix(f[from], ",") && len(f) > from+2 {
		from++
	}
	return Event{Namespace: p.Namespace, Kind: "Pod", Name: p.Name, Reason: f[1], Message: strings.Join(f[from+1:], " ")}, true
}

// reNodeCondition is a row of describe node's Conditions table.
var reNodeCondition = regexp.MustCompile(`^\s*(\S+)\s+(True|False|Unknown)\s+(\w{3}, \d{1,2} \w{3} \d{4} [\d:]{8} [-+]\d{4})\s+(\w{3}, \d{1,2} \w{3} \d{4} [\d:]{8} [-+]\d{4})\s+(\S+)\s*(.*)$`)

// ParseDescribeNode reads `kubectl describe node` output, whole or in
// part (a pasted Conditions table alone is enough).
func ParseDescribeNode(text string) (Parsed, error) {
	lines, cmd := cleanLines(text)
	out := Parsed{Command: cmd, Cluster: Cluster{Source: "kubectl describe node"}}
	var nodes []Node
	var n *Node
	newNode := func() {
		nodes = append(nodes, Node{})
		n = &nodes[len(nodes)-1]
	}
	section := ""
	for _, l := range lines {
		if cm := reNodeCondition.FindStringSubmatch(l); cm != nil {
			if n == nil {
				newNode()
			}
			n.Conditions = append(n.Conditions, Condition{
				Type: cm[1], Status: cm[2], Beat: parseDescribeTime(cm[3]), Since: parseDescribeTime(cm[4]),
				Reason: cm[5], Message: strings.TrimSpace(cm[6]),
			})
			continue
		}
		m := reKV.FindStringSubmatch(l)
		top := m != nil && m[1] == ""
		if top {
			key, val := m[2], strings.TrimSpace(m[3])
			section = ""
			if key != "Name" && n == nil {
				newNode()
			}
			switch key {
			case "Name":
				newNode()
				n.Name = val
			case "Roles":
				if val != "" && val != "<none>" {
					n.Roles = strings.Split(val, ",")
				}
			case "Annotations":
				section = "annotations"
				annotation(n, val)
			case "Taints":
				section = "taints"
				taint(n, val)
			case "Unschedulable":
				n.Unschedulable = val == "true"
			case "CreationTimestamp":
				n.Created = parseDescribeTime(val)
			case "Addresses":
				section = "addresses"
			case "Non-terminated Pods":
				section = "pods"
			case "Conditions":
				section = "conditions"
			}
			continue
		}
		if n == nil {
			continue
		}
		v := strings.TrimSpace(l)
		switch section {
		case "annotations":
			annotation(n, v)
		case "taints":
			taint(n, v)
		case "addresses":
			if k, a, ok := strings.Cut(v, ":"); ok {
				a = strings.TrimSpace(a)
				switch strings.TrimSpace(k) {
				case "InternalIP":
					n.InternalIPs = append(n.InternalIPs, a)
				case "ExternalIP":
					n.ExternalIPs = append(n.ExternalIPs, a)
				}
			}
		case "pods":
			f := strings.Fields(v)
			if len(f) >= 2 && f[0] != "Namespace" && !strings.HasPrefix(f[0], "---") {
				out.Cluster.Pods = append(out.Cluster.Pods, Pod{Namespace: f[0], Name: f[1], Node: n.Name})
			}
		case "conditions":
			// A row the regexp did not take (older layouts): Type Status.
			if f := strings.Fields(v); len(f) >= 2 && (f[1] == "True" || f[1] == "False" || f[1] == "Unknown") {
				n.Conditions = append(n.Conditions, Condition{Type: f[0], Status: f[1]})
			}
		}
	}
	for i := range nodes {
		x := &nodes[i]
		if x.Name == "" && len(x.Conditions) == 0 && len(x.Taints) == 0 {
			continue
		}
		if x.Name == "" {
			x.Name = nameFromCommand(cmd, "node")
			if x.Name == "" {
				x.Name = "(name not in the paste)"
				out.Notes = append(out.Notes, "The paste does not hold the node's Name: line.")
			}
			for j := range out.Cluster.Pods {
				out.Cluster.Pods[j].Node = x.Name
			}
		}
		out.Cluster.Nodes = append(out.Cluster.Nodes, *x)
	}
	if len(out.Cluster.Nodes) == 0 {
		return out, errors.New("no node found (want Name:, Conditions:, Taints:)")
	}
	return out, nil
}

func annotation(n *Node, v string) {
	k, a, ok := strings.Cut(v, ":")
	if !ok || v == "<none>" {
		return
	}
	got := SeenAddrs(map[string]string{strings.TrimSpace(k): strings.TrimSpace(a)})
	for key, addr := range got {
		if n.SeenAddrs == nil {
			n.SeenAddrs = map[string]string{}
		}
		n.SeenAddrs[key] = addr
	}
}

func taint(n *Node, v string) {
	if v == "" || v == "<none>" {
		return
	}
	kv, effect, ok := strings.Cut(v, ":")
	if i := strings.LastIndexByte(v, ':'); i > 0 {
		kv, effect, ok = v[:i], v[i+1:], true
	}
	if !ok {
		return
	}
	key, val, _ := strings.Cut(kv, "=")
	n.Taints = append(n.Taints, Taint{Key: key, Value: val, Effect: effect})
}
