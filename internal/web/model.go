// Package web is the tower's pages: the public status page (services,
// uptime, day-by-day bars, response-time charts, incidents written for
// people, maintenance notices, SVG badges) and the console for operators
// (hosts, findings with runbooks, alerts with ack and silence, incidents
// with the cross-host timeline and the postmortem). Pages are rendered on
// the server from embedded templates; charts are server-rendered SVG; the
// only script refreshes the status page.
package web

import (
	"context"
	"fmt"
	"time"
)

// Backend is what the pages read and do; the tower implements it.
type Backend interface {
	// Services lists probed services; publicOnly keeps those marked public.
	Services(ctx context.Context, now time.Time, publicOnly bool) ([]Service, error)
	Incidents(ctx context.Context, publicOnly bool) ([]Incident, error)
	Timeline(ctx context.Context, id int64) (Incident, []TimelineEvent, error)
	Postmortem(ctx context.Context, id int64) (string, error)
	Hosts(ctx context.Context, now time.Time) ([]Host, error)
	Alerts(ctx context.Context, now time.Time) ([]Alert, error)
	Maintenance(now time.Time) []Notice
	Ack(ctx context.Context, key, by, comment string) error
	Silence(ctx context.Context, host, key string, d time.Duration, by, comment string) error
}

// Service is one probed service on the status page.
type Service struct {
	Name, Group string
	// Kind is "" for a probed service, "job" for a push monitor (a job
	// that reports in: no uptime bars, no response times).
	Kind      string
	Status    string // up, degraded, down, unknown
	Since     time.Time
	LastCheck time.Time
	Message   string // why it is not up, written for people
	Uptime    map[string]float64
	// Watched is the first result, set only when it is less than 90 days
	// old: the longer spans then cover only what came since.
	Watched time.Time
	Days    []Day
	Latency []Point
	// Recent are the last results, newest first (console only).
	Recent []Check
	// Incident is the open incident that names the service, if one does.
	Incident *ServiceIncident
}

// Check is one probe result.
type Check struct {
	At      time.Time
	Status  string
	Ms      float64
	Message string
}

// Day is one day's bar.
type Day struct {
	Date   time.Time
	Uptime float64 // 0..1, negative when there is no data
	Worst  string
}

// Point is a response-time sample.
type Point struct {
	At time.Time
	Ms float64
}

// Incident is an incident as pages show it.
type Incident struct {
	ID       int64
	Title    string
	Severity string
	// Opened is when the impact began (the first alert went bad).
	Opened, Closed time.Time
	Hosts          []string
	Services       []string
	// Updates are the public timeline, in plain words, newest first: what
	// people wrote (with a Status) and what the probes saw.
	Updates []TimelineEvent
	// Thread is the written incident's thread (0: the tower's incident
	// has none); ID is 0 for a written incident about none of the tower's.
	Thread int64
	// Status is the latest written status: investigating, identified,
	// monitoring, resolved; "" when nobody wrote one.
	Status string
}

// Anchor is the incident's id on the page (and in the feed).
func (in *Incident) Anchor() string {
	if in.ID == 0 {
		return fmt.Sprintf("update-%d", in.Thread)
	}
	return fmt.Sprintf("incident-%d", in.ID)
}

// Open reports whether the incident is not over.
func (in *Incident) Open() bool { return in.Closed.IsZero() }

// ServiceIncident marks a service named by an open incident.
type ServiceIncident struct {
	Anchor, Title, Status string
}

// TimelineEvent is one line of an incident's timeline.
type TimelineEvent struct {
	At   time.Time
	Host string
	Kind string
	Text string
	// Status is a written update's status (investigating, identified,
	// monitoring, resolved); By who wrote it (the console only).
	Status, By string
}

// Host is a watched host in the console.
type Host struct {
	Name     string
	Status   string
	LastSeen time.Time
	Findings []Finding
}

// Finding is an open finding with its runbook.
type Finding struct {
	Severity, Summary, Mode string
	Since                   time.Time
}

// Alert is an alert in the console.
type Alert struct {
	Key, Title, Severity, Status, Suppressed string
	Since                                    time.Time
	AckedBy                                  string
}

// Notice is a maintenance window in force or coming.
type Notice struct {
	Name       string
	Start, End time.Time
}
