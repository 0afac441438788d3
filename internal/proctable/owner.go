package proctable

import (
	"regexp"
	"strings"

	"github.com/prometheus/procfs"
)

// Owner is what a process belongs to, read from its cgroup path: a container,
// a Proxmox guest, a systemd service, or the host itself.
type Owner struct {
	// Kind is one of docker, podman, kubernetes, containerd, lxc, vm,
	// service, session, host.
	Kind string `json:"kind"`
	// ID is the container ID, guest ID or unit name.
	ID string `json:"id,omitempty"`
	// Name is the human name when it could be resolved (container name,
	// guest hostname, "namespace/pod/container" for Kubernetes).
	Name string `json:"name,omitempty"`
	// Pod is the Kubernetes pod UID.
	Pod string `json:"pod,omitempty"`
}

// IsContainer reports whether the owner is a container or guest, as opposed
// to a host service or the host itself.
func (o Owner) IsContainer() bool {
	switch o.Kind {
	case "docker", "podman", "kubernetes", "containerd", "lxc", "vm":
		return true
	}
	return false
}

// Label is the owner as an operator would name it.
func (o Owner) Label() string {
	switch o.Kind {
	case "", "host":
		return "host"
	case "service", "session":
		return o.ID
	case "lxc":
		if o.Name != "" {
			return "LXC " + o.ID + " (" + o.Name + ")"
		}
		return "LXC " + o.ID
	case "vm":
		if o.Name != "" {
			return "VM " + o.ID + " (" + o.Name + ")"
		}
		return "VM " + o.ID
	}
	if o.Name != "" {
		return o.Name
	}
	return o.Kind + " " + ShortID(o.ID)
}

// ShortID shortens a container ID the way docker ps does.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

var (
	hex64    = `([0-9a-f]{64})`
	reScope  = regexp.MustCompile(`(docker|libpod|cri-containerd|crio|nerdctl)-` + hex64 + `\.scope`)
	rePlain  = regexp.MustCompile(`/(docker|libpod|kubepods[^/]*(?:/[^/]+)*)/` + hex64 + `(?:/|$)`)
	rePod    = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})`)
	reLXC    = regexp.MustCompile(`/lxc(?:\.payload|\.monitor)?[./]([^/]+)`)
	reVM     = regexp.MustCompile(`/qemu\.slice/(\d+)\.scope`)
	reUnit   = regexp.MustCompile(`/([^/]+\.service)(?:/|$)`)
	reSessio = regexp.MustCompile(`/(session-[^/]+\.scope)`)
)

// OwnerOfPath attributes one cgroup path.
func OwnerOfPath(path string) Owner {
	kube := strings.Contains(path, "kubepods")
	pod := ""
	if m := rePod.FindStringSubmatch(path); m != nil {
		pod = strings.ReplaceAll(m[1], "_", "-")
	}
	if m := reScope.FindStringSubmatch(path); m != nil {
		kind := map[string]string{"docker": "docker", "libpod": "podman", "cri-containerd": "containerd", "crio": "containerd", "nerdctl": "containerd"}[m[1]]
		if kube {
			kind = "kubernetes"
		}
		return Owner{Kind: kind, ID: m[2], Pod: pod}
	}
	if m := rePlain.FindStringSubmatch(path); m != nil {
		kind := map[string]string{"docker": "docker", "libpod": "podman"}[m[1]]
		if kube {
			kind = "kubernetes"
		}
		return Owner{Kind: kind, ID: m[2], Pod: pod}
	}
	if m := reLXC.FindStringSubmatch(path); m != nil {
		return Owner{Kind: "lxc", ID: m[1]}
	}
	if m := reVM.FindStringSubmatch(path); m != nil {
		return Owner{Kind: "vm", ID: m[1]}
	}
	if m := reUnit.FindAllStringSubmatch(path, -1); m != nil {
		return Owner{Kind: "service", ID: m[len(m)-1][1]}
	}
	if m := reSessio.FindStringSubmatch(path); m != nil {
		return Owner{Kind: "session", ID: m[1]}
	}
	return Owner{Kind: "host"}
}

// ownerOf picks the most telling cgroup of a process. On cgroup v2 there is
// one path; on v1 and hybrid hosts the hierarchies can disagree (a container
// runtime may only place its processes in some controllers), so the first
// one naming a container wins, then the first naming a service.
func ownerOf(cgs []procfs.Cgroup) (Owner, string) {
	best, bestPath := Owner{Kind: "host"}, ""
	rank := func(o Owner) int {
		switch {
		case o.IsContainer():
			return 2
		case o.Kind == "service" || o.Kind == "session":
			return 1
		}
		return 0
	}
	for _, cg := range cgs {
		if cg.Path == "" {
			continue
		}
		o := OwnerOfPath(cg.Path)
		if rank(o) > rank(best) || bestPath == "" {
			best, bestPath = o, cg.Path
		}
		if rank(best) == 2 {
			break
		}
	}
	return best, bestPath
}
