// Package alerting is the per-signal state machine of hinomi's tower: a
// signal (a host's heartbeat, a finding an agent reported, later a probe)
// is ok, pending (bad, but not for long enough), firing, or resolved. It is
// pure: Step takes the state, the observation and the time, and returns
// the new state and what happened, so the tower persists and notifies, and
// tests drive time by hand.
package alerting

import "time"

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
}

// Rule says how long a signal must be bad before it fires and how often a
// firing one is repeated.
type Rule struct {
	For            time.Duration
	RepeatInterval time.Duration // 0: never repeat
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
)

// Observation is the signal now: bad or not, and since when if bad.
type Observation struct {
	Bad      bool
	BadSince time.Time
}

// Step advances the state machine to now.
func Step(s State, o Observation, now time.Time, r Rule) (State, Event) {
	switch {
	case o.Bad && (s.Status == OK || s.Status == Resolved || s.Status == ""):
		since := o.BadSince
		if since.IsZero() || since.After(now) {
			since = now
		}
		s = State{Status: Pending, BadSince: since, PendingSince: now}
		fallthrough
	case o.Bad && s.Status == Pending:
		if !o.BadSince.IsZero() && o.BadSince.Before(s.BadSince) {
			s.BadSince = o.BadSince
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
		return State{Status: OK}, Cancelled
	case !o.Bad && s.Status == Firing:
		s.Status, s.ResolvedAt = Resolved, now
		return s, Resolve
	}
	return s, None
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
