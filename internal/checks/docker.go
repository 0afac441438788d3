package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hinomi/hinomi/internal/host"
)

// The Docker engine is read once per run through its API (the official Go
// client, socket from DOCKER_HOST or the default), recorded as the probe
// "docker" so that doctor --from replays it. The Docker checks
// (docker_*.go) share that one reading.

// dockerCallTimeout bounds each call to the Docker API: a daemon that does
// not answer within it is hung (FM-E7), and doctor moves on.
const dockerCallTimeout = 3 * time.Second

// dockerInspectBudget bounds all the inspections of one run together;
// containers not inspected by then are reported as not seen.
const dockerInspectBudget = 6 * time.Second

// dockerInspectWorkers is how many inspections run at once: enough for
// hundreds of containers within the budget, few enough not to load dockerd.
const dockerInspectWorkers = 8

// dockerState is what the engine said, as recorded in a snapshot.
type dockerState struct {
	// Endpoint is the daemon address asked (unix:///var/run/docker.sock).
	Endpoint string `json:"endpoint"`
	// Absent says no daemon listens there (no socket, connection
	// refused): not a Docker host, or dockerd is down.
	Absent bool `json:"absent,omitempty"`
	// Hung names the call that got no answer within Timeout ("ping",
	// "list", "inspect"); empty when the daemon answered.
	Hung    string  `json:"hung,omitempty"`
	Timeout float64 `json:"timeout_seconds,omitempty"`
	// Error is why the API could not be read, in the client's words.
	Error      string            `json:"error,omitempty"`
	Version    string            `json:"api_version,omitempty"`
	Containers []dockerContainer `json:"containers,omitempty"`
	// Unseen lists containers that could not be inspected, and why.
	Unseen []string `json:"unseen,omitempty"`
}

// dockerContainer is one container's inspect output, reduced to what the
// checks read.
type dockerContainer struct {
	ID            string        `json:"id"`
	Name          string        `json:"name"`
	Image         string        `json:"image"`
	Status        string        `json:"status"` // created, running, restarting, exited, …
	Running       bool          `json:"running"`
	Restarting    bool          `json:"restarting"`
	OOMKilled     bool          `json:"oom_killed"`
	Pid           int           `json:"pid,omitempty"`
	ExitCode      int           `json:"exit_code"`
	Error         string        `json:"error,omitempty"`
	Created       time.Time     `json:"created"`
	StartedAt     time.Time     `json:"started_at"`
	FinishedAt    time.Time     `json:"finished_at"`
	RestartCount  int           `json:"restart_count"`
	RestartPolicy string        `json:"restart_policy,omitempty"`
	MaxRetries    int           `json:"max_retries,omitempty"`
	MemoryLimit   int64         `json:"memory_limit,omitempty"`
	Health        *dockerHealth `json:"health,omitempty"`
	// Exits are the container's recent deaths from the engine's event
	// log, oldest first, read for containers that keep restarting: a
	// running container's own exit code is already reset to 0.
	Exits []dockerExit `json:"exits,omitempty"`

	// restartsUnknown says RestartCount and Created are not known: the
	// container was read from `docker ps`, which shows neither.
	restartsUnknown bool
	// Where the container keeps its data on the host (see docker_disk.go):
	// its writable layer (overlay2's UpperDir), its log file (json-file
	// and local drivers) with the log options, its volumes, and the Swarm
	// service or Compose service it belongs to.
	UpperDir  string            `json:"upper_dir,omitempty"`
	LogPath   string            `json:"log_path,omitempty"`
	LogDriver string            `json:"log_driver,omitempty"`
	LogOpts   map[string]string `json:"log_opts,omitempty"`
	Volumes   []string          `json:"volumes,omitempty"` // volume names
	Service   string            `json:"service,omitempty"` // com.docker.swarm.service.name
	Compose   string            `json:"compose,omitempty"` // project/service from Compose labels
}

// dockerExit is one "die" event.
type dockerExit struct {
	Time time.Time `json:"time"`
	Code int       `json:"exit_code"`
}

type dockerHealth struct {
	Status        string        `json:"status"`
	FailingStreak int           `json:"failing_streak"`
	Log           []dockerProbe `json:"log,omitempty"` // oldest first
}

type dockerProbe struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	ExitCode int       `json:"exit_code"`
	Output   string    `json:"output"`
}

