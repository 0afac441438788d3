package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// A docker probe inspects one container on the tower host's Docker engine (DOCKER_HOST, by
// default the local socket, as internal/checks reads it): UP while it runs and is not
// unhealthy. [BODY] is the inspect document, so JSON paths read it
// ([BODY].State.Health.Status == healthy), without Config.Env, which holds secrets.

// containerNameRE is a container name (Docker's rule) or an ID.
var containerNameRE = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// dockerClient is an Env's one client, made on first use.
type dockerClient struct {
	once sync.Once
	cli  *client.Client
	err  error
}

func (e *Env) dockerCli() (*client.Client, error) {
	e.docker.once.Do(func() {
		e.docker.cli, e.docker.err = client.New(client.FromEnv)
	})
	return e.docker.cli, e.docker.err
}

func runDocker(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) error {
	name := strings.TrimPrefix(s.Target, "/")
	cli, err := env.dockerCli()
	if err != nil {
		return protoErr("Docker does not answer", "Docker client: %v", err)
	}
	start := time.Now()
	res, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return protoErr("Docker does not answer", "Docker at %s: no answer within %s", cli.DaemonHost(), s.Timeout)
	case ctx.Err() != nil:
		return ctx.Err()
	case cerrdefs.IsNotFound(err):
		return protoErr("no container named "+name, "Docker at %s: no container named %s", cli.DaemonHost(), name)
	case client.IsErrConnectionFailed(err), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return protoErr("Docker does not answer", "Docker at %s does not answer: %v", cli.DaemonHost(), err)
	default:
		return protoErr("Docker does not answer", "Docker at %s: inspecting %s: %v", cli.DaemonHost(), name, err)
	}
	o.responseTime, o.hasRT = time.Since(start), true
	o.body, o.hasBody = withoutEnv(res.Raw), true
	c := res.Container
	if n := strings.TrimPrefix(c.Name, "/"); n != "" {
		name = n
	}
	values["container"] = name
	if c.Config != nil {
		values["image"] = c.Config.Image
	}
	st := c.State
	if st == nil {
		return protoErr("container "+name+" has no state", "Docker at %s: container %s has no state", cli.DaemonHost(), name)
	}
	values["container_status"] = string(st.Status)
	values["restarts"] = strconv.Itoa(c.RestartCount)
	if st.Health != nil {
		values["health"] = string(st.Health.Status)
	}
	if err := containerProblem(name, st, env.now()); err != nil {
		return err
	}
	o.connected = true
	return nil
}

// containerProblem says why a container is not up, or nil.
func containerProblem(name string, st *container.State, now time.Time) error {
	exited := func() string {
		s := "exited with code " + strconv.Itoa(st.ExitCode)
		if t, err := time.Parse(time.RFC3339Nano, st.FinishedAt); err == nil && t.Year() > 1 {
			s += " " + clockAt(t, now)
		}
		if st.OOMKilled {
			s += " (out of memory)"
		}
		return s
	}
	bad := func(plain string) error {
		return protoErr(plain, "%s (state %s)", plain, st.Status)
	}
	switch {
	case st.Restarting:
		return bad("container " + name + " is restarting: it " + exited())
	case st.Paused:
		return bad("container " + name + " is paused")
	case st.Running:
	case st.Status == container.StateCreated:
		return bad("container " + name + " was created but never started")
	case st.Status == container.StateDead:
		return bad("container " + name + " is dead")
	case st.Status == container.StateRemoving:
		return bad("container " + name + " is being removed")
	default:
		return bad("container " + name + " " + exited())
	}
	if h := st.Health; h != nil && h.Status == container.Unhealthy {
		plain := "container " + name + " is unhealthy"
		detail := plain
		if n := len(h.Log); n > 0 {
			if out := oneLine(h.Log[n-1].Output); out != "" {
				plain += ": " + trunc(hideAddresses(out))
				detail += ": " + out
			} else {
				plain += fmt.Sprintf(": health check exited with code %d", h.Log[n-1].ExitCode)
				detail = plain
			}
		}
		return protoErr(plain, "%s (failing streak %d)", detail, h.FailingStreak)
	}
	return nil
}

// clockAt writes when something happened: "at 10:02" today, "on 2 Jan at 10:02" before.
func clockAt(t, now time.Time) string {
	t = t.In(now.Location())
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return "at " + t.Format("15:04")
	}
	return "on " + t.Format("2 Jan at 15:04")
}

// oneLine puts a health check's output on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// addressRE finds what the public must not read in a health check's output: URLs and IP
// addresses (with their port).
var addressRE = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"']*[^\s"'.,:;)]|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\[?[0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F:.]*\]?(?::\d+)?`)

// hideAddresses keeps the words of an output and drops its addresses, for the public.
func hideAddresses(s string) string {
	return addressRE.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Count(m, ":") == 1 && !strings.Contains(m, "://") && !strings.Contains(m, ".") {
			return m // "db: connection refused" has one colon and is no address
		}
		return "<address>"
	})
}

// withoutEnv drops Config.Env from an inspect document: it holds the container's secrets,
// and [BODY] may be quoted in a failure message.
func withoutEnv(raw []byte) []byte {
	var doc map[string]json.RawMessage
	if json.Unmarshal(raw, &doc) != nil {
		return raw
	}
	var cfg map[string]json.RawMessage
	if json.Unmarshal(doc["Config"], &cfg) != nil {
		return raw
	}
	delete(cfg, "Env")
	b, err := json.Marshal(cfg)
	if err != nil {
		return raw
	}
	doc["Config"] = b
	out, err := json.Marshal(doc)
	if err != nil {
		return raw
	}
	return out
}
