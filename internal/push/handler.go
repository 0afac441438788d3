package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxOutput bounds the output a report may carry; longer is refused.
const MaxOutput = 16 << 10

// maxPerMinute bounds each monitor's reports: a job stuck in a loop must
// not flood the tower.
const maxPerMinute = 60

// Handler takes reports at /push/TOKEN: GET, HEAD or POST, with
// ?status=start|ok|fail (also healthchecks.io's /push/TOKEN/start,
// /push/TOKEN/fail and /push/TOKEN/EXITCODE, and Uptime Kuma's
// status=up|down), ?exit=N, ?duration=SECONDS, ?msg=TEXT, and the job's
// last output lines as a POST body (text, at most MaxOutput bytes).
type Handler struct {
	// Lookup finds the monitor a token belongs to.
	Lookup func(token string) (name string, ok bool)
	// Record keeps a report (within the request's context); an error is
	// the tower's (503).
	Record func(ctx context.Context, name string, p Ping) error
	Now    func() time.Time

	mu     sync.Mutex
	counts map[string]*window
}

type window struct {
	start time.Time
	n     int
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "report with GET or POST", http.StatusMethodNotAllowed)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/push/")
	token, suffix, _ := strings.Cut(rest, "/")
	name, ok := h.Lookup(token)
	if token == "" || !ok {
		http.Error(w, "unknown push token", http.StatusNotFound)
		return
	}
	now := h.now()
	if retry, ok := h.allow(name, now); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
		http.Error(w, fmt.Sprintf("more than %d reports a minute for this monitor", maxPerMinute), http.StatusTooManyRequests)
		return
	}
	p, err := parse(r, suffix, now)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, err.Error(), status)
		return
	}
	if err := h.Record(r.Context(), name, p); err != nil {
		http.Error(w, "the tower cannot keep the report now: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "OK")
}

var errTooLarge = fmt.Errorf("output larger than %d bytes: send the last lines only", MaxOutput)

func parse(r *http.Request, suffix string, now time.Time) (Ping, error) {
	q := r.URL.Query()
	p := Ping{At: now, Kind: Success, Message: clip(q.Get("msg"), 1000)}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		p.From = host
	}
	status := strings.ToLower(q.Get("status"))
	switch suffix {
	case "":
	case "start", "fail":
		status = suffix
	default:
		code, err := strconv.Atoi(suffix)
		if err != nil || code < 0 || code > 255 {
			return p, fmt.Errorf("unknown report %q: want start, fail or an exit status", suffix)
		}
		q.Set("exit", suffix)
	}
	switch status {
	case "", "ok", "up", "success":
		p.Kind = Success
	case "start":
		p.Kind = Start
	case "fail", "down", "error":
		p.Kind = Fail
	default:
		return p, fmt.Errorf("status %q: want start, ok or fail", status)
	}
	if e := q.Get("exit"); e != "" {
		code, err := strconv.Atoi(e)
		if err != nil || code < 0 || code > 255 {
			return p, fmt.Errorf("exit %q: want an exit status 0-255", e)
		}
		p.Exit = &code
		if code != 0 && p.Kind == Success {
			p.Kind = Fail // a job that exited non-zero failed, whatever it said
		}
	}
	if d := q.Get("duration"); d != "" {
		secs, err := strconv.ParseFloat(d, 64)
		if err != nil || secs < 0 || secs > 366*24*3600 {
			return p, fmt.Errorf("duration %q: want seconds", d)
		}
		p.Duration = time.Duration(secs * float64(time.Second))
	}
	if r.Method == http.MethodPost && r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, MaxOutput+1))
		if err != nil {
			return p, fmt.Errorf("reading the output: %w", err)
		}
		if len(b) > MaxOutput {
			return p, errTooLarge
		}
		p.Output = strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return p, nil
}

func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) allow(name string, now time.Time) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[string]*window{}
	}
	win := h.counts[name]
	if win == nil || now.Sub(win.start) >= time.Minute {
		win = &window{start: now}
		h.counts[name] = win
	}
	if win.n >= maxPerMinute {
		return time.Minute - now.Sub(win.start), false
	}
	win.n++
	return 0, true
}
