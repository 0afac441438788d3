// Package push judges push monitors, the dead-man switches of jobs that
// cannot be probed from outside (a backup, a cron job, a certificate
// renewal): the job reports in at /push/TOKEN (hinomi push wraps a
// command to do it), and a job that did not report in time, reported a
// failure, or started and never ended is down, with the job's own words.
// A schedule is an interval or a cron expression in a time zone, each
// with a grace period, as healthchecks.io has them.
package push

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec is one push monitor as the tower's YAML has it.
type Spec struct {
	Name string `yaml:"name"`
	// Token is the secret part of the URL the job reports to.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// Every is how often the job runs; or Cron, a five-field expression
	// ("0 3 * * *"), in TZ (default UTC).
	Every time.Duration `yaml:"every"`
	Cron  string        `yaml:"cron"`
	TZ    string        `yaml:"tz"`
	// Grace is how late a report may be before the job is down (default
	// 5 minutes).
	Grace time.Duration `yaml:"grace"`
	// MaxRuntime, when set, is how long a job may run between its start
	// and its end report.
	MaxRuntime time.Duration `yaml:"max_runtime"`
	Group      string        `yaml:"group"`
	Public     bool          `yaml:"public"`

	sched cron.Schedule
	loc   *time.Location
}

// DefaultGrace is the grace of a schedule that names none.
const DefaultGrace = 5 * time.Minute

// Validate checks the spec and compiles its schedule.
func (s *Spec) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("push monitor %q: %s", s.Name, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(s.Name) == "" {
		return errors.New("push monitor: name is required")
	}
	switch {
	case s.Token == "":
		return fail("token is required (a long random string: it is the secret in the job's URL)")
	case len(s.Token) < 16:
		return fail("token is %d characters long: use at least 16, it is the only secret of the URL", len(s.Token))
	case strings.ContainsAny(s.Token, "/?#% \t\r\n"):
		return fail("token must not contain / ? # %% or spaces")
	}
	switch {
	case s.Every == 0 && s.Cron == "":
		return fail("give every (an interval such as 24h) or cron (such as \"0 3 * * *\")")
	case s.Every != 0 && s.Cron != "":
		return fail("give every or cron, not both")
	case s.Every < 0 || s.Grace < 0 || s.MaxRuntime < 0:
		return fail("every, grace and max_runtime must not be negative")
	case s.Every != 0 && s.Every < 10*time.Second:
		return fail("every %s is shorter than 10s", s.Every)
	}
	s.loc = time.UTC
	if s.TZ != "" {
		if s.Cron == "" {
			return fail("tz applies to cron only")
		}
		loc, err := time.LoadLocation(s.TZ)
		if err != nil {
			return fail("tz %q: %v", s.TZ, err)
		}
		s.loc = loc
	}
	if s.Cron != "" {
		if c := strings.TrimSpace(s.Cron); strings.HasPrefix(c, "CRON_TZ=") || strings.HasPrefix(c, "TZ=") {
			return fail("cron %q: give the zone in tz, not in the expression", s.Cron)
		}
		sched, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return fail("cron %q: %v", s.Cron, err)
		}
		s.sched = sched
	}
	if s.Grace == 0 {
		s.Grace = DefaultGrace
	}
	return nil
}

// Due is when the next report is expected after last (a report, or when
// watching began).
func (s *Spec) Due(last time.Time) time.Time {
	if s.sched != nil {
		return s.sched.Next(last.In(s.loc))
	}
	return last.Add(s.Every)
}

// Kind is what a report says.
type Kind string

// The reports a job makes.
const (
	Start   Kind = "start"
	Success Kind = "ok"
	Fail    Kind = "fail"
)