// docker returns the engine's state, read (or replayed) once per run. A
// snapshot without it, or a host without Docker, gives ErrNotApplicable.
func docker(ctx context.Context, env *Env) (*dockerState, error) {
	env.dockerOnce.Do(func() {
		var st dockerState
		err := env.Src.Probe("docker", &st, func() error {
			st = readDocker(ctx, env.DockerEvents)
			return nil
		})
		switch {
		case host.Missing(err):
			env.dockerErr = ErrNotApplicable
		case err != nil:
			env.dockerErr = err
		default:
			env.dockerSt = &st
		}
	})
	return env.dockerSt, env.dockerErr
}

// readDocker asks the daemon named by DOCKER_HOST (by default the local
// socket) for its containers, every call under dockerCallTimeout.
func readDocker(ctx context.Context, ev *DockerEvents) dockerState {
	var st dockerState
	cli, err := client.New(client.FromEnv)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	defer cli.Close()
	st.Endpoint = cli.DaemonHost()
	if sock, ok := strings.CutPrefix(st.Endpoint, "unix://"); ok {
		if _, err := os.Stat(sock); errors.Is(err, os.ErrNotExist) {
			st.Absent = true
			return st
		}
	}
	call := func(name string, f func(ctx context.Context) error) bool {
		cctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
		defer cancel()
		err := f(cctx)
		switch {
		case err == nil:
			return true
		case ctx.Err() != nil:
			st.Error = name + ": " + ctx.Err().Error()
		case cctx.Err() != nil:
			st.Hung, st.Timeout = name, dockerCallTimeout.Seconds()
			st.Error = fmt.Sprintf("%s: no answer within %s", name, dockerCallTimeout)
		case refused(err):
			st.Absent = true
			st.Error = name + ": " + err.Error()
		default:
			st.Error = name + ": " + err.Error()
		}
		return false
	}
	if !call("ping", func(ctx context.Context) error {
		p, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		st.Version = p.APIVersion
		return err
	}) {
		return st
	}
	var list client.ContainerListResult
	if !call("list", func(ctx context.Context) error {
		var err error
		list, err = cli.ContainerList(ctx, client.ContainerListOptions{All: true})
		return err
	}) {
		return st
	}

	// Inspect every container: only inspect has the restart count, the
	// exit code, the OOM flag and the health log.
	ictx, cancel := context.WithTimeout(ctx, dockerInspectBudget)
	defer cancel()
	out := make([]*dockerContainer, len(list.Items))
	errs := make([]error, len(list.Items))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(dockerInspectWorkers, len(list.Items)) {
		wg.Go(func() {
			for i := range jobs {
				if ictx.Err() != nil {
					errs[i] = fmt.Errorf("not inspected within %s", dockerInspectBudget)
					continue
				}
				cctx, cancel := context.WithTimeout(ictx, dockerCallTimeout)
				res, err := cli.ContainerInspect(cctx, list.Items[i].ID, client.ContainerInspectOptions{})
				if cctx.Err() != nil {
					err = fmt.Errorf("no answer within %s", dockerCallTimeout)
				}
				cancel()
				if err != nil {
					errs[i] = err
					continue
				}
				out[i] = fromInspect(res.Container, list.Items[i].Image)
			}
		})
	}
	for i := range list.Items {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for i, c := range out {
		if c != nil {
			st.Containers = append(st.Containers, *c)
			continue
		}
		name := list.Items[i].ID
		if len(list.Items[i].Names) > 0 {
			name = strings.TrimPrefix(list.Items[i].Names[0], "/")
		}
		st.Unseen = append(st.Unseen, fmt.Sprintf("container %s: %v", name, errs[i]))
	}
	readExits(ctx, cli, ev, st.Containers, time.Now())
	if len(st.Unseen) == 0 {
		ids := map[string]bool{}
		for _, c := range st.Containers {
			ids[c.ID] = true
		}
		ev.forget(ids)
	}
	if len(st.Containers) == 0 && len(st.Unseen) > 0 && ictx.Err() != nil {
		st.Hung, st.Timeout = "inspect", dockerCallTimeout.Seconds()
		st.Error = fmt.Sprintf("inspect: no container could be inspected within %s", dockerInspectBudget)
	}
	return st
}

// dockerExitsMax bounds how many containers' deaths are read per run.
const dockerExitsMax = 20

// readExits fills Exits for the containers that look like a restart loop,
// from the agent's event log when it has them, else from the engine's
// events (dockerd keeps the last 256 in memory), within one
// dockerCallTimeout for all of them.
func readExits(ctx context.Context, cli *client.Client, ev *DockerEvents, cs []dockerContainer, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	n := 0
	for i := range cs {
		c := &cs[i]
		if !c.restarting(now) || c.Created.IsZero() {
			continue
		}
		if x, ok := ev.exits(c.ID, c.Created); ok {
			c.Exits = x
			continue
		}
		if n >= dockerExitsMax {
			continue
		}
		n++
		res := cli.Events(ctx, client.EventsListOptions{
			Since:   strconv.FormatInt(c.Created.Unix(), 10),
			Until:   strconv.FormatInt(now.Unix()+1, 10),
			Filters: client.Filters{}.Add("type", "container").Add("container", c.ID).Add("event", "die"),
		})
	read:
		for {
			select {
			case m := <-res.Messages:
				code, err := strconv.Atoi(m.Actor.Attributes["exitCode"])
				if err != nil {
					continue
				}
				c.Exits = append(c.Exits, dockerExit{Time: time.Unix(0, m.TimeNano).UTC(), Code: code})
			case <-res.Err: // io.EOF at Until, or the deadline
				break read
			}
		}
	}
}

// restarting reports whether the engine is restarting the container, or
// restarted it many times and it has been up only briefly since: dockerd
// doubles its restart delay from 100 ms and resets it once a container
// stays up for 10 s, so a looping container is never up for long.
func (c *dockerContainer) restarting(now time.Time) bool {
	return c.Restarting ||
		(c.Running && c.RestartCount >= loopMinRestarts && !c.StartedAt.IsZero() && now.Sub(c.StartedAt) < loopUptime)
}

// refused reports whether err means nothing listens at the address.
func refused(err error) bool {
	var oe *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		(errors.As(err, &oe) && oe.Op == "dial" && errors.Is(err, os.ErrNotExist))
}

func fromInspect(c container.InspectResponse, image string) *dockerContainer {
	d := &dockerContainer{
		ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), Image: image,
		RestartCount: c.RestartCount, Created: parseDockerTime(c.Created),
	}
	if c.Config != nil && c.Config.Image != "" {
		d.Image = c.Config.Image
	}
	if c.Config != nil {
		d.Service = c.Config.Labels["com.docker.swarm.service.name"]
		if p, s := c.Config.Labels["com.docker.compose.project"], c.Config.Labels["com.docker.compose.service"]; s != "" {
			d.Compose = strings.TrimPrefix(p+"/"+s, "/")
		}
	}
	if hc := c.HostConfig; hc != nil {
		d.RestartPolicy = string(hc.RestartPolicy.Name)
		d.MaxRetries = hc.RestartPolicy.MaximumRetryCount
		d.MemoryLimit = hc.Memory
		d.LogDriver, d.LogOpts = hc.LogConfig.Type, hc.LogConfig.Config
	}
	if g := c.GraphDriver; g != nil {
		d.UpperDir = g.Data["UpperDir"]
	}
	d.LogPath = c.LogPath
	for _, m := range c.Mounts {
		if m.Type == "volume" && m.Name != "" {
			d.Volumes = append(d.Volumes, m.Name)
		}
	}
	if s := c.State; s != nil {
		d.Status = string(s.Status)
		d.Running, d.Restarting, d.OOMKilled = s.Running, s.Restarting, s.OOMKilled
		d.Pid, d.ExitCode, d.Error = s.Pid, s.ExitCode, s.Error
		d.StartedAt, d.FinishedAt = parseDockerTime(s.StartedAt), parseDockerTime(s.FinishedAt)
		if d.Status == "" {
			// Engines before API 1.21 (Docker 1.9) print no Status.
			switch {
			case s.Restarting:
				d.Status = "restarting"
			case s.Paused:
				d.Status = "paused"
			case s.Running:
				d.Status = "running"
			case s.Dead:
				d.Status = "dead"
			case !d.FinishedAt.IsZero():
				d.Status = "exited"
			default:
				d.Status = "created"
			}
		}
		if h := s.Health; h != nil {
			dh := &dockerHealth{Status: string(h.Status), FailingStreak: h.FailingStreak}
			for _, r := range h.Log {
				if r != nil {
					dh.Log = append(dh.Log, dockerProbe{Start: r.Start, End: r.End, ExitCode: r.ExitCode, Output: r.Output})
				}
			}
			d.Health = dh
		}
	}
	return d
}

// parseDockerTime reads the API's RFC 3339 times; the zero time
// ("0001-01-01T00:00:00Z", never started) stays zero.
func parseDockerTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// containerLabel is how findings name a container: its name, else its
// short ID.
func (c *dockerContainer) label() string {
	if c.Name != "" {
		return c.Name
	}
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}
