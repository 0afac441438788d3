package tower

import (
	"sort"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/web"
)

// Service state for the status page, kept in memory and fed by every
// probe result: the current state, day-by-day uptime for 90 days and
// recent response times. Rendering the page never queries the database;
// what changed is written to it every few seconds (history.go) and read
// back at start, so a restart changes nothing a visitor sees.

const (
	historyDays   = 90
	latencyPoints = 96 // the last 24 h in 15-minute buckets
	latencyBucket = 15 * time.Minute
	recentChecks  = 20
)

// ProbeResult is one probe run as the tower records it.
type ProbeResult struct {
	Name, Group string
	// Host is the host the service runs on, when known: while that host is
	// silent, the probe's alert does not open (dependency).
	Host     string
	Public   bool
	Status   string // up, degraded, down
	Started  time.Time
	Duration time.Duration
	// Message is the failure for operators (console, API, notifications):
	// the error with the target's address and the failed conditions.
	Message string
	// Reason is the failure in plain words, the only one the public pages
	// show ("connection refused", "HTTP 500").
	Reason string
}

type dayAgg struct {
	date            time.Time
	up, degraded, n int
	worst           string
}

type serviceState struct {
	name, group string
	public      bool
	status      string
	since       time.Time
	first       time.Time // the first result kept
	last        time.Time
	message     string
	reason      string
	days        []dayAgg    // oldest first, at most historyDays
	recent      []web.Check // newest last, at most recentChecks
	lat         [latencyPoints]latBucket

	// What changed since the last write to the store: the service's row,
	// its days from daysFrom on (only the last day changes or new ones
	// come) and the marked latency buckets.
	daysFrom time.Time
	latDirty [latencyPoints]bool
}

type latBucket struct {
	start time.Time
	sum   float64
	n     int
}

type services struct {
	mu    sync.Mutex
	m     map[string]*serviceState
	dirty map[string]*serviceState
}

func rank(s string) int {
	switch s {
	case "degraded":
		return 1
	case "down":
		return 2
	}
	return 0
}

// ready makes the maps; s.mu is held.
func (s *services) ready() {
	if s.m == nil {
		s.m, s.dirty = map[string]*serviceState{}, map[string]*serviceState{}
	}
}

// record folds a probe result into the service's state.
func (s *services) record(r ProbeResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready()
	// The times as the store gives them back (UTC, no monotonic reading),
	// so that a service read back at start is the same value.
	r.Started = r.Started.UTC().Round(0)
	st := s.m[r.Name]
	if st == nil {
		st = &serviceState{name: r.Name, since: r.Started, first: r.Started}
		s.m[r.Name] = st
	}
	s.dirty[r.Name] = st
	st.group, st.public = r.Group, r.Public
	if st.status != r.Status {
		st.status, st.since = r.Status, r.Started
	}
	st.last, st.message, st.reason = r.Started, r.Message, r.Reason
	st.recent = append(st.recent, web.Check{At: r.Started, Status: r.Status, Ms: float64(r.Duration.Microseconds()) / 1000, Message: r.Message})
	if len(st.recent) > recentChecks {
		st.recent = st.recent[len(st.recent)-recentChecks:]
	}
	day := time.Date(r.Started.Year(), r.Started.Month(), r.Started.Day(), 0, 0, 0, 0, time.UTC)
	if n := len(st.days); n == 0 || st.days[n-1].date.Before(day) {
		st.days = append(st.days, dayAgg{date: day})
		if len(st.days) > historyDays {
			st.days = st.days[len(st.days)-historyDays:]
		}
	}
	d := &st.days[len(st.days)-1]
	if d.date.Equal(day) {
		if st.daysFrom.IsZero() || day.Before(st.daysFrom) {
			st.daysFrom = day
		}
		d.n++
		switch r.Status {
		case "up":
			d.up++
		case "degraded":
			d.degraded++
		}
		if rank(r.Status) > rank(d.worst) || d.worst == "" {
			d.worst = r.Status
		}
	}
	b := r.Started.Truncate(latencyBucket)
	i := int(b.Unix()/int64(latencyBucket.Seconds())) % latencyPoints
	if !st.lat[i].start.Equal(b) {
		st.lat[i].start, st.lat[i].sum, st.lat[i].n = b, 0, 0
	}
	st.lat[i].sum += float64(r.Duration.Microseconds()) / 1000
	st.lat[i].n++
	st.latDirty[i] = true
}

