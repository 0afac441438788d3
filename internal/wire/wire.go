// Package wire is what an agent sends a tower: a batch of sequenced records
// (findings that opened, changed or resolved; log lines that matched a
// signature; the agent's own status) in one JSON envelope. Every record has
// the agent's sequence number, so a tower stores each exactly once however
// often a batch is resent.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// Path is where a tower accepts batches.
const Path = "/api/v1/ingest"

// MaxBody is the largest batch a tower accepts.
const MaxBody = 4 << 20

// MaxRecords is the most records a tower accepts in one batch: a batch is
// one write, and a write holds every other agent's batches back while it
// runs. Agents split what they have into batches of at most this many.
const MaxRecords = 500

// Envelope is one POST.
type Envelope struct {
	Agent string `json:"agent"`
	// Spool identifies the agent's spool; sequence numbers count within
	// it (a reinstalled agent starts a new spool at 1).
	Spool   string    `json:"spool"`
	BootID  string    `json:"boot_id,omitempty"`
	Version string    `json:"version,omitempty"`
	Sent    time.Time `json:"sent"`
	// Interval is how often the agent promises to report.
	Interval time.Duration `json:"interval_ns,omitempty"`
	// Dropped counts records the agent's spool lost to its size bound.
	Dropped uint64 `json:"dropped,omitempty"`
	// Lost counts records the agent could not even spool because writing
	// failed (a full disk), and LostReason says why the last one was
	// lost, as a phrase about the host ("its spool's disk is full").
	// Towers that predate them ignore them; agents that predate them send
	// neither.
	Lost       uint64   `json:"lost,omitempty"`
	LostReason string   `json:"lost_reason,omitempty"`
	Records    []Record `json:"records"`
}

// Record kinds.
const (
	KindFindings = "findings" // the findings that opened, changed or resolved
	KindLog      = "log"      // a log line that matched a signature
	KindStatus   = "status"   // the agent's status: started, cycle took, what it could not see
	// KindLines carries many log lines, shipped to the central log store.
	// Only LinesPath takes it: a tower that predates log shipping answers
	// 404 there and sees none in its ingest.
	KindLines = "lines"
)

// LinesPath is where a tower accepts batches of KindLines records. They
// come from a spool of their own on the agent, so that a flood of log lines
// never delays or pushes out findings, and a log store that cannot take
// them holds back only them.
const LinesPath = "/api/v1/logs/ingest"

// Record is one sequenced item.
type Record struct {
	Seq  uint64          `json:"seq"`
	Kind string          `json:"kind"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// Findings is a KindFindings record. With Full set, Open is every finding
// the host has now and any other open finding the tower holds for it is
// resolved (the agent sends one at start and after a gap).
type Findings struct {
	Full     bool              `json:"full,omitempty"`
	Open     []finding.Finding `json:"open,omitempty"`
	Resolved []string          `json:"resolved,omitempty"`
}

// Log is a KindLog record.
type Log struct {
	Signature string            `json:"signature"`
	Mode      string            `json:"mode"`
	Severity  finding.Severity  `json:"severity"`
	Title     string            `json:"title"`
	Source    string            `json:"source"`
	Line      string            `json:"line"`
	Fields    map[string]string `json:"fields,omitempty"`
	// Previous marks lines of the boot before this one: the host's last
	// words before it went silent.
	Previous bool `json:"previous_boot,omitempty"`
}

// Lines is a KindLines record: the lines an agent read within about a
// second, from any of its sources.
type Lines struct {
	Lines []Line `json:"lines"`
}

// Line is one shipped log line. The short keys keep the spool small: a
// busy host writes a thousand of these a second.
type Line struct {
	Time time.Time `json:"t"`
	// Source is where it was read: "journal", "kmsg", "file:/var/log/syslog",
	// "container:NAME".
	Source string `json:"s"`
	// Unit is the systemd unit, the container or the program.
	Unit string `json:"u,omitempty"`
	// Priority is the syslog severity 0..7, -1 when unknown.
	Priority int    `json:"p"`
	Text     string `json:"m"`
	// Fields carry what matched (signature, mode) and the like.
	Fields map[string]string `json:"f,omitempty"`
}

// Status is a KindStatus record.
type Status struct {
	Event   string        `json:"event"` // started, cycle
	Took    time.Duration `json:"took_ns,omitempty"`
	Blind   []string      `json:"could_not_see,omitempty"`
	Uptime  time.Duration `json:"uptime_ns,omitempty"`
	Message string        `json:"message,omitempty"`
}

// Reply is a tower's answer to a batch.
type Reply struct {
	// Acked is the highest sequence number the tower has stored for the
	// agent: the agent may forget everything up to it.
	Acked uint64 `json:"acked"`
	Error string `json:"error,omitempty"`
}

// Validate checks an envelope a tower received.
func (e *Envelope) Validate() error {
	if e.Agent == "" {
		return errors.New("agent is empty")
	}
	if e.Spool == "" {
		return errors.New("spool is empty")
	}
	var prev uint64
	for i, r := range e.Records {
		if r.Seq == 0 {
			return fmt.Errorf("records[%d]: seq must be > 0", i)
		}
		if r.Seq <= prev {
			return fmt.Errorf("records[%d]: seq %d does not follow %d", i, r.Seq, prev)
		}
		prev = r.Seq
		switch r.Kind {
		case KindFindings, KindLog, KindStatus, KindLines:
		default:
			return fmt.Errorf("records[%d]: unknown kind %q", i, r.Kind)
		}
		if len(r.Data) == 0 || !json.Valid(r.Data) {
			return fmt.Errorf("records[%d]: data is not JSON", i)
		}
	}
	return nil
}
