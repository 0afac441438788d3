package agent

import (
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/signatures"
)

// DefaultQuiet is how long a log signature must stay quiet before the
// finding its lines raised resolves, when the signature sets no quiet of
// its own.
const DefaultQuiet = 30 * time.Minute

// maxLogIncidents bounds what the log watch remembers: a host that logs
// thousands of distinct distress lines keeps the latest ones.
const maxLogIncidents = 256

// logWatch turns the distress lines the agent reads (kernel, journal,
// files, containers) into findings: signatures.Watch, which the tower's
// syslog receiver uses too.
type logWatch struct{ w *signatures.Watch }

func newLogWatch() *logWatch {
	return &logWatch{w: signatures.NewWatch(maxLogIncidents, DefaultQuiet)}
}

// add takes one matched line as it arrives.
func (l *logWatch) add(ev signatures.Event, now time.Time) { l.w.Add(ev, now) }

// findings are the open log findings at now.
func (l *logWatch) findings(host string, now time.Time) []finding.Finding {
	return l.w.Findings(host, now)
}
