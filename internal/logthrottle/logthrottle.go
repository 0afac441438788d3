// Package logthrottle keeps a failure that repeats with every record or
// request from flooding the log that should tell of it: one line of each
// kind per period, and the next line says how many it stands for.
package logthrottle

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxKinds bounds the kinds remembered: they come from short lists (a
// reason, a channel, an agent), but a client could make up keys.
const maxKinds = 10000

// Limiter lets one line of each kind through per Period.
type Limiter struct {
	Period time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// New returns a Limiter with the given period.
func New(period time.Duration) *Limiter { return &Limiter{Period: period} }

// Allow reports whether a line of this kind may be logged now and, if so,
// how many were held back since the last one.
func (l *Limiter) Allow(kind string, now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, seen := l.last[kind]; seen && now.Sub(last) < l.Period {
		l.held[kind]++
		return false, 0
	}
	if l.last == nil || len(l.last) > maxKinds {
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	held = l.held[kind]
	l.last[kind] = now
	delete(l.held, kind)
	return true, held
}

// Reset forgets a kind (it is over) and returns the lines held back since
// its last line.
func (l *Limiter) Reset(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	held := l.held[kind]
	delete(l.last, kind)
	delete(l.held, kind)
	return held
}

// Handler passes every record below error level, and of error records one
// per kind (the message, and the "channel" attribute if any) per period;
// the next one that passes carries the count it stands for.
type Handler struct {
	next slog.Handler
	lim  *Limiter
}

// NewHandler throttles the error records going to h.
func NewHandler(h slog.Handler, period time.Duration) *Handler {
	return &Handler{next: h, lim: New(period)}
}

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		return h.next.Handle(ctx, r)
	}
	kind := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "channel" {
			kind += "\x00" + a.Value.String()
			return false
		}
		return true
	})
	ok, n := h.lim.Allow(kind, r.Time)
	if !ok {
		return nil
	}
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", n), slog.Duration("suppressed_over", h.lim.Period))
	}
	return h.next.Handle(ctx, r)
}

func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), lim: h.lim}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), lim: h.lim}
}
