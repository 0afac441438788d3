package checks

import (
	"context"
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/hinomi/hinomi/internal/host"
	swarmdiag "github.com/hinomi/hinomi/internal/swarm"
)

// checkSwarm is FM-D10, FM-C4 and FM-C5 as Docker Swarm shows them: nodes
// Down or Unreachable, managers without a Raft majority, services whose
// tasks are rejected or keep failing, with their full error. It reads the
// engine's swarm API (recorded as the probe "docker-swarm" for doctor
// --from) and leaves the judging to swarm.Diagnose, which `hinomi explain`
// also calls on pasted `docker service ps` / `node ls` / `service ls`.
func checkSwarm(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := docker(ctx, env)
	if err != nil {
		return res, err
	}
	if st.Absent || st.Hung != "" || st.Error != "" {
		return res, ErrNotApplicable // docker-api and docker-restarts say why
	}
	var sw swarmdiag.State
	err = env.Src.Probe("docker-swarm", &sw, func() error {
		sw = readSwarm(ctx, st.Endpoint)
		return nil
	})
	switch {
	case host.Missing(err):
		return res, ErrNotApplicable
	case err != nil:
		return res, err
	}
	switch sw.LocalState {
	case "", "inactive":
		if len(sw.Unread) > 0 {
			res.Blind = append(res.Blind, "Swarm: "+strings.Join(sw.Unread, "; "))
			return res, nil
		}
		return res, ErrNotApplicable
	case "pending":
		res.Blind = append(res.Blind, "Swarm: this node is still joining the swarm (state pending)")
		return res, nil
	}
	rep := swarmdiag.Diagnose(&sw, env.Now)
	res.Findings, res.Headroom, res.Blind = rep.Findings, rep.Headroom, rep.Blind
	return res, nil
}

// readSwarm asks the engine for the swarm's state: its own role first
// (docker info), then, on a manager, the nodes, services and tasks, each
// call under dockerCallTimeout.
func readSwarm(ctx context.Context, endpoint string) swarmdiag.State {
	st := swarmdiag.State{Source: "Docker API " + endpoint}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		st.Unread = append(st.Unread, err.Error())
		return st
	}
	defer cli.Close()
	// A manager that does not answer one list will not answer the next:
	// after a timeout the other calls are not made, so a hung manager
	// costs doctor one deadline, not four.
	hung := false
	call := func(name string, f func(ctx context.Context) error) bool {
		if hung {
			st.Unread = append(st.Unread, name+": not asked, the manager stopped answering")
			return false
		}
		cctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
		defer cancel()
		err := f(cctx)
		switch {
		case err == nil:
			return true
		case cctx.Err() != nil && ctx.Err() == nil:
			hung = true
			st.Unread = append(st.Unread, fmt.Sprintf("%s: no answer within %s", name, dockerCallTimeout))
		case strings.Contains(err.Error(), "does not have a leader"):
			st.NoLeader = err.Error()
		default:
			st.Unread = append(st.Unread, name+": "+err.Error())
		}
		return false
	}
	var info swarm.Info
	if !call("docker info", func(ctx context.Context) error {
		r, err := cli.Info(ctx, client.InfoOptions{})
		info = r.Info.Swarm
		return err
	}) {
		return st
	}
	st.LocalState = string(info.LocalNodeState)
	st.NodeID, st.Manager, st.Error = info.NodeID, info.ControlAvailable, info.Error
	st.Managers, st.NodeCount = info.Managers, info.Nodes
	for _, p := range info.RemoteManagers {
		st.RemoteManagers = append(st.RemoteManagers, p.Addr)
	}
	if c := info.Cluster; c != nil && c.Spec.Orchestration.TaskHistoryRetentionLimit != nil {
		st.HistoryLimit = int(*c.Spec.Orchestration.TaskHistoryRetentionLimit)
	}
	if info.LocalNodeState != swarm.LocalNodeStateActive || !info.ControlAvailable {
		return st
	}

	hostnames := map[string]string{}
	nodesRead := call("node list", func(ctx context.Context) error {
		r, err := cli.NodeList(ctx, client.NodeListOptions{})
		for _, n := range r.Items {
			st.Nodes = append(st.Nodes, fromNode(n, info.NodeID))
			hostnames[n.ID] = n.Description.Hostname
		}
		return err
	})
	if !nodesRead && st.NoLeader != "" {
		return st // the other lists would give the same answer
	}
	names := map[string]string{}
	call("service list", func(ctx context.Context) error {
		r, err := cli.ServiceList(ctx, client.ServiceListOptions{Status: true})
		for _, s := range r.Items {
			st.Services = append(st.Services, fromService(s))
			names[s.ID] = s.Spec.Name
		}
		return err
	})
	call("task list", func(ctx context.Context) error {
		r, err := cli.TaskList(ctx, client.TaskListOptions{})
		st.Tasks = fromTasks(r.Items, names, hostnames)
		return err
	})
	return st
}

