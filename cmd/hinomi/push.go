package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pushBody bounds what `hinomi push` sends of a command's output.
const pushBody = 16 << 10

// runPush is `hinomi push URL [-- CMD ARGS...]`: report to a push monitor
// (a dead-man switch) that a job ran. With a command it reports the
// start, runs the command (its output passes through), then reports the
// end with the exit status, the duration and the last lines of output,
// and exits with the command's status. The URL may be a hinomi tower's
// (…/push/TOKEN), a healthchecks.io one (…/ping/UUID) or an Uptime Kuma
// one (…/api/push/TOKEN).
func runPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("push", "[flags] URL [-- CMD ARGS...]", "Report to a push monitor (dead-man switch) that a job ran. With a command: report its start,\n"+
		"run it (its output passes through), report its end with exit status, duration and last output\n"+
		"lines, and exit with its status; a report that cannot be delivered is retried, then given up\n"+
		"with a warning, never failing the job. URL: a hinomi tower's …/push/TOKEN, healthchecks.io's\n"+
		"…/ping/UUID or Uptime Kuma's …/api/push/TOKEN.", stdout, stderr)
	status := fs.String("status", "ok", "without a command: the status to report, ok or fail")
	msg := fs.String("msg", "", "without a command: a message to go with it")
	lines := fs.Int("lines", 20, "how many of the command's last output lines to send")
	timeout := fs.Duration("timeout", 10*time.Second, "how long one report may take")
	retries := fs.Int("retries", 3, "how often to retry a report that fails")
	var cmd []string
	for i, a := range args {
		if a == "--" {
			args, cmd = args[:i], args[i+1:]
			break
		}
	}
	rest, err := fs.parseInterspersed(args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("push: want one URL, then optionally -- and the command to run")
	}
	target, err := parsePushURL(rest[0])
	if err != nil {
		return err
	}
	if *status != "ok" && *status != "fail" {
		return fmt.Errorf("push: --status %q: want ok or fail", *status)
	}
	if *lines < 0 || *timeout <= 0 || *retries < 0 {
		return fmt.Errorf("push: --lines, --timeout and --retries must not be negative")
	}
	p := &pusher{url: target, client: &http.Client{Timeout: *timeout}, retries: *retries, stderr: stderr}
	if len(cmd) == 0 {
		p.report(ctx, pushReport{state: *status, msg: *msg})
		return nil
	}

	p.report(ctx, pushReport{state: "start"})
	tailBuf := &lastLines{max: *lines}
	c := exec.Command(cmd[0], cmd[1:]...)
	c.Stdin = os.Stdin
	c.Stdout = io.MultiWriter(stdout, tailBuf)
	c.Stderr = io.MultiWriter(stderr, tailBuf)
	start := time.Now()
	if err := c.Start(); err != nil {
		p.report(ctx, pushReport{state: "fail", job: true, exit: 127, msg: "cannot run " + cmd[0] + ": " + err.Error(), took: time.Since(start)})
		return exitError{127}
	}
	// Signals meant for the job go to it; the report still follows.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = c.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	werr := c.Wait()
	close(done)
	code := 0
	if werr != nil {
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			return werr
		}
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	state := "ok"
	if code != 0 {
		state = "fail"
	}
	// The job's own signal context must not cut the final report short.
	p.report(context.WithoutCancel(ctx), pushReport{state: state, job: true, exit: code, took: time.Since(start), output: tailBuf.String()})
	if code != 0 {
		return exitError{code}
	}
	return nil
}

func parsePushURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("push: %q is not an http(s) URL of a push monitor", raw)
	}
	return u, nil
}

// pushReport is one report: start, ok or fail.
type pushReport struct {
	state  string
	job    bool // the end of a wrapped command: exit and duration are known
	exit   int
	took   time.Duration
	msg    string
	output string
}

type pusher struct {
	url     *url.URL
	client  *http.Client
	retries int
	stderr  io.Writer
}

