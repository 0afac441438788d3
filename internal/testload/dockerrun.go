package testload

import (
	"context"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// ContainerSpec is what StartContainer needs beyond an image and a name.
type ContainerSpec struct {
	// Args are given to the test-load program as they are.
	Args []string
	// Restart is the restart policy: "", "no", "always", "on-failure",
	// "unless-stopped"; MaxRetries bounds "on-failure".
	Restart    container.RestartPolicyMode
	MaxRetries int
	// Health, when set, is the health-check command (exec form, without
	// the "CMD" marker), run every HealthInterval (default 1s) and failing
	// after one failed try.
	Health         []string
	HealthInterval time.Duration
	Limits         Limits
	// Labels are added to the container's (it always has ContainerLabel).
	Labels map[string]string
	// Binds are docker run -v mounts ("volume:/path"); a named volume
	// that does not exist is created by the engine, and the caller
	// removes it.
	Binds []string
}

// StartContainer creates and starts a container named name from image (see
// ScratchImage) with no network, and returns its ID without waiting for the
// program's ready line: the container may exit and be restarted at once.
// A leftover container of the same name is removed first; the container is
// force-removed when the test ends. It calls RequireDocker first.
func StartContainer(t testing.TB, image, name string, spec ContainerSpec) string {
	t.Helper()
	cli := requireDocker(t)
	ctx := context.Background()
	if err := removeContainer(ctx, cli, name); err != nil && !cerrdefs.IsNotFound(err) {
		t.Fatalf("testload: removing leftover container %s: %v", name, err)
	}
	labels := map[string]string{ContainerLabel: "1"}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	cfg := &container.Config{Image: image, Cmd: spec.Args, Labels: labels}
	if len(spec.Health) > 0 {
		iv := spec.HealthInterval
		if iv == 0 {
			iv = time.Second
		}
		cfg.Healthcheck = &container.HealthConfig{
			Test:     append([]string{"CMD"}, spec.Health...),
			Interval: iv, Timeout: 5 * time.Second, Retries: 1,
		}
	}
	hc := &container.HostConfig{
		NetworkMode:   "none",
		Binds:         spec.Binds,
		RestartPolicy: container.RestartPolicy{Name: spec.Restart, MaximumRetryCount: spec.MaxRetries},
		Resources:     spec.Limits.resources(),
	}
	cctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	created, err := cli.ContainerCreate(cctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc})
	cancel()
	if err != nil {
		t.Fatalf("testload: creating container %s from %s: %v", name, image, err)
	}
	t.Cleanup(func() {
		if err := removeContainer(context.Background(), cli, created.ID); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("testload: removing container %s: %v", name, err)
		}
	})
	cctx, cancel = context.WithTimeout(ctx, dockerTimeout)
	_, err = cli.ContainerStart(cctx, created.ID, client.ContainerStartOptions{})
	cancel()
	if err != nil {
		t.Fatalf("testload: starting container %s: %v", name, err)
	}
	return created.ID
}

// WaitContainer polls the container's state (every 100ms, for at most
// ReadyTimeout) until ok accepts it, and returns that state; the test
// fails with the last state seen when it never does.
func WaitContainer(t testing.TB, nameOrID, what string, ok func(*container.InspectResponse) bool) *container.InspectResponse {
	t.Helper()
	cli := requireDocker(t)
	deadline := time.Now().Add(ReadyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
		res, err := cli.ContainerInspect(ctx, nameOrID, client.ContainerInspectOptions{})
		cancel()
		if err != nil {
			t.Fatalf("testload: inspecting container %s: %v", nameOrID, err)
		}
		c := res.Container
		if c.State != nil && ok(&c) {
			return &c
		}
		if time.Now().After(deadline) {
			t.Fatalf("testload: container %s: not %s within %s; state %+v", nameOrID, what, ReadyTimeout, c.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