func fromNode(n swarm.Node, self string) swarmdiag.Node {
	d := swarmdiag.Node{
		ID: n.ID, Hostname: n.Description.Hostname, Self: n.ID == self,
		Role: string(n.Spec.Role), Availability: string(n.Spec.Availability),
		State: string(n.Status.State), Message: n.Status.Message, Addr: n.Status.Addr,
		Engine: n.Description.Engine.EngineVersion, Updated: n.UpdatedAt,
	}
	if m := n.ManagerStatus; m != nil {
		d.Leader, d.Reachability = m.Leader, string(m.Reachability)
		if m.Addr != "" {
			d.Addr = m.Addr
		}
	}
	return d
}

func fromService(s swarm.Service) swarmdiag.Service {
	d := swarmdiag.Service{ID: s.ID, Name: s.Spec.Name, Updated: s.UpdatedAt, Desired: -1}
	switch m := s.Spec.Mode; {
	case m.Replicated != nil:
		d.Mode = "replicated"
	case m.Global != nil:
		d.Mode = "global"
	case m.ReplicatedJob != nil:
		d.Mode = "replicated-job"
	case m.GlobalJob != nil:
		d.Mode = "global-job"
	}
	if ss := s.ServiceStatus; ss != nil {
		d.Running = int(ss.RunningTasks)
		if !strings.HasSuffix(d.Mode, "-job") {
			d.Desired = int(ss.DesiredTasks)
		}
	}
	if c := s.Spec.TaskTemplate.ContainerSpec; c != nil {
		d.Image = c.Image
		// The CLI drops the digest it pinned; so do findings.
		if i := strings.Index(d.Image, "@sha256:"); i > 0 {
			d.Image = d.Image[:i]
		}
		for _, m := range c.Mounts {
			dm := swarmdiag.Mount{Type: string(m.Type), Source: m.Source, Target: m.Target}
			if v := m.VolumeOptions; v != nil && v.DriverConfig != nil {
				dm.Device = v.DriverConfig.Options["device"]
			}
			d.Mounts = append(d.Mounts, dm)
		}
	}
	return d
}

// fromTasks converts the task list, marking each replica's newest task
// as its current one, as docker service ps does.
func fromTasks(ts []swarm.Task, names, hostnames map[string]string) []swarmdiag.Task {
	newest := map[string]int{}
	out := make([]swarmdiag.Task, 0, len(ts))
	for _, t := range ts {
		d := swarmdiag.Task{
			ID: t.ID, Service: names[t.ServiceID], Slot: t.Slot, Node: hostnames[t.NodeID],
			DesiredState: string(t.DesiredState), State: string(t.Status.State),
			Err: t.Status.Err, Time: t.Status.Timestamp,
		}
		if d.Service == "" {
			d.Service = t.ServiceID
		}
		if d.Node == "" {
			d.Node = t.NodeID
		}
		if c := t.Spec.ContainerSpec; c != nil {
			d.Image, _, _ = strings.Cut(c.Image, "@sha256:")
		}
		if cs := t.Status.ContainerStatus; cs != nil {
			d.ExitCode = cs.ExitCode
		}
		out = append(out, d)
		key := fmt.Sprintf("%s/%d", t.ServiceID, t.Slot)
		if t.Slot == 0 {
			key = t.ServiceID + "/" + t.NodeID
		}
		if j, ok := newest[key]; !ok || ts[j].CreatedAt.Before(t.CreatedAt) {
			newest[key] = len(out) - 1
		}
	}
	for _, i := range newest {
		out[i].Current = true
	}
	return out
}
