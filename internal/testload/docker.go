package testload

// Docker helpers. They use the Docker Go client library
// (github.com/moby/moby/client) rather than the docker CLI: the build context
// is a tar made in memory and sent to the daemon's /build endpoint with the
// classic builder, so no Dockerfile on disk, no buildx plugin and no registry
// are needed, and errors come back as values rather than as CLI output to
// parse. The library negotiates the API version down to the daemon's (Debian
// 12's docker.io 20.10 speaks API 1.41; the library needs 1.40 or newer).

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// DockerSocket is the daemon socket used unless DOCKER_HOST says otherwise.
const DockerSocket = "/var/run/docker.sock"

// ContainerLabel is set (to "1") on every container RunContainer creates, so
// that leftovers can be found with `docker ps -a --filter label=hinomi.test`.
const ContainerLabel = "hinomi.test"

// dockerTimeout bounds one Docker API call (other than a build).
const dockerTimeout = 30 * time.Second

var docker struct {
	once sync.Once
	cli  *client.Client
	err  error
}

func dockerClient() (*client.Client, error) {
	docker.once.Do(func() {
		docker.cli, docker.err = client.New(client.FromEnv)
	})
	return docker.cli, docker.err
}

// pingDocker returns nil when the daemon answers a ping.
func pingDocker(ctx context.Context) (*client.Client, error) {
	cli, err := dockerClient()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return nil, err
	}
	return cli, nil
}

// RequireDocker skips the test when the Docker daemon (DOCKER_HOST, by
// default the socket /var/run/docker.sock) does not answer a ping, or fails
// it when the CI environment variable is set, so that CI never passes by
// skipping the container tests.
func RequireDocker(t testing.TB) {
	t.Helper()
	requireDocker(t)
}

func requireDocker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := pingDocker(context.Background())
	if err == nil {
		return cli
	}
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix://" + DockerSocket
	}
	msg := fmt.Sprintf("the Docker daemon at %s does not answer: %v; run scripts/test (as root), which installs and starts dockerd", host, err)
	if os.Getenv("CI") != "" {
		t.Fatalf("testload: CI is set, so Docker is required: %s", msg)
	}
	t.Skipf("testload: skipping: %s", msg)
	return nil
}

var images struct {
	mu    sync.Mutex
	built map[string]error // tag -> result of its one build
}

// DefaultImage is a tag for ScratchImage when the test has no reason to
// choose another.
const DefaultImage = "hinomi-testload:test"

// ScratchImage builds, once per test binary and tag, a Docker image FROM
// scratch that holds only the static test-load program (see Build) at
// /hinomi-testload, as its ENTRYPOINT, and tags it tag (DefaultImage when
// tag is empty) followed by a hash of the program. It returns that tag, for
// RunContainer. It needs no registry.
// It calls RequireDocker first.
func ScratchImage(t testing.TB, tag string) string {
	t.Helper()
	if tag == "" {
		tag = DefaultImage
	}
	cli := requireDocker(t)
	bin := Build(t)
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatalf("testload: %v", err)
	}
	// The tag names the program's content: test binaries of other versions
	// (another checkout, an older run) building at the same time or left
	// behind never hand this one an image of a program without its flags.
	sum := sha256.Sum256(exe)
	tag += "-" + hex.EncodeToString(sum[:6])

	images.mu.Lock()
	defer images.mu.Unlock()
	if images.built == nil {
		images.built = map[string]error{}
	}
	err, done := images.built[tag]
	if !done {
		err = buildImage(context.Background(), cli, exe, tag)
		images.built[tag] = err
	}
	if err != nil {
		t.Fatalf("testload: building image %s: %v", tag, err)
	}
	return tag
}

func buildImage(ctx context.Context, cli *client.Client, exe []byte, tag string) error {
	dockerfile := []byte("FROM scratch\n" +
		"COPY " + ProgramName + " /" + ProgramName + "\n" +
		`ENTRYPOINT ["/` + ProgramName + `"]` + "\n")
	return buildContext(ctx, cli, tag, map[string][]byte{"Dockerfile": dockerfile, ProgramName: exe})
}

// BuildImage builds an image tagged tag from a Dockerfile and the files it
// copies (name → content; executables get mode 0755 when their name has no
// dot), with the classic builder and no registry.
func BuildImage(t testing.TB, tag string, files map[string][]byte) {
	t.Helper()
	cli := requireDocker(t)
	if err := buildContext(context.Background(), cli, tag, files); err != nil {
		t.Fatalf("testload: building image %s: %v", tag, err)
	}
}