// view renders the service for the pages. The public view says why a
// service is not up in plain words only and leaves out the recent results:
// the detail names the target's address and port.
func (st *serviceState) view(now time.Time, public bool) web.Service {
	v := web.Service{Name: st.name, Group: st.group, Status: st.status, Since: st.since, LastCheck: st.last, Uptime: map[string]float64{}}
	switch {
	case st.status == "up":
	case public:
		v.Message = st.reason
	default:
		v.Message = st.message
	}
	if now.Sub(st.first) < historyDays*24*time.Hour {
		v.Watched = st.first
	}
	if !public {
		v.Recent = make([]web.Check, 0, len(st.recent))
		for i := len(st.recent) - 1; i >= 0; i-- {
			v.Recent = append(v.Recent, st.recent[i])
		}
	}
	// Days are UTC midnights (see record), so whole days apart are exact
	// multiples of 24 h: no calendar arithmetic per day per service.
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	v.Days = make([]web.Day, historyDays)
	for i := range v.Days {
		v.Days[i] = web.Day{Date: today.Add(-time.Duration(historyDays-1-i) * 24 * time.Hour), Uptime: -1}
	}
	spans := [...]struct {
		key   string
		days  int
		up, n int
	}{{key: "24h", days: 1}, {key: "7d", days: 7}, {key: "30d", days: 30}, {key: "90d", days: 90}}
	for _, d := range st.days {
		ago := int(today.Sub(d.date) / (24 * time.Hour))
		if ago < 0 || ago >= historyDays {
			continue
		}
		if d.n > 0 {
			// Degraded counts as up for uptime; the bar's colour shows it.
			day := &v.Days[historyDays-1-ago]
			day.Uptime, day.Worst = float64(d.up+d.degraded)/float64(d.n), d.worst
		}
		for i := range spans {
			if ago < spans[i].days {
				spans[i].up += d.up + d.degraded
				spans[i].n += d.n
			}
		}
	}
	for _, span := range spans {
		if span.n == 0 {
			v.Uptime[span.key] = -1
		} else {
			v.Uptime[span.key] = float64(span.up) / float64(span.n)
		}
	}
	for k := 0; k < latencyPoints; k++ {
		b := now.Truncate(latencyBucket).Add(-time.Duration(latencyPoints-1-k) * latencyBucket)
		i := int(b.Unix()/int64(latencyBucket.Seconds())) % latencyPoints
		if st.lat[i].start.Equal(b) && st.lat[i].n > 0 {
			v.Latency = append(v.Latency, web.Point{At: b, Ms: st.lat[i].sum / float64(st.lat[i].n)})
		}
	}
	if len(v.Latency) < 2 && len(st.recent) >= 2 {
		// Less than two 15-minute buckets (a new service): its last runs
		// one by one, so the chart is not empty for the first half hour.
		v.Latency = v.Latency[:0]
		for _, c := range st.recent {
			v.Latency = append(v.Latency, web.Point{At: c.At, Ms: c.Ms})
		}
	}
	return v
}

// publicNames is the set of services marked public, without building their
// views.
func (s *services) publicNames() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.m))
	for name, st := range s.m {
		if st.public {
			out[name] = true
		}
	}
	return out
}

func (s *services) list(now time.Time, publicOnly bool) []web.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]web.Service, 0, len(s.m))
	for _, st := range s.m {
		if publicOnly && !st.public {
			continue
		}
		out = append(out, st.view(now, publicOnly))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].Name < out[j].Name
	})
	return out
}
