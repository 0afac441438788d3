package testload

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// swarmLock serialises the tests that need swarm mode across test
// binaries: the daemon has one swarm, and one test leaving it would pull
// it from under another.
const swarmLock = "/tmp/hinomi-testload-swarm.lock"

// Swarm makes the daemon a single-node swarm manager for the test
// (`docker swarm init --advertise-addr 127.0.0.1`) and leaves the swarm
// with --force when the test ends. A daemon that was already in a swarm is
// used as it is and never left. Tests that call Swarm run one at a time,
// across packages. It calls RequireDocker first.
func Swarm(t testing.TB) {
	t.Helper()
	cli := requireDocker(t)
	f, err := os.OpenFile(swarmLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("testload: %v", err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			f.Close()
			t.Fatalf("testload: another test held the swarm for 3 minutes: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // another process holds it; flock has no deadline
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock, after the leave below

	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	info, err := cli.Info(cctx, client.InfoOptions{})
	cancel()
	if err != nil {
		t.Fatalf("testload: docker info: %v", err)
	}
	switch info.Info.Swarm.LocalNodeState {
	case swarm.LocalNodeStateActive:
		if !info.Info.Swarm.ControlAvailable {
			t.Skip("testload: the daemon is a swarm worker; swarm tests need a manager")
		}
		return
	case swarm.LocalNodeStateInactive:
	default:
		t.Fatalf("testload: the daemon's swarm is %s (%s); not touching it", info.Info.Swarm.LocalNodeState, info.Info.Swarm.Error)
	}
	cctx, cancel = context.WithTimeout(ctx, dockerTimeout)
	_, err = cli.SwarmInit(cctx, client.SwarmInitOptions{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"})
	cancel()
	if err != nil {
		t.Fatalf("testload: docker swarm init --advertise-addr 127.0.0.1: %v", err)
	}
	t.Cleanup(func() {
		drainSwarm(t, cli)
		cctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
		defer cancel()
		if _, err := cli.SwarmLeave(cctx, client.SwarmLeaveOptions{Force: true}); err != nil {
			t.Errorf("testload: docker swarm leave --force: %v", err)
		}
	})
}

// drainSwarm removes every service left and waits, at most 30 s, until
// the swarm has no task left. Docker 20.10's swarmkit removes a service's
// tasks after ServiceRemove returns, and a `swarm leave --force` during
// that removal made dockerd panic (a nil dereference in
// orchestrator.SetServiceTasksRemove), taking every later Docker test down
// with it.
func drainSwarm(t testing.TB, cli *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if res, err := cli.ServiceList(ctx, client.ServiceListOptions{}); err == nil {
		for _, s := range res.Items {
			if _, err := cli.ServiceRemove(ctx, s.ID, client.ServiceRemoveOptions{}); err != nil {
				t.Logf("testload: docker service rm %s: %v", s.Spec.Name, err)
			}
		}
	}
	for ctx.Err() == nil {
		res, err := cli.TaskList(ctx, client.TaskListOptions{})
		if err != nil || len(res.Items) == 0 {
			return
		}
		// The daemon sends no event when its task store is empty: ask again.
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("testload: swarm tasks still listed after 30 s; leaving anyway")
}

// ServiceSpec is what StartService needs beyond an image and a name.
type ServiceSpec struct {
	// Args are given to the test-load program as they are.
	Args []string
	// BindSource, when set, is bind-mounted at /data.
	BindSource string
	// RestartDelay is the delay between a task's end and the next (Swarm's
	// default is 5 s).
	RestartDelay time.Duration
}

// StartService creates a one-replica service named name from image (see
// ScratchImage) on no network, with DNS round-robin and no published port
// (the daemon may run without bridge or iptables, and so without the
// ingress network), and removes it when the test ends.
func StartService(t testing.TB, image, name string, spec ServiceSpec) string {
	t.Helper()
	cli := requireDocker(t)
	one := uint64(1)
	cs := &swarm.ContainerSpec{Image: image, Args: spec.Args, Labels: map[string]string{ContainerLabel: "1"}}
	if spec.BindSource != "" {
		cs.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: spec.BindSource, Target: "/data"}}
	}
	rp := &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny}
	if spec.RestartDelay > 0 {
		rp.Delay = &spec.RestartDelay
	}
	s := swarm.ServiceSpec{
		Annotations:  swarm.Annotations{Name: name, Labels: map[string]string{ContainerLabel: "1"}},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: cs, RestartPolicy: rp},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
	cctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	res, err := cli.ServiceCreate(cctx, client.ServiceCreateOptions{Spec: s})
	cancel()
	if err != nil {
		t.Fatalf("testload: docker service create %s: %v", name, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
		defer cancel()
		if _, err := cli.ServiceRemove(cctx, res.ID, client.ServiceRemoveOptions{}); err != nil {
			t.Logf("testload: docker service rm %s: %v", name, err)
		}
	})
	return res.ID
}