// RunToExit runs a container from image with args, in the host's PID
// namespace with the given extra capabilities when hostPID is set, waits
// (bounded) for it to exit and returns its output and exit code; the
// container is removed.
func RunToExit(t testing.TB, image string, hostPID bool, capAdd []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cli := requireDocker(t)
	ctx := context.Background()
	hc := &container.HostConfig{NetworkMode: "none", CapAdd: capAdd}
	if hostPID {
		hc.PidMode = "host"
	}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Cmd: args, Labels: map[string]string{ContainerLabel: "1"}},
		HostConfig: hc,
	})
	if err != nil {
		t.Fatalf("testload: creating a container from %s: %v", image, err)
	}
	defer func() { _ = removeContainer(context.Background(), cli, created.ID) }()
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("testload: starting a container from %s: %v", image, err)
	}
	select {
	case res := <-wait.Result:
		code = int(res.StatusCode)
	case err := <-wait.Error:
		t.Fatalf("testload: waiting for the container: %v", err)
	case <-time.After(ReadyTimeout):
		t.Fatalf("testload: the container from %s did not exit within %s", image, ReadyTimeout)
	}
	stdout, stderr, err = containerLogs(ctx, cli, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	return stdout, stderr, code
}

func buildContext(ctx context.Context, cli *client.Client, tag string, files map[string][]byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f := struct {
			name string
			mode int64
			data []byte
		}{name, 0o644, files[name]}
		if !strings.Contains(name, ".") && name != "Dockerfile" {
			f.mode = 0o755
		}
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return err
	}
	defer res.Body.Close()

	// The body is a stream of JSON messages; a failed build reports its
	// error in one of them, not in the HTTP status.
	var log strings.Builder
	dec := json.NewDecoder(res.Body)
	for {
		var msg jsonstream.Message
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("reading build output: %w\n%s", err, log.String())
		}
		log.WriteString(msg.Stream)
		if msg.Error != nil {
			return fmt.Errorf("%s\n%s", msg.Error.Message, log.String())
		}
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		return fmt.Errorf("image missing after the build: %w\n%s", err, log.String())
	}
	return nil
}

// RunContainer creates and starts a container named name from image (see
// ScratchImage) with no network (--network none) and no standard input, and
// with args passed to the test-load program after -stdin=false (so that only
// a signal ends it). It waits, for at most ReadyTimeout, for the program's
// ready line in the container's logs, and returns the host PID of the
// container's main process (the program itself). When the test ends the
// container is force-removed.
//
// A leftover container of the same name (from an interrupted run) is removed
// first. It calls RequireDocker first.
func RunContainer(t testing.TB, image, name string, args ...string) (pid int) {
	t.Helper()
	return runContainer(t, image, name, "", Limits{}, args)
}

// RunContainerAs is RunContainer with the container's process running as
// user ("4243" or "4243:4243").
func RunContainerAs(t testing.TB, image, name, user string, args ...string) (pid int) {
	t.Helper()
	return runContainer(t, image, name, user, Limits{}, args)
}

// Limits are the resource limits of a container made by
// RunContainerLimited; zero fields mean no limit.
type Limits struct {
	// Pids is the container's pids.max (docker run --pids-limit).
	Pids int64
	// Memory is the container's memory limit in bytes (docker run
	// --memory); swap is limited to the same figure, so the limit is hard.
	Memory int64
}

// RunContainerLimited is RunContainer with resource limits.
func RunContainerLimited(t testing.TB, image, name string, lim Limits, args ...string) (pid int) {
	t.Helper()
	return runContainer(t, image, name, "", lim, args)
}

func runContainer(t testing.TB, image, name, user string, lim Limits, args []string) (pid int) {
	t.Helper()
	cli := requireDocker(t)
	ctx := context.Background()

	if err := removeContainer(ctx, cli, name); err != nil && !cerrdefs.IsNotFound(err) {
		t.Fatalf("testload: removing leftover container %s: %v", name, err)
	}

	cctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	created, err := cli.ContainerCreate(cctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:        image,
			User:         user,
			Cmd:          append([]string{"-stdin=false"}, args...),
			AttachStdout: true,
			AttachStderr: true,
			Labels:       map[string]string{ContainerLabel: "1"},
		},
		HostConfig: &container.HostConfig{
			NetworkMode: "none",
			// A scratch image has no /tmp, where the program makes the
			// files it watches.
			Tmpfs:     map[string]string{"/tmp": "rw,mode=1777"},
			Resources: lim.resources(),
		},
	})
	cancel()
	if err != nil {
		t.Fatalf("testload: creating container %s from %s: %v", name, image, err)
	}
	id := created.ID
	t.Cleanup(func() {
		// t.Context is already cancelled here: use a fresh one.
		if err := removeContainer(context.Background(), cli, id); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("testload: removing container %s: %v", name, err)
		}
	})

	cctx, cancel = context.WithTimeout(ctx, dockerTimeout)
	_, err = cli.ContainerStart(cctx, id, client.ContainerStartOptions{})
	cancel()
	if err != nil {
		t.Fatalf("testload: starting container %s: %v", name, err)
	}

	deadline := time.NewTimer(ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		stdout, stderr, err := containerLogs(ctx, cli, id)
		if err != nil {
			t.Fatalf("testload: reading logs of container %s: %v", name, err)
		}
		if readyLine(stdout) != "" {
			break
		}
		state, err := containerState(ctx, cli, id)
		if err != nil {
			t.Fatalf("testload: inspecting container %s: %v", name, err)
		}
		if !state.Running {
			t.Fatalf("testload: container %s is %s (exit code %d) before the ready line; stdout:\n%s\nstderr:\n%s",
				name, state.Status, state.ExitCode, stdout, stderr)
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("testload: container %s printed no ready line within %v; stdout:\n%s\nstderr:\n%s",
				name, ReadyTimeout, stdout, stderr)
		}
	}

	state, err := containerState(ctx, cli, id)
	if err != nil {
		t.Fatalf("testload: inspecting container %s: %v", name, err)
	}
	if !state.Running || state.Pid <= 0 {
		t.Fatalf("testload: container %s is %s (pid %d) right after its ready line", name, state.Status, state.Pid)
	}
	return state.Pid
}

