package tower

import (
	"context"
	"errors"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/push"
	"github.com/hinomi/hinomi/internal/wire"
)

// Store is every persistence operation the tower needs, in the tower's
// terms. The tower holds no SQL: an implementation owns its schema, its
// queries and how it makes each method's writes atomic. sqliteStore
// (store_sqlite.go) is the one there is; store_contract_test.go is the
// table of behaviours any implementation must pass.
//
// Writes return once they are durable (the tower acknowledges a batch to
// its agent, which then drops it, only after SaveBatch returned). Each
// write method is one transaction: a batch's records, host and findings
// together; an evaluation's alert states, their events, outbox rows and
// incidents together; a send's outcome and the fallback it queues together.
type Store interface {
	// Close waits for pending writes and closes the store.
	Close() error
	// Queued is how many writes wait their turn (the ingest sheds load
	// above a bound).
	Queued() int
	// Unwritable reports the storage failure the latest writes met and
	// since when; nil when the store can be written.
	Unwritable() (time.Time, error)
	// Check writes something, so that an unwritable store is noticed (and
	// its recovery) when nothing else is written.
	Check(ctx context.Context) error
	// StorageError reports whether err is the storage failing (disk full,
	// I/O error, read-only), as opposed to a bad write.
	StorageError(err error) bool
	// Reason is a storage failure in a few words for people: "disk full".
	Reason(err error) string
	// Prune deletes records received before now-maxAge (and closed outbox
	// rows created then) and, while the store is over maxBytes, the oldest
	// records; zero turns either bound off. It returns the records deleted.
	Prune(ctx context.Context, maxAge time.Duration, maxBytes int64, now time.Time) (int64, error)

	// LoadHosts is every host ever heard from.
	LoadHosts(ctx context.Context) ([]Host, error)
	// LoadOpenFindings is the findings open on every host.
	LoadOpenFindings(ctx context.Context) ([]Finding, error)
	// LoadAlerts is every alert's last saved state.
	LoadAlerts(ctx context.Context) ([]Alert, error)
	// LoadSilences is the silences that end after now.
	LoadSilences(ctx context.Context, now time.Time) ([]Silence, error)
	// LoadOpenIncidents is the incidents not closed.
	LoadOpenIncidents(ctx context.Context) ([]Incident, error)
	// LastIncidentID is the highest incident id saved, 0 if none.
	LastIncidentID(ctx context.Context) (int64, error)

	// SaveBatch stores an agent's batch: each record once (by agent, spool
	// and sequence), the findings records among the new ones applied to
	// the host's findings, and the host's row. It returns what the host
	// has acknowledged and the findings changes made.
	SaveBatch(ctx context.Context, b Batch) (BatchResult, error)
	// RecordsBetween is a host's records of one kind whose own time is
	// within [from, to], oldest first.
	RecordsBetween(ctx context.Context, host, kind string, from, to time.Time) ([]wire.Record, error)
	// FindingsBetween is a host's findings opened or resolved within
	// [from, to].
	FindingsBetween(ctx context.Context, host string, from, to time.Time) ([]FindingSpan, error)

	// SaveAlerts writes an evaluation's changes in one transaction.
	SaveAlerts(ctx context.Context, now time.Time, changes []AlertChange) error
	// SaveAck replaces a saved alert's state (it must exist) and adds an
	// event, together.
	SaveAck(ctx context.Context, a Alert, ev AlertEvent) error
	// IncidentEvents is the events of an incident, oldest first.
	IncidentEvents(ctx context.Context, incident int64) ([]AlertEvent, error)

	// SaveIncident inserts or replaces an incident.
	SaveIncident(ctx context.Context, in Incident) error
	// LoadIncident is one incident; ErrNotFound if there is none.
	LoadIncident(ctx context.Context, id int64) (Incident, error)
	// LoadIncidents is the newest incidents, newest first.
	LoadIncidents(ctx context.Context, limit int) ([]Incident, error)

	// SaveSilence inserts or replaces a silence.
	SaveSilence(ctx context.Context, s Silence) error

	// NextDue is the channel's oldest message due at now whose alert has
	// no earlier message still due on the channel (per alert, in order);
	// ok is false when there is none.
	NextDue(ctx context.Context, channel string, now time.Time) (row OutboxRow, ok bool, err error)
	// DueInGroup is the channel's due, never attempted messages of group,
	// created at or before upTo, other than the row except, oldest first;
	// messages that do not decode are left out.
	DueInGroup(ctx context.Context, channel, group string, except int64, upTo time.Time) ([]OutboxMessage, error)
	// DueAfter is the channel's due messages of the row's alert queued
	// after it, oldest first (Msg nil where it does not decode).
	DueAfter(ctx context.Context, channel string, id int64) ([]OutboxMessage, error)
	// MergeGroup replaces the message of the row into and marks the rows
	// ids merged into it, together.
	MergeGroup(ctx context.Context, into int64, msg notify.Message, ids []int64) error
	// RecordOutbox applies a send's outcome, all ops in one transaction.
	RecordOutbox(ctx context.Context, ops []OutboxOp) error
	// CountDue is how many messages wait in the outbox.
	CountDue(ctx context.Context) (int, error)

	// SaveProbeHistory writes the status page's changed rows together.
	SaveProbeHistory(ctx context.Context, rows []serviceRow) error
	// LoadProbeHistory is every service's row with its days (oldest first)
	// and its latency buckets after latencyAfter (oldest first).
	LoadProbeHistory(ctx context.Context, latencyAfter time.Time) ([]serviceRow, error)
	// PruneProbeHistory deletes days before day, latency buckets at or
	// before bucket and services last probed before last (and their days).
	PruneProbeHistory(ctx context.Context, day, bucket, last time.Time) error

	// SaveIncidentUpdate adds a written incident update and returns it with
	// its ID and Thread: a new thread when Thread and Incident are zero;
	// the thread of Incident when it has one; Thread's, whose Incident and
	// (when u has none) Title it takes, or ErrNotFound.
	SaveIncidentUpdate(ctx context.Context, u IncidentUpdate) (IncidentUpdate, error)
	// LoadIncidentUpdates is the updates of every thread still open (its
	// latest update is not "resolved") or updated at or after since,
	// oldest first.
	LoadIncidentUpdates(ctx context.Context, since time.Time) ([]IncidentUpdate, error)

	// SavePushReport applies a push monitor's report to its stored state,
	// in one transaction (towers sharing the store take reports for one
	// monitor at once), and returns the state it made.
	SavePushReport(ctx context.Context, name string, p push.Ping) (push.State, error)
	// LoadPushStates is every push monitor's stored state, by name.
	LoadPushStates(ctx context.Context) (map[string]push.State, error)
}

