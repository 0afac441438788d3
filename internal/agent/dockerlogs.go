package agent

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/hinomi/hinomi/internal/signatures"
	"github.com/hinomi/hinomi/internal/wire"
)

// maxContainerLogs bounds how many containers' logs are followed at once.
const maxContainerLogs = 500

// watchContainerLogs follows the logs of the running Docker containers
// through the engine's API: each line goes through the signatures like
// the journal's. The container list is read every interval, so a
// container started later is followed too, from its start; a container
// running when the agent starts is followed from where the agent last
// read it (its position is kept per container), else from now.
func (a *Agent) watchContainerLogs(ctx context.Context) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return
	}
	defer cli.Close()
	dir := filepath.Join(a.cfg.StateDir, "container-logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		a.throttledWarn("container-logs", "cannot keep container log positions", "err", err)
	}
	following := map[string]context.CancelFunc{}
	defer func() {
		for _, stop := range following {
			stop()
		}
	}()
	first := true
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		list, err := cli.ContainerList(lctx, client.ContainerListOptions{})
		cancel()
		if err == nil {
			running := map[string]bool{}
			for _, c := range list.Items {
				running[c.ID] = true
				if _, ok := following[c.ID]; ok || len(following) >= maxContainerLogs {
					continue
				}
				name := strings.TrimPrefix(firstOr(c.Names, c.ID[:12]), "/")
				since := time.Unix(c.Created, 0)
				if first {
					since = time.Now()
				}
				fctx, stop := context.WithCancel(ctx)
				following[c.ID] = stop
				a.containersFollowed.Add(1)
				go a.followContainer(fctx, cli, c.ID, name, filepath.Join(dir, c.ID), since)
			}
			for id, stop := range following {
				if !running[id] {
					stop()
					delete(following, id)
				}
			}
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func firstOr(ss []string, def string) string {
	if len(ss) > 0 {
		return ss[0]
	}
	return def
}

// followContainer streams one container's stdout and stderr, with the
// engine's timestamps, from the saved position or since.
func (a *Agent) followContainer(ctx context.Context, cli *client.Client, id, name, posFile string, since time.Time) {
	pos := &positionWriter{file: posFile, before: a.flushLines}
	warn := func(err error) {
		a.cfg.Log.Warn("cannot save a container log's position", "container", name, "err", err)
	}
	defer func() { pos.flush(time.Now(), warn) }()
	if b, err := os.ReadFile(posFile); err == nil {
		if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err == nil {
			since = t.Add(time.Nanosecond) // after the last line read
		}
	}
	backoff := time.Second
	for ctx.Err() == nil {
		rc, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{
			ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true,
			Since: since.UTC().Format(time.RFC3339Nano),
		})
		if err == nil {
			last := a.readContainerLog(ctx, rc, name, pos, warn)
			rc.Close()
			if !last.IsZero() {
				since = last.Add(time.Nanosecond)
			}
		}
		if ctx.Err() != nil {
			return
		}
		// The stream ended: the container stopped (the list will stop
		// this follower) or the engine restarted.
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// readContainerLog reads a log stream (multiplexed, or raw for a TTY
// container) and returns the time of the last line.
func (a *Agent) readContainerLog(ctx context.Context, rc io.Reader, name string, pos *positionWriter, warn func(error)) time.Time {
	pr, pw := io.Pipe()
	go func() {
		// A TTY container's stream is not multiplexed: stdcopy refuses
		// it, and the raw bytes are the log.
		br := bufio.NewReader(rc)
		head, _ := br.Peek(1)
		var err error
		if len(head) == 1 && head[0] <= 2 {
			_, err = stdcopy.StdCopy(pw, pw, br)
		} else {
			_, err = io.Copy(pw, br)
		}
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	var last time.Time
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ts, msg, ok := strings.Cut(line, " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if !ok || err != nil {
			msg = line
		} else {
			last = t
		}
		spooled := false
		var sig, mode string
		a.matcher.Line([]byte(msg), "container "+name, func(ev signatures.Event) {
			a.logw.add(ev, time.Now())
			a.append(wire.KindLog, wire.Log{
				Signature: ev.Sig.ID, Mode: ev.Sig.Mode, Severity: ev.Sig.Severity, Title: ev.Sig.Title,
				Source: "container " + name, Line: ev.Entry.Message, Fields: ev.Fields,
			})
			spooled, sig, mode = true, ev.Sig.ID, ev.Sig.Mode
		})
		if a.ship != nil {
			at := last
			if at.IsZero() {
				at = time.Now()
			}
			a.shipLine(wire.Line{Time: at.UTC(), Source: "container:" + name, Unit: name, Priority: -1,
				Text: strings.ToValidUTF8(strings.TrimRight(msg, "\r"), "\uFFFD"), Fields: matchFields(sig, mode)})
		}
		if !last.IsZero() {
			pos.set([]byte(last.UTC().Format(time.RFC3339Nano)+"\n"), spooled, time.Now(), warn)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return last
}
