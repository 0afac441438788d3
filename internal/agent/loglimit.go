package agent

import (
	"sync"
	"time"
)

// logLimiter lets one log line of each kind through per period and counts
// the ones it holds back, so that a failure that repeats with every
// record (a full disk under a busy kernel log) costs a line a minute, and
// the next line says how many it stands for.
type logLimiter struct {
	period time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func newLogLimiter(period time.Duration) *logLimiter {
	return &logLimiter{period: period, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether a line of this kind may be logged now and, if so,
// how many were held back since the last one.
func (l *logLimiter) allow(kind string, now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, seen := l.last[kind]; seen && now.Sub(last) < l.period {
		l.held[kind]++
		return false, 0
	}
	if len(l.last) > 1000 { // kinds come from a short list; never grow without bound
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	held = l.held[kind]
	l.last[kind] = now
	delete(l.held, kind)
	return true, held
}

// reset forgets a kind (it is over) and returns the lines held back since
// its last line.
func (l *logLimiter) reset(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	held := l.held[kind]
	delete(l.last, kind)
	delete(l.held, kind)
	return held
}
