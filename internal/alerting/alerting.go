// Package alerting is the per-signal state machine of hinomi's tower: a
// signal (a host's heartbeat, a finding an agent reported, later a probe)
// is ok, pending (bad, but not for long enough), firing, or resolved. It is
// pure: Step takes the state, the observation and the time, and returns
// the new state and what happened, so the tower persists and notifies, and
// tests drive time by hand.
package alerting

import (
	"fmt"
	"time"
)

// Status is where a signal is.
type Status string

// The statuses.
const (
	OK       Status = "ok"
	Pending  Status = "pending"
	Firing   Status = "firing"
	Resolved Status = "resolved"
)

// State is a signal's persisted state.
type State struct {
	Status Status `json:"status"`
	// BadSince is when the problem started, as observed (a host's last
	// heartbeat, a finding's own start), not when the tower noticed.
	BadSince time.Time `json:"bad_since,omitzero"`
	// PendingSince is when the tower first saw it bad.
	PendingSince time.Time `json:"pending_since,omitzero"`
	FiredAt      time.Time `json:"fired_at,omitzero"`
	ResolvedAt   time.Time `json:"resolved_at,omitzero"`
	// LastNotified is the last firing or repeat notification.
	LastNotified time.Time `json:"last_notified,omitzero"`
	// Notifications counts firing and repeat notifications of this outage.
	Notifications int `json:"notifications,omitempty"`

	// Spells are the starts of recent bad spells, for flap detection.
	Spells []time.Time `json:"spells,omitempty"`
	// Flapping is set while the signal changes too often to page on each
	// change; FlapSince is when that began.
	Flapping  bool      `json:"flapping,omitempty"`
	FlapSince time.Time `json:"flap_since,omitzero"`
	// FlapFrom is when the first bad spell of the flapping episode began.
	FlapFrom time.Time `json:"flap_from,omitzero"`
	// Blips are recent bad spells that ended, kept for the summary
	// ("12 blips of 30 s–1m0s in 7 days").
	Blips []Blip `json:"blips,omitempty"`
}

// Blip is one bad spell that ended.
type Blip struct {
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
}

// FlapRule says when a signal is flapping: Spells bad spells started
// within Window. It stops flapping after being good for Stable; a bad
// spell longer than Stable while flapping is a real outage and fires.
type FlapRule struct {
	Window time.Duration
	Spells int
	Stable time.Duration
}

// blipHistory is how long ended spells are remembered.
const (
	blipHistory = 7 * 24 * time.Hour
	maxBlips    = 200
)

// Rule says how long a signal must be bad before it fires, how often a
// firing one is repeated, and when it is flapping.
type Rule struct {
	For            time.Duration
	RepeatInterval time.Duration // 0: never repeat
	Flap           FlapRule      // zero: no flap detection
}

// Event is what a Step decided.
type Event string

// The events a step can produce.
const (
	None      Event = ""
	Fire      Event = "fire"
	Repeat    Event = "repeat"
	Resolve   Event = "resolve"
	Cancelled Event = "cancelled" // was pending, became good before firing
	FlapStart Event = "flapping"  // too many bad spells: one message instead of a page each
	FlapEnd   Event = "stable"    // stable again after flapping
)

// Observation is the signal now: bad or not, and since when if bad.
type Observation struct {
	Bad      bool
	BadSince time.Time
}

// Step advances the state machine to now.
func Step(s State, o Observation, now time.Time, r Rule) (State, Event) {
	s = s.clone()
	s.prune(now, r)
	switch {
	case o.Bad && (s.Status == OK || s.Status == Resolved || s.Status == ""):
		since := o.BadSince
		if since.IsZero() || since.After(now) {
			since = now
		}
		s.Status, s.BadSince, s.PendingSince = Pending, since, now
		s.FiredAt, s.ResolvedAt, s.LastNotified, s.Notifications = time.Time{}, time.Time{}, time.Time{}, 0
		s.Spells = append(s.Spells, since)
		if r.Flap.Spells > 0 && !s.Flapping && len(s.Spells) >= r.Flap.Spells {
			s.Flapping, s.FlapSince, s.FlapFrom = true, now, s.Spells[0]
			return s, FlapStart
		}
		fallthrough
	case o.Bad && s.Status == Pending:
		if !o.BadSince.IsZero() && o.BadSince.Before(s.BadSince) {
			s.BadSince = o.BadSince
		}
		if s.Flapping {
			// While flapping only a spell longer than Stable is news.
			if now.Sub(s.BadSince) >= max(r.For, r.Flap.Stable) {
				s.Flapping = false
				s.Status, s.FiredAt, s.LastNotified, s.Notifications = Firing, now, now, 1
				return s, Fire
			}
			return s, None
		}
		if now.Sub(s.BadSince) >= r.For {
			s.Status, s.FiredAt, s.LastNotified, s.Notifications = Firing, now, now, 1
			return s, Fire
		}
		return s, None
	case o.Bad && s.Status == Firing:
		if r.RepeatInterval > 0 && now.Sub(s.LastNotified) >= r.RepeatInterval {
			s.LastNotified = now
			s.Notifications++
			return s, Repeat
		}
		return s, None
	case !o.Bad && s.Status == Pending:
		s.blip(now)
		s.Status = OK
		return s, Cancelled
	case !o.Bad && s.Status == Firing:
		s.blip(now)
		s.Status, s.ResolvedAt = Resolved, now
		return s, Resolve
	case !o.Bad && s.Flapping && now.Sub(s.lastChange()) >= r.Flap.Stable:
		s.Flapping = false
		return s, FlapEnd
	}
	return s, None
}