// request builds the report for the kind of server the URL names.
func (p *pusher) request(ctx context.Context, r pushReport) (*http.Request, bool) {
	u := *p.url
	q := u.Query()
	body := r.output
	if body == "" {
		body = r.msg
	}
	switch {
	case strings.Contains(u.Path, "/api/push/"): // Uptime Kuma: no start, up or down
		if r.state == "start" {
			return nil, false
		}
		kuma := map[string]string{"ok": "up", "fail": "down"}
		q.Set("status", kuma[r.state])
		m := r.msg
		if m == "" {
			m = "exit status " + strconv.Itoa(r.exit)
		}
		q.Set("msg", m)
		if r.took > 0 {
			q.Set("ping", strconv.FormatInt(r.took.Milliseconds(), 10))
		}
		u.RawQuery = q.Encode()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		return req, true
	case strings.Contains(u.Path, "/ping/") || strings.HasSuffix(u.Hostname(), "hc-ping.com"): // healthchecks.io
		switch r.state {
		case "start":
			u.Path = strings.TrimSuffix(u.Path, "/") + "/start"
		case "fail":
			code := r.exit
			if code == 0 {
				code = 1
			}
			u.Path = strings.TrimSuffix(u.Path, "/") + "/" + strconv.Itoa(code)
		}
	default: // a hinomi tower
		q.Set("status", r.state)
		if r.job {
			q.Set("exit", strconv.Itoa(r.exit))
			if r.took > 0 {
				q.Set("duration", strconv.FormatFloat(r.took.Seconds(), 'f', 3, 64))
			}
		}
		if r.msg != "" {
			q.Set("msg", r.msg)
		}
		u.RawQuery = q.Encode()
	}
	if len(body) > pushBody {
		body = body[len(body)-pushBody:]
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("User-Agent", "hinomi-push")
	return req, true
}

// report delivers one report, retrying with backoff; a report that does
// not arrive is a warning, never the job's failure.
func (p *pusher) report(ctx context.Context, r pushReport) {
	wait := time.Second
	var last error
	for attempt := 0; attempt <= p.retries; attempt++ {
		req, ok := p.request(ctx, r)
		if !ok {
			return
		}
		resp, err := p.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return
			}
			last = fmt.Errorf("the server answered %s", resp.Status)
			if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
				break // a wrong token does not become right by retrying
			}
		} else {
			last = err
		}
		if attempt == p.retries {
			break
		}
		select {
		case <-ctx.Done():
			attempt = p.retries
		case <-time.After(wait):
		}
		wait *= 2
	}
	fmt.Fprintf(p.stderr, "hinomi push: could not report %q to %s: %v\n", r.state, maskToken(p.url), redactPushErr(last, p.url))
}

// maskToken shows a push URL without its token (the last path segment)
// and without a password.
func maskToken(u *url.URL) string {
	m := *u
	m.RawQuery, m.User = "", nil
	if i := strings.LastIndex(strings.TrimSuffix(m.Path, "/"), "/"); i >= 0 {
		m.Path = m.Path[:i+1] + "…"
	}
	return m.String()
}

// redactPushErr keeps the URL's token out of the warning.
func redactPushErr(err error, u *url.URL) error {
	if err == nil {
		return errors.New("no answer")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// lastLines keeps the last n lines written to it, bounded in bytes.
type lastLines struct {
	mu    sync.Mutex
	max   int
	buf   bytes.Buffer
	lines []string
}

func (l *lastLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		l.add(string(l.buf.Next(i + 1)))
	}
	if l.buf.Len() > pushBody { // a very long line without an end
		l.add(l.buf.String())
		l.buf.Reset()
	}
	return len(b), nil
}

func (l *lastLines) add(s string) {
	if l.max == 0 {
		return
	}
	if len(s) > 1024 {
		s = s[:1024] + "…\n"
	}
	l.lines = append(l.lines, s)
	if len(l.lines) > l.max {
		l.lines = l.lines[len(l.lines)-l.max:]
	}
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := strings.Join(l.lines, "")
	if l.buf.Len() > 0 && l.max > 0 {
		out += l.buf.String()
	}
	return out
}
