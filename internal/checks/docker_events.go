package checks

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/moby/moby/client"
)

// dockerEventsKept is how many deaths are kept per container.
const dockerEventsKept = 20

// DockerEvents follows the Docker engine's event stream (die, oom,
// restart, health_status) for a long-running agent: it keeps each
// container's recent deaths, so a diagnosis need not ask the engine for
// them, and it tells the agent at once, so that a restart loop, an OOM
// kill or a failing health check is diagnosed within one cycle rather than
// at the next tick.
type DockerEvents struct {
	mu     sync.Mutex
	deaths map[string][]dockerExit // by container ID, oldest first
}

// NewDockerEvents returns an empty event log; Watch fills it.
func NewDockerEvents() *DockerEvents {
	return &DockerEvents{deaths: map[string][]dockerExit{}}
}

// Watch follows the stream of the engine at DOCKER_HOST (or the default
// socket) until ctx ends, reconnecting with a backoff from one second to a
// minute when the engine is absent or the stream breaks. notify is called
// after each event it keeps, with the event's action; it must not block.
func (e *DockerEvents) Watch(ctx context.Context, log *slog.Logger, notify func(action string)) {
	backoff := time.Second
	for ctx.Err() == nil {
		got, err := e.follow(ctx, notify)
		if ctx.Err() != nil {
			return
		}
		if got {
			backoff = time.Second
		}
		log.Debug("Docker event stream stopped; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// follow reads one connection's events; got says it read any.
func (e *DockerEvents) follow(ctx context.Context, notify func(string)) (got bool, err error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return false, err
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The stream's first answer is bounded like every call; after that
	// it is quiet until something happens.
	pctx, pcancel := context.WithTimeout(ctx, dockerCallTimeout)
	_, err = cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
	pcancel()
	if err != nil {
		return false, err
	}
	res := cli.Events(ctx, client.EventsListOptions{
		Filters: client.Filters{}.Add("type", "container").Add("event", "die", "oom", "restart", "health_status"),
	})
	for {
		select {
		case m := <-res.Messages:
			got = true
			if m.Action == "die" {
				code, err := strconv.Atoi(m.Actor.Attributes["exitCode"])
				if err == nil {
					e.died(m.Actor.ID, dockerExit{Time: time.Unix(0, m.TimeNano).UTC(), Code: code})
				}
			}
			notify(string(m.Action))
		case err := <-res.Err:
			return got, err
		}
	}
}

func (e *DockerEvents) died(id string, x dockerExit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := append(e.deaths[id], x)
	if len(d) > dockerEventsKept {
		d = d[len(d)-dockerEventsKept:]
	}
	e.deaths[id] = d
}

// exits returns the deaths seen for container id since it was created.
func (e *DockerEvents) exits(id string, created time.Time) ([]dockerExit, bool) {
	if e == nil {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.deaths[id]
	var out []dockerExit
	for _, x := range d {
		if !x.Time.Before(created.Truncate(time.Second)) {
			out = append(out, x)
		}
	}
	return out, ok
}

// forget drops the deaths of containers that no longer exist.
func (e *DockerEvents) forget(keep map[string]bool) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.deaths {
		if !keep[id] {
			delete(e.deaths, id)
		}
	}
}