func (s State) clone() State {
	s.Spells = append([]time.Time(nil), s.Spells...)
	s.Blips = append([]Blip(nil), s.Blips...)
	return s
}

// prune forgets spells outside the flap window and blips older than a week.
func (s *State) prune(now time.Time, r Rule) {
	if r.Flap.Window > 0 {
		i := 0
		for i < len(s.Spells) && now.Sub(s.Spells[i]) > r.Flap.Window {
			i++
		}
		s.Spells = s.Spells[i:]
	} else {
		s.Spells = nil
	}
	i := 0
	for i < len(s.Blips) && now.Sub(s.Blips[i].Start) > blipHistory {
		i++
	}
	s.Blips = s.Blips[i:]
}

func (s *State) blip(now time.Time) {
	s.Blips = append(s.Blips, Blip{Start: s.BadSince, Duration: now.Sub(s.BadSince)})
	if len(s.Blips) > maxBlips {
		s.Blips = s.Blips[len(s.Blips)-maxBlips:]
	}
}

// lastChange is when the signal last went bad or good.
func (s State) lastChange() time.Time {
	t := s.FlapSince
	if n := len(s.Blips); n > 0 {
		if end := s.Blips[n-1].Start.Add(s.Blips[n-1].Duration); end.After(t) {
			t = end
		}
	}
	return t
}

// BlipSummary describes the ended bad spells of the last week in words:
// "12 blips of 30s–1m0s in the last 7 days", or "" when there were none.
func (s State) BlipSummary() string {
	if len(s.Blips) == 0 {
		return ""
	}
	lo, hi := s.Blips[0].Duration, s.Blips[0].Duration
	for _, b := range s.Blips {
		lo, hi = min(lo, b.Duration), max(hi, b.Duration)
	}
	span := func(d time.Duration) string { return d.Round(time.Second).String() }
	word := "blips"
	if len(s.Blips) == 1 {
		return fmt.Sprintf("1 blip of %s in the last 7 days", span(lo))
	}
	if span(lo) == span(hi) {
		return fmt.Sprintf("%d %s of %s in the last 7 days", len(s.Blips), word, span(lo))
	}
	return fmt.Sprintf("%d %s of %s–%s in the last 7 days", len(s.Blips), word, span(lo), span(hi))
}

// Episode is a flapping episode told as it happened.
type Episode struct {
	Spells      int           // bad spells
	First, Last time.Time     // when the first and the last began
	Down        time.Duration // their total length
	StableSince time.Time     // when the last one ended
}

// FlapEpisode is the flapping episode that began at FlapFrom, from the
// bad spells that ended since (ok is false when none is known).
func (s State) FlapEpisode() (e Episode, ok bool) {
	from := s.FlapFrom
	if from.IsZero() {
		from = s.FlapSince // a state written before FlapFrom was kept
	}
	for _, b := range s.Blips {
		if b.Start.Before(from) {
			continue
		}
		if e.Spells == 0 {
			e.First = b.Start
		}
		e.Spells++
		e.Last = b.Start
		e.Down += b.Duration
		if end := b.Start.Add(b.Duration); end.After(e.StableSince) {
			e.StableSince = end
		}
	}
	return e, e.Spells > 0
}

// Downtime is how long a resolved (or, with now, a firing) signal has been
// bad.
func (s State) Downtime(now time.Time) time.Duration {
	end := now
	if s.Status == Resolved {
		end = s.ResolvedAt
	}
	if s.BadSince.IsZero() || end.Before(s.BadSince) {
		return 0
	}
	return end.Sub(s.BadSince)
}

// Same reports whether two states are equal (states hold slices, so ==
// does not work); the tower persists only states that changed.
func (s State) Same(o State) bool {
	if s.Status != o.Status || !s.BadSince.Equal(o.BadSince) || !s.PendingSince.Equal(o.PendingSince) ||
		!s.FiredAt.Equal(o.FiredAt) || !s.ResolvedAt.Equal(o.ResolvedAt) || !s.LastNotified.Equal(o.LastNotified) ||
		s.Notifications != o.Notifications || s.Flapping != o.Flapping || !s.FlapSince.Equal(o.FlapSince) || !s.FlapFrom.Equal(o.FlapFrom) ||
		len(s.Spells) != len(o.Spells) || len(s.Blips) != len(o.Blips) {
		return false
	}
	for i := range s.Spells {
		if !s.Spells[i].Equal(o.Spells[i]) {
			return false
		}
	}
	for i := range s.Blips {
		if s.Blips[i] != o.Blips[i] {
			return false
		}
	}
	return true
}
