// Package kube is hinomi's reading of a Kubernetes cluster: a small model of
// pods and nodes, filled from the API server's JSON (see wire.go) or
// from what a person pasted (`kubectl get pods`, `kubectl describe node`,
// `crictl ps`, …), and the one diagnosis both the live check and `hinomi
// explain` run on it: pods in CrashLoopBackOff, ImagePullBackOff, OOMKilled,
// Pending or Terminating for too long (FM-C4), nodes NotReady or under
// pressure (FM-D10), and a node whose address changed (FM-C7).
//
// The model keeps what the diagnosis reads and nothing else: no pod specs,
// no environment variables, no credentials. It is what a snapshot records.
package kube

import (
	"strings"
	"time"
)

// Cluster is one reading of a cluster, whole (the API) or partial (a paste).
type Cluster struct {
	// Server is the API server's address from the kubeconfig, for FM-C7.
	Server string `json:"server,omitempty"`
	// CertIPs are the IP addresses the API server's certificate is valid
	// for: kubeadm and k3s put the control-plane node's address there.
	CertIPs []string `json:"cert_ips,omitempty"`
	Pods    []Pod    `json:"pods,omitempty"`
	Nodes   []Node   `json:"nodes,omitempty"`
	// Events are the Warning events, for why a pod waits.
	Events []Event `json:"events,omitempty"`
	// Moved are node addresses the agent saw change between its cycles
	// (AddrMemory), for FM-C7.
	Moved []AddrChange `json:"moved,omitempty"`
	// Source says where the reading came from ("API https://…:6443",
	// "kubectl get pods -A"), for the findings' evidence.
	Source string `json:"source,omitempty"`
}

// Pod is one pod.
type Pod struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Node      string `json:"node,omitempty"`
	Phase     string `json:"phase,omitempty"`
	// Status is what kubectl's STATUS column shows (CrashLoopBackOff,
	// Init:ErrImagePull, Terminating, …), from the API or the paste.
	Status  string    `json:"status,omitempty"`
	Reason  string    `json:"reason,omitempty"` // pod-level: Evicted, NodeLost, …
	Message string    `json:"message,omitempty"`
	Created time.Time `json:"created,omitzero"`
	// Deleting is the pod's deletionTimestamp: when its grace period
	// ends. Zero when it is not being deleted, or (text) not known.
	Deleting     time.Time `json:"deleting,omitzero"`
	GraceSeconds int64     `json:"grace_seconds,omitempty"`
	// Terminating is true when the pod is being deleted, also when a
	// paste says so without the time.
	Terminating bool        `json:"terminating,omitempty"`
	Conditions  []Condition `json:"conditions,omitempty"`
	Containers  []Container `json:"containers,omitempty"`
	// AdvertiseAddr is the address a kubeadm control-plane static pod
	// was configured with (its kube-apiserver advertise-address
	// annotation, without the port), for FM-C7.
	AdvertiseAddr string `json:"advertise_addr,omitempty"`
	// Workload is the pod's controller as kubectl names it
	// ("deployment/web", "statefulset/db"), when known.
	Workload string `json:"workload,omitempty"`
	// Restarts and Age stand in for the containers' figures when a paste
	// shows only the pod's line.
	Restarts int `json:"restarts,omitempty"`
}

// Container is one container's status in its pod.
type Container struct {
	Name  string `json:"name,omitempty"`
	ID    string `json:"id,omitempty"` // runtime ID without "containerd://"
	Image string `json:"image,omitempty"`
	Init  bool   `json:"init,omitempty"`
	Ready bool   `json:"ready,omitempty"`
	// State is waiting, running or terminated, with its reason and
	// message (waiting/terminated) and since when.
	State    string    `json:"state,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Message  string    `json:"message,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Restarts int       `json:"restarts"`
	// Exit is the current termination when State is terminated.
	Exit *Termination `json:"exit,omitempty"`
	// Last is the previous instance's termination (lastState).
	Last *Termination `json:"last,omitempty"`
}

// Termination is how a container instance ended.
type Termination struct {
	Reason   string    `json:"reason,omitempty"`
	Message  string    `json:"message,omitempty"`
	ExitCode int       `json:"exit_code"`
	Signal   int       `json:"signal,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// Condition is a pod or node condition.
type Condition struct {
	Type    string    `json:"type"`
	Status  string    `json:"status"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since,omitzero"`     // lastTransitionTime
	Beat    time.Time `json:"heartbeat,omitzero"` // lastHeartbeatTime (nodes)
}

