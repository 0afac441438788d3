package proctable

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/hinomi/hinomi/internal/host"
)

// Container is a container known to a local engine, as recorded in
// snapshots (probes/containers.json).
type Container struct {
	Engine string `json:"engine"` // docker, podman, cri
	ID     string `json:"id"`
	Name   string `json:"name"`
	Image  string `json:"image,omitempty"`
	// Pod is "namespace/pod" for Kubernetes containers.
	Pod string `json:"pod,omitempty"`
}

// engineSockets are the Docker-API sockets asked for container names.
// Podman serves the same API.
var engineSockets = []struct{ engine, socket string }{
	{"docker", "/var/run/docker.sock"},
	{"podman", "/run/podman/podman.sock"},
}

// ResolveNames finds the human names of the owners in the table: container
// names from the Docker and Podman APIs and from crictl, Proxmox guest
// names from /etc/pve. What cannot be asked (no engine, no permission) is
// reported in the returned notes, never as a failure.
func ResolveNames(ctx context.Context, src *host.Source, t *Table) (notes []string) {
	return ResolveNamesFrom(ctx, src, t, ListContainers(ctx, src))
}

// Engines is what the container engines' APIs said, for ResolveNamesFrom.
type Engines struct {
	Containers []Container
	Notes      []string
}

// ListContainers asks the Docker and Podman APIs for their containers. It
// needs no process table, so doctor asks while the pass runs.
func ListContainers(ctx context.Context, src *host.Source) Engines {
	var e Engines
	var all []Container
	err := src.Probe("containers", &all, func() error {
		all = nil
		for _, en := range engineSockets {
			cs, err := engineContainers(ctx, en.engine, en.socket)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					e.Notes = append(e.Notes, fmt.Sprintf("%s API: %v", en.engine, err))
				}
				continue
			}
			all = append(all, cs...)
		}
		return nil
	})
	if err != nil && !host.Missing(err) {
		e.Notes = append(e.Notes, "container names: "+err.Error())
	}
	e.Containers = all
	return e
}

// ResolveNamesFrom is ResolveNames with the engines' containers already
// listed.
func ResolveNamesFrom(ctx context.Context, src *host.Source, t *Table, e Engines) (notes []string) {
	notes = e.Notes
	all := e.Containers
	if needCRI(t) {
		cs, err := criContainers(ctx, src)
		if err != nil && !host.Missing(err) {
			notes = append(notes, "crictl: "+err.Error())
		}
		all = append(all, cs...)
	}
	names := Names{}
	for _, c := range all {
		n := c.Name
		if c.Pod != "" {
			n = c.Pod + "/" + c.Name
		}
		names[c.ID] = n
	}
	for _, p := range t.Procs {
		switch p.Owner.Kind {
		case "lxc":
			if _, ok := names[p.Owner.ID]; !ok {
				names[p.Owner.ID] = pveName(src, "/etc/pve/lxc/"+p.Owner.ID+".conf", "hostname:")
			}
		case "vm":
			if _, ok := names[p.Owner.ID]; !ok {
				names[p.Owner.ID] = pveName(src, "/etc/pve/qemu-server/"+p.Owner.ID+".conf", "name:")
			}
		}
	}
	t.Name(names)
	t.Names = names
	return notes
}

func engineContainers(ctx context.Context, engine, socket string) ([]Container, error) {
	if _, err := os.Stat(socket); err != nil {
		return nil, err
	}
	c, err := client.New(client.WithHost("unix://" + socket))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, err
	}
	out := make([]Container, 0, len(res.Items))
	for _, it := range res.Items {
		name := ""
		if len(it.Names) > 0 {
			name = strings.TrimPrefix(it.Names[0], "/")
		}
		out = append(out, Container{Engine: engine, ID: it.ID, Name: name, Image: it.Image})
	}
	return out, nil
}

func needCRI(t *Table) bool {
	for _, p := range t.Procs {
		if p.Owner.Kind == "kubernetes" || p.Owner.Kind == "containerd" {
			return true
		}
	}
	return false
}

// criContainers asks crictl, the CRI's own client, for container and pod
// names; its JSON is stable across containerd and CRI-O.
func criContainers(ctx context.Context, src *host.Source) ([]Container, error) {
	res, err := src.Command(ctx, "crictl-ps", "crictl", "ps", "-a", "-o", "json")
	if err != nil {
		return nil, err
	}
	return ParseCrictlPS(res.Stdout)
}

// ParseCrictlPS reads `crictl ps -a -o json`.
func ParseCrictlPS(b []byte) ([]Container, error) {
	var doc struct {
		Containers []struct {
			ID       string `json:"id"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Labels map[string]string `json:"labels"`
		} `json:"containers"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("crictl ps output: %w", err)
	}
	var out []Container
	for _, c := range doc.Containers {
		pod := ""
		if ns, name := c.Labels["io.kubernetes.pod.namespace"], c.Labels["io.kubernetes.pod.name"]; name != "" {
			pod = ns + "/" + name
		}
		out = append(out, Container{Engine: "cri", ID: c.ID, Name: c.Metadata.Name, Pod: pod})
	}
	return out, nil
}

// pveName reads a guest's name from its Proxmox config's main section.
func pveName(src *host.Source, path, key string) string {
	b, err := src.ReadFile(path)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			break // snapshot sections follow the current config
		}
		if v, ok := strings.CutPrefix(line, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