// SharedStore is a Store several towers use at once (PostgreSQL). They
// all take ingest and serve the API from it; one at a time, the holder of
// its lease, evaluates and sends.
type SharedStore interface {
	Store
	// Lease takes or renews the lease for holder for d and reports its
	// fencing token and whether holder holds it. NextDue claims rows only
	// under the token of a lease held and unexpired in the store, so a
	// tower that lost its lease cannot send.
	Lease(ctx context.Context, holder string, d time.Duration) (token int64, held bool, err error)
	// Release ends holder's lease, so that another tower takes over at once.
	Release(ctx context.Context, holder string) error
	// LoadAcks is the acknowledgements any tower saved, by alert key.
	LoadAcks(ctx context.Context) (map[string]Ack, error)
}

// ErrNotFound is a Store's answer for a row that does not exist.
var ErrNotFound = errors.New("not found")

// Batch is an agent's batch as the tower stores it.
type Batch struct {
	Agent, Spool, BootID, Version, Addr string
	Interval                            time.Duration
	Dropped, Lost                       uint64
	LostReason                          string
	Records                             []wire.Record
	Received                            time.Time
}

// BatchResult is what storing a batch changed.
type BatchResult struct {
	// Acked is the highest sequence stored of the host's current spool.
	Acked uint64
	// Findings is, per new findings record in order, what it opened and
	// resolved.
	Findings []FindingsChange
}

// FindingsChange is one findings record applied.
type FindingsChange struct {
	Open     []finding.Finding
	Resolved []string
}

// FindingSpan is a finding's life on a host (Resolved zero while open).
type FindingSpan struct {
	Opened, Resolved  time.Time
	Summary, Severity string
}

// AlertChange is one alert's change in an evaluation.
type AlertChange struct {
	Alert    Alert
	Events   []AlertEvent
	Messages []Enqueue
	Incident *Incident // the alert's incident as changed, if it was
}

// AlertEvent is a line of an alert's (and its incident's) history.
type AlertEvent struct {
	At       time.Time
	Key      string
	Host     string
	Incident int64
	Event    string
	Text     string
}

// Enqueue is a message to send to channels, one outbox row each.
type Enqueue struct {
	AlertKey string
	Msg      notify.Message
	Channels []string
	// Fallback is the channels that get the message once if a channel
	// cannot deliver it.
	Fallback []string
	// Group is the grouping key (empty: sent alone); Due when the rows are
	// first due (later than Created while a group gathers).
	Group        string
	Created, Due time.Time
}

// OutboxRow is a message due on a channel.
type OutboxRow struct {
	ID           int64
	Attempts     int
	Msg          notify.Message
	BadMsg       error // the stored message did not decode
	Fallback     []string
	FallbackSent bool
	Group        string
	Created      time.Time
}

// OutboxMessage is another due row of a channel (Msg nil if it does not
// decode).
type OutboxMessage struct {
	ID  int64
	Msg *notify.Message
}

// OutboxOp is one part of a send's outcome: CloseRows, RetryRow or
// QueueFallback.
type OutboxOp interface{ outboxOp() }

// CloseRows closes the rows of one send: the last of IDs gets State
// ("delivered" or "failed") at At; the others (folded into it) are merged
// into it.
type CloseRows struct {
	IDs      []int64
	State    string
	Attempts int
	At       time.Time
	Error    string
}

// RetryRow counts a failed attempt and makes the row due again at Next.
type RetryRow struct {
	ID    int64
	Next  time.Time
	Error string
}

// QueueFallback marks the row's fallback used and queues Msg.
type QueueFallback struct {
	ID  int64
	Msg Enqueue
}

func (CloseRows) outboxOp()     {}
func (RetryRow) outboxOp()      {}
func (QueueFallback) outboxOp() {}

// openStore opens the store the configuration names: SQLite in the data
// directory, or PostgreSQL (migrating its schema first).
func openStore(cfg *Config) (Store, error) {
	if cfg.Store == "" || cfg.Store == "sqlite" {
		return openSQLite(cfg.DataDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return openPostgres(ctx, cfg.Store, cfg.StorePassword)
}
