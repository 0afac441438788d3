package kube

import (
	"strings"
	"time"
)

// FromPod reduces an API pod to the model.
func FromPod(p *APIPod) Pod {
	out := Pod{
		Namespace: p.Metadata.Namespace, Name: p.Metadata.Name, Node: p.Spec.NodeName,
		Phase: p.Status.Phase, Reason: p.Status.Reason, Message: p.Status.Message,
		Created: t(p.Metadata.CreationTimestamp), AdvertiseAddr: AdvertiseAddr(p.Metadata.Annotations),
	}
	out.Workload = workloadOf(p)
	if p.Metadata.DeletionTimestamp != nil {
		out.Terminating = true
		out.Deleting = t(p.Metadata.DeletionTimestamp)
	}
	if g := p.Metadata.DeletionGracePeriodSeconds; g != nil {
		out.GraceSeconds = *g
	}
	for _, c := range p.Status.Conditions {
		out.Conditions = append(out.Conditions, Condition{
			Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message,
			Since: t(c.LastTransitionTime),
		})
	}
	for _, s := range p.Status.InitContainerStatuses {
		out.Containers = append(out.Containers, fromStatus(s, true))
	}
	for _, s := range p.Status.ContainerStatuses {
		out.Containers = append(out.Containers, fromStatus(s, false))
	}
	for _, c := range out.Containers {
		out.Restarts += c.Restarts
	}
	out.Status = StatusOf(&out)
	return out
}

func fromStatus(s APIContainerStatus, init bool) Container {
	c := Container{Name: s.Name, ID: TrimRuntime(s.ContainerID), Image: s.Image, Init: init, Ready: s.Ready, Restarts: int(s.RestartCount)}
	switch st := s.State; {
	case st.Waiting != nil:
		c.State, c.Reason, c.Message = "waiting", st.Waiting.Reason, st.Waiting.Message
	case st.Running != nil:
		c.State, c.Since = "running", t(st.Running.StartedAt)
	case st.Terminated != nil:
		c.State = "terminated"
		c.Exit = fromTerm(st.Terminated)
		c.Reason, c.Message, c.Since = c.Exit.Reason, c.Exit.Message, c.Exit.Finished
	}
	if s.LastState.Terminated != nil {
		c.Last = fromTerm(s.LastState.Terminated)
	}
	return c
}

func fromTerm(x *APITerminated) *Termination {
	return &Termination{
		Reason: x.Reason, Message: x.Message, ExitCode: int(x.ExitCode), Signal: int(x.Signal),
		Started: t(x.StartedAt), Finished: t(x.FinishedAt),
	}
}

// FromNode reduces an API node to the model.
func FromNode(n *APINode) Node {
	out := Node{
		Name: n.Metadata.Name, Unschedulable: n.Spec.Unschedulable, Version: n.Status.NodeInfo.KubeletVersion,
		Created: t(n.Metadata.CreationTimestamp), SeenAddrs: SeenAddrs(n.Metadata.Annotations),
	}
	out.Roles = RolesOf(n.Metadata.Labels)
	for _, c := range n.Status.Conditions {
		out.Conditions = append(out.Conditions, Condition{
			Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message,
			Since: t(c.LastTransitionTime), Beat: t(c.LastHeartbeatTime),
		})
	}
	for _, tn := range n.Spec.Taints {
		out.Taints = append(out.Taints, Taint{Key: tn.Key, Value: tn.Value, Effect: tn.Effect, Since: t(tn.TimeAdded)})
	}
	for _, a := range n.Status.Addresses {
		switch a.Type {
		case "InternalIP":
			out.InternalIPs = append(out.InternalIPs, a.Address)
		case "ExternalIP":
			out.ExternalIPs = append(out.ExternalIPs, a.Address)
		}
	}
	return out
}

// FromEvent keeps a Warning event; it returns false for others.
func FromEvent(e *APIEvent) (Event, bool) {
	if e.Type != "Warning" {
		return Event{}, false
	}
	last := t(e.LastTimestamp)
	if last.IsZero() {
		last = t(e.EventTime)
	}
	count := int(e.Count)
	if e.Series != nil {
		if last.IsZero() {
			last = t(e.Series.LastObservedTime)
		}
		count = max(count, int(e.Series.Count))
	}
	return Event{
		Namespace: e.InvolvedObject.Namespace, Kind: e.InvolvedObject.Kind, Name: e.InvolvedObject.Name,
		Reason: e.Reason, Message: e.Message, Count: count, Last: last,
	}, true
}

// RolesOf reads a node's roles from its node-role.kubernetes.io/ROLE
// labels, as kubectl does.
func RolesOf(labels map[string]string) []string {
	var roles []string
	for k, v := range labels {
		if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
			roles = append(roles, r)
		} else if k == "kubernetes.io/role" && v != "" {
			roles = append(roles, v)
		}
	}
	sortStrings(roles)
	return roles
}

func t(x *APITime) time.Time {
	if x == nil || x.IsZero() {
		return time.Time{}
	}
	return x.UTC()
}

// StatusOf computes the STATUS column kubectl prints for a pod, the way
// kubectl's printer does: the pod's reason, an init container's trouble
// as Init:REASON, the last container's waiting or terminated reason, and
// Terminating once deletion began.
func StatusOf(p *Pod) string {
	reason := p.Phase
	if p.Reason != "" {
		reason = p.Reason
	}
	initDone := true
	for _, c := range p.Containers {
		if !c.Init {
			continue
		}
		switch {
		case c.State == "terminated" && c.Exit != nil && c.Exit.ExitCode == 0:
			continue
		case c.State == "terminated" && c.Exit != nil:
			initDone = false
			if c.Reason != "" {
				reason = "Init:" + c.Reason
			} else {
				reason = "Init:ExitCode:" + itoa(c.Exit.ExitCode)
			}
		case c.State == "waiting" && c.Reason != "" && c.Reason != "PodInitializing":
			initDone = false
			reason = "Init:" + c.Reason
		case c.State == "running" && c.Ready:
			// A sidecar (restartable init container) keeps running.
			continue
		default:
			initDone = false
			reason = "Init:0/?"
		}
		break
	}
	if initDone {
		for i := len(p.Containers) - 1; i >= 0; i-- {
			c := p.Containers[i]
			if c.Init {
				continue
			}
			switch {
			case c.State == "waiting" && c.Reason != "":
				reason = c.Reason
			case c.State == "terminated" && c.Reason != "":
				reason = c.Reason
			case c.State == "terminated" && c.Exit != nil:
				reason = "ExitCode:" + itoa(c.Exit.ExitCode)
			default:
				continue
			}
			break
		}
	}
	if p.Terminating {
		if p.Reason == "NodeLost" {
			return "Unknown"
		}
		return "Terminating"
	}
	return reason
}

// workloadOf names the pod's controller the way kubectl takes it: a
// ReplicaSet made by a Deployment is named DEPLOYMENT-HASH, the hash
// being the pod's pod-template-hash label.
func workloadOf(p *APIPod) string {
	for _, o := range p.Metadata.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		switch o.Kind {
		case "ReplicaSet":
			if h := p.Metadata.Labels["pod-template-hash"]; h != "" {
				if d, ok := strings.CutSuffix(o.Name, "-"+h); ok && d != "" {
					return "deployment/" + d
				}
			}
			return "replicaset/" + o.Name
		case "StatefulSet", "DaemonSet", "Job", "ReplicationController":
			return strings.ToLower(o.Kind) + "/" + o.Name
		}
	}
	return ""
}
