package checks

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
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
	woke   map[string]time.Time    // when each container last asked for a diagnosis
}

// eventWakeEvery is how often one container's events may ask for a
// diagnosis: once its finding is out, the regular interval follows it, and
// a container that loops for hours costs no more than that.
const eventWakeEvery = 10 * time.Minute

// NewDockerEvents returns an empty event log; Watch fills it.
func NewDockerEvents() *DockerEvents {
	return &DockerEvents{deaths: map[string][]dockerExit{}, woke: map[string]time.Time{}}
}

// Watch follows the stream of the engine at DOCKER_HOST (or the default
// socket) until ctx ends, reconnecting with a backoff from one second to a
// minute when the engine is absent or the stream breaks. notify is called
// when an event is worth a diagnosis now (see worth); it must not block.
func (e *DockerEvents) Watch(ctx context.Context, log *slog.Logger, notify func()) {
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
func (e *DockerEvents) follow(ctx context.Context, notify func()) (got bool, err error) {
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
			if e.worth(m, time.Now()) {
				notify()
			}
		case err := <-res.Err:
			return got, err
		}
	}
}

// worth records the event and reports whether it calls for a diagnosis
// now: a container's third death within loopUptime (a loop in the
// making), an OOM kill, a health check turning unhealthy or a restart by
// hand — at most once per container per eventWakeEvery.
func (e *DockerEvents) worth(m events.Message, now time.Time) bool {
	id := m.Actor.ID
	e.mu.Lock()
	defer e.mu.Unlock()
	wake := false
	switch m.Action {
	case events.ActionDie:
		code, err := strconv.Atoi(m.Actor.Attributes["exitCode"])
		if err != nil {
			return false
		}
		d := append(e.deaths[id], dockerExit{Time: time.Unix(0, m.TimeNano).UTC(), Code: code})
		if len(d) > dockerEventsKept {
			d = d[len(d)-dockerEventsKept:]
		}
		e.deaths[id] = d
		recent := 0
		for _, x := range d {
			if now.Sub(x.Time) < loopUptime {
				recent++
			}
		}
		wake = recent >= loopMinRestarts
	case events.ActionOOM, events.ActionRestart:
		wake = true
	default:
		wake = strings.HasSuffix(string(m.Action), ": unhealthy") // "health_status: unhealthy"
	}
	if !wake || now.Sub(e.woke[id]) < eventWakeEvery {
		return false
	}
	for k, t := range e.woke {
		if now.Sub(t) >= eventWakeEvery {
			delete(e.woke, k)
		}
	}
	e.woke[id] = now
	return true
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