// ContainerID returns the full id of the container with the given name (or
// id prefix). It calls RequireDocker first.
func ContainerID(t testing.TB, nameOrID string) string {
	t.Helper()
	cli := requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	res, err := cli.ContainerInspect(ctx, nameOrID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("testload: inspecting container %s: %v", nameOrID, err)
	}
	return res.Container.ID
}

// ContainerLogs returns what the container's program has written so far to
// its standard output and standard error. It calls RequireDocker first.
func ContainerLogs(t testing.TB, nameOrID string) (stdout, stderr string) {
	t.Helper()
	cli := requireDocker(t)
	stdout, stderr, err := containerLogs(context.Background(), cli, nameOrID)
	if err != nil {
		t.Fatalf("testload: reading logs of container %s: %v", nameOrID, err)
	}
	return stdout, stderr
}

func containerLogs(ctx context.Context, cli *client.Client, id string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", "", err
	}
	defer rc.Close()
	var out, errOut bytes.Buffer
	// Without a TTY the two streams come multiplexed.
	if _, err := stdcopy.StdCopy(&out, &errOut, rc); err != nil {
		return "", "", err
	}
	return out.String(), errOut.String(), nil
}

func containerState(ctx context.Context, cli *client.Client, id string) (*container.State, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	res, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	if res.Container.State == nil {
		return nil, fmt.Errorf("container %s has no state", id)
	}
	return res.Container.State, nil
}

func removeContainer(ctx context.Context, cli *client.Client, id string) error {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	_, err := cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	return err
}

// readyLine returns the first ready line in out, or "".
func readyLine(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if _, err := ParseReady(sc.Text()); err == nil {
			return sc.Text()
		}
	}
	return ""
}

func (l Limits) resources() container.Resources {
	var r container.Resources
	if l.Pids > 0 {
		pids := l.Pids
		r.PidsLimit = &pids
	}
	if l.Memory > 0 {
		r.Memory, r.MemorySwap = l.Memory, l.Memory
	}
	return r
}

// RunContainerToExit creates and starts a container named name from image
// with limits and args (given to the test-load program as they are), waits
// (for at most ReadyTimeout) until its main process has exited, and returns
// the container's final state. The container is kept, stopped, until the
// test ends, so that the engine can still be asked about it; then it is
// removed.
func RunContainerToExit(t testing.TB, image, name string, lim Limits, args ...string) *container.State {
	t.Helper()
	cli := requireDocker(t)
	ctx := context.Background()
	if err := removeContainer(ctx, cli, name); err != nil && !cerrdefs.IsNotFound(err) {
		t.Fatalf("testload: removing leftover container %s: %v", name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	created, err := cli.ContainerCreate(cctx, client.ContainerCreateOptions{
		Name:       name,
		Config:     &container.Config{Image: image, Cmd: args, Labels: map[string]string{ContainerLabel: "1"}},
		HostConfig: &container.HostConfig{NetworkMode: "none", Resources: lim.resources()},
	})
	cancel()
	if err != nil {
		t.Fatalf("testload: creating container %s from %s: %v", name, image, err)
	}
	t.Cleanup(func() {
		if err := removeContainer(context.Background(), cli, created.ID); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("testload: removing container %s: %v", name, err)
		}
	})
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	cctx, cancel = context.WithTimeout(ctx, dockerTimeout)
	_, err = cli.ContainerStart(cctx, created.ID, client.ContainerStartOptions{})
	cancel()
	if err != nil {
		t.Fatalf("testload: starting container %s: %v", name, err)
	}
	select {
	case <-wait.Result:
	case err := <-wait.Error:
		t.Fatalf("testload: waiting for container %s: %v", name, err)
	case <-time.After(ReadyTimeout):
		t.Fatalf("testload: container %s did not exit within %s", name, ReadyTimeout)
	}
	state, err := containerState(ctx, cli, created.ID)
	if err != nil {
		t.Fatalf("testload: inspecting container %s: %v", name, err)
	}
	return state
}