// Node is one node.
type Node struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles,omitempty"`
	// Status is what `kubectl get nodes` shows (Ready, NotReady,
	// Ready,SchedulingDisabled), when read from a paste without
	// conditions.
	Status        string      `json:"status,omitempty"`
	Conditions    []Condition `json:"conditions,omitempty"`
	Taints        []Taint     `json:"taints,omitempty"`
	InternalIPs   []string    `json:"internal_ips,omitempty"`
	ExternalIPs   []string    `json:"external_ips,omitempty"`
	Unschedulable bool        `json:"unschedulable,omitempty"`
	Version       string      `json:"version,omitempty"`
	Created       time.Time   `json:"created,omitzero"`
	// SeenAddrs are addresses other components recorded for the node
	// earlier (CNI and installer annotations), by annotation: what the
	// node's address was when they last looked, for FM-C7.
	SeenAddrs map[string]string `json:"seen_addrs,omitempty"`
}

// Taint is a node taint.
type Taint struct {
	Key    string    `json:"key"`
	Value  string    `json:"value,omitempty"`
	Effect string    `json:"effect"`
	Since  time.Time `json:"since,omitzero"`
}

// Event is one Warning event about an object.
type Event struct {
	Namespace string    `json:"namespace,omitempty"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Count     int       `json:"count,omitempty"`
	Last      time.Time `json:"last,omitzero"`
}

// Condition returns the node's condition of type t.
func (n *Node) Condition(t string) (Condition, bool) {
	for _, c := range n.Conditions {
		if c.Type == t {
			return c, true
		}
	}
	return Condition{}, false
}

// ControlPlane reports whether the node carries a control-plane role.
func (n *Node) ControlPlane() bool {
	for _, r := range n.Roles {
		if r == "control-plane" || r == "master" || r == "controlplane" {
			return true
		}
	}
	return false
}

// Ref is "namespace/name", or the name alone when the namespace is not
// known (a paste of one namespace).
func (p *Pod) Ref() string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// Condition returns the pod's condition of type t.
func (p *Pod) Condition(t string) (Condition, bool) {
	for _, c := range p.Conditions {
		if c.Type == t {
			return c, true
		}
	}
	return Condition{}, false
}

// TrimRuntime strips the runtime scheme from a container ID
// ("containerd://0123…" → "0123…").
func TrimRuntime(id string) string {
	if _, after, ok := strings.Cut(id, "://"); ok {
		return after
	}
	return id
}

// Annotations that record the address a node had when a component last
// looked: the CNI (flannel, calico), k3s and RKE. A node InternalIP that
// none of them names changed after they recorded it.
var seenAddrAnnotations = []string{
	"flannel.alpha.coreos.com/public-ip",
	"projectcalico.org/IPv4Address",
	"alpha.kubernetes.io/provided-node-ip",
	"k3s.io/internal-ip",
	"rke.cattle.io/internal-ip",
}

// SeenAddrs picks the address-recording annotations out of a node's
// annotations, each reduced to a bare address.
func SeenAddrs(annotations map[string]string) map[string]string {
	var out map[string]string
	for _, k := range seenAddrAnnotations {
		v := strings.TrimSpace(annotations[k])
		if v == "" {
			continue
		}
		// calico writes a prefix (172.18.1.1/16); k3s and kubelet may
		// list an IPv4 and an IPv6 address separated by a comma.
		v, _, _ = strings.Cut(v, ",")
		v, _, _ = strings.Cut(v, "/")
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

// advertiseAnnotation is where kubeadm writes a control-plane node's
// advertise address into the kube-apiserver static pod.
const advertiseAnnotation = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"

// AdvertiseAddr reads a kube-apiserver pod's advertise address, without
// its port.
func AdvertiseAddr(annotations map[string]string) string {
	v := strings.TrimSpace(annotations[advertiseAnnotation])
	if v == "" {
		return ""
	}
	if i := strings.LastIndexByte(v, ':'); i > 0 && !strings.HasSuffix(v, "]") {
		v = v[:i]
	}
	return strings.Trim(v, "[]")
}