// Ping is one report.
type Ping struct {
	At       time.Time     `json:"at"`
	Kind     Kind          `json:"kind"`
	Exit     *int          `json:"exit,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	Message  string        `json:"message,omitempty"`
	// Output is the last lines the job printed (bounded by the handler).
	Output string `json:"output,omitempty"`
	// From is the reporter's address.
	From string `json:"from,omitempty"`
}

// State is what a monitor's reports add up to.
type State struct {
	// Last is the last report of any kind, LastEnd the last success or
	// failure, Started the start not yet followed by an end.
	Last    *Ping `json:"last,omitempty"`
	LastEnd *Ping `json:"last_end,omitempty"`
	Started *Ping `json:"started,omitempty"`
}

// Apply takes one report.
func (st *State) Apply(p Ping) {
	pp := p
	st.Last = &pp
	switch p.Kind {
	case Start:
		st.Started = &pp
	default:
		st.LastEnd = &pp
		st.Started = nil
	}
}

// Verdict is a monitor judged at a time.
type Verdict struct {
	// Down says the job is in trouble; Since when (the report that was
	// due, the failure, the start that ran too long).
	Down  bool
	Since time.Time
	// Reason is plain words for the public page ("did not report in",
	// "job failed"); Detail adds what the job said, for the console and
	// notifications.
	Reason string
	Detail []string
	// Due is when the next report is expected.
	Due time.Time
}

// Judge decides a monitor's state at now; watching is when the tower
// began to watch it (its start or the config's load), the reference for
// a job that never reported.
func Judge(s *Spec, st State, now, watching time.Time) Verdict {
	ref := watching
	if st.LastEnd != nil && st.LastEnd.At.After(ref) {
		ref = st.LastEnd.At
	}
	if st.Started != nil && st.Started.At.After(ref) {
		ref = st.Started.At
	}
	v := Verdict{Due: s.Due(ref)}
	clock := func(t time.Time) string { return t.In(s.location()).Format("2006-01-02 15:04 MST") }
	if st.Started != nil && s.MaxRuntime > 0 && now.Sub(st.Started.At) > s.MaxRuntime {
		return Verdict{Down: true, Since: st.Started.At.Add(s.MaxRuntime), Due: v.Due,
			Reason: "job running too long",
			Detail: []string{fmt.Sprintf("%s started at %s and has not ended after %s; it may run %s.",
				s.Name, clock(st.Started.At), human(now.Sub(st.Started.At)), human(s.MaxRuntime))}}
	}
	if e := st.LastEnd; e != nil && e.Kind == Fail && (st.Started == nil || !st.Started.At.After(e.At)) {
		v.Down, v.Since, v.Reason = true, e.At, "job failed"
		line := fmt.Sprintf("%s reported a failure at %s", s.Name, clock(e.At))
		if e.Exit != nil {
			line += fmt.Sprintf(" with exit status %d", *e.Exit)
		}
		if e.Duration > 0 {
			line += " after running " + human(e.Duration)
		}
		if e.Message != "" {
			line += ": " + e.Message
		}
		v.Detail = append(v.Detail, line+".")
		if e.Output != "" {
			v.Detail = append(v.Detail, "Its last output:")
			v.Detail = append(v.Detail, strings.Split(strings.TrimRight(e.Output, "\n"), "\n")...)
		}
		return v
	}
	if late := v.Due.Add(s.Grace); now.After(late) {
		v.Down, v.Since, v.Reason = true, v.Due, "did not report in"
		last := "it has not reported since hinomi began watching it at " + clock(watching)
		if st.Last != nil {
			last = "its last report was at " + clock(st.Last.At)
		}
		v.Detail = append(v.Detail, fmt.Sprintf("%s was due by %s (grace %s) and is %s late; %s.",
			s.Name, clock(v.Due), human(s.Grace), human(now.Sub(v.Due)), last))
	}
	return v
}

func (s *Spec) location() *time.Location {
	if s.loc != nil {
		return s.loc
	}
	return time.UTC
}

func human(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 24*time.Hour:
		days := d / (24 * time.Hour)
		rest := (d % (24 * time.Hour)).Round(time.Hour)
		if rest == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd %dh", days, rest/time.Hour)
	case d >= time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	case d >= time.Minute:
		return strings.TrimSuffix(d.Round(time.Second).String(), "0s")
	}
	return d.String()
}
