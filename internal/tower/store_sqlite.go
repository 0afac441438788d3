package tower

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/store"
	"github.com/hinomi/hinomi/internal/wire"
)

// sqliteStore is the Store on the embedded SQLite database: internal/store
// owns the file, the schema and its migrations and the single writer that
// commits writes in groups (each synced before it returns); this file owns
// every query the tower makes.
type sqliteStore struct {
	db *store.Store
}

// openSQLite opens (creating) the SQLite store in dir.
func openSQLite(dir string) (*sqliteStore, error) {
	db, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	return &sqliteStore{db: db}, nil
}

func (s *sqliteStore) Close() error                    { return s.db.Close() }
func (s *sqliteStore) Queued() int                     { return s.db.Queued() }
func (s *sqliteStore) Unwritable() (time.Time, error)  { return s.db.Unwritable() }
func (s *sqliteStore) Check(ctx context.Context) error { return s.db.Check(ctx) }
func (s *sqliteStore) StorageError(err error) bool     { return store.StorageError(err) }
func (s *sqliteStore) Reason(err error) string         { return store.Reason(err) }

func (s *sqliteStore) Prune(ctx context.Context, maxAge time.Duration, maxBytes int64, now time.Time) (int64, error) {
	return s.db.Prune(ctx, store.Retention{MaxAge: maxAge, MaxBytes: maxBytes}, now)
}

func ns(n int64) time.Time { return time.Unix(0, n).UTC() }

func (s *sqliteStore) LoadHosts(ctx context.Context) ([]Host, error) {
	return sqlQuery(ctx, s.db.DB, scanHost, "SELECT "+hostColumns+" FROM hosts")
}

func (s *sqliteStore) LoadOpenFindings(ctx context.Context) ([]Finding, error) {
	return sqlQuery(ctx, s.db.DB, scanOpenFinding, "SELECT host, opened, updated, data FROM findings WHERE state = 'open'")
}

func (s *sqliteStore) LoadAlerts(ctx context.Context) ([]Alert, error) {
	return allJSON[Alert](ctx, s.db.DB, "SELECT state FROM alerts")
}

func (s *sqliteStore) LoadSilences(ctx context.Context, now time.Time) ([]Silence, error) {
	return allJSON[Silence](ctx, s.db.DB, "SELECT data FROM silences WHERE ends > ?", now.UnixNano())
}

func (s *sqliteStore) LoadOpenIncidents(ctx context.Context) ([]Incident, error) {
	return allJSON[Incident](ctx, s.db.DB, "SELECT data FROM incidents WHERE closed = 0")
}

func (s *sqliteStore) LoadIncidents(ctx context.Context, limit int) ([]Incident, error) {
	return allJSON[Incident](ctx, s.db.DB, "SELECT data FROM incidents ORDER BY id DESC LIMIT ?", limit)
}

func (s *sqliteStore) LastIncidentID(ctx context.Context) (int64, error) {
	var id int64
	err := s.db.DB.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM incidents").Scan(&id)
	return id, err
}

func (s *sqliteStore) LoadIncident(ctx context.Context, id int64) (Incident, error) {
	var data []byte
	err := s.db.DB.QueryRowContext(ctx, "SELECT data FROM incidents WHERE id = ?", id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return Incident{}, ErrNotFound
	}
	if err != nil {
		return Incident{}, err
	}
	var in Incident
	err = json.Unmarshal(data, &in)
	return in, err
}

// sqlQuery is every row of a query, scanned.
func sqlQuery[T any](ctx context.Context, db *sql.DB, scan func(rowIter) (T, bool, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collect(rows, scan)
}

// allJSON is every row of a one-column query whose values are JSON
// documents of T; rows that do not decode are skipped.
func allJSON[T any](ctx context.Context, db *sql.DB, query string, args ...any) ([]T, error) {
	return sqlQuery(ctx, db, scanJSON[T], query, args...)
}

func (s *sqliteStore) SaveBatch(ctx context.Context, b Batch) (BatchResult, error) {
	var res BatchResult
	now := b.Received.UnixNano()
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		res = BatchResult{}
		var maxSeq uint64
		for _, r := range b.Records {
			ins, err := tx.Exec(`INSERT OR IGNORE INTO records(agent, spool, seq, kind, time, received, data) VALUES(?,?,?,?,?,?,?)`,
				b.Agent, b.Spool, r.Seq, r.Kind, r.Time.UnixNano(), now, []byte(r.Data))
			if err != nil {
				return err
			}
			maxSeq = max(maxSeq, r.Seq)
			if n, _ := ins.RowsAffected(); n == 0 {
				continue // seen before: already applied
			}
			if r.Kind == wire.KindFindings {
				var f wire.Findings
				if err := json.Unmarshal(r.Data, &f); err != nil {
					continue // kept as a record; nothing to apply
				}
				ch, err := applyFindingsTx(tx, b.Agent, f, now)
				if err != nil {
					return err
				}
				res.Findings = append(res.Findings, ch)
			}
		}
		// The acknowledged sequence only grows within a spool.
		_, err := tx.Exec(`INSERT INTO hosts(name, first_seen, last_seen, boot_id, version, addr, interval_ns, dropped, lost, lost_reason, spool, acked)
			VALUES(?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT(name) DO UPDATE SET last_seen=excluded.last_seen, boot_id=excluded.boot_id, version=excluded.version,
				addr=excluded.addr, interval_ns=excluded.interval_ns, dropped=excluded.dropped, lost=excluded.lost, lost_reason=excluded.lost_reason,
				acked=CASE WHEN hosts.spool = excluded.spool THEN max(hosts.acked, excluded.acked) ELSE excluded.acked END,
				spool=excluded.spool`,
			b.Agent, now, now, b.BootID, b.Version, b.Addr, int64(b.Interval), b.Dropped, b.Lost, b.LostReason, b.Spool, maxSeq)
		if err != nil {
			return err
		}
		return tx.QueryRow("SELECT acked FROM hosts WHERE name = ?", b.Agent).Scan(&res.Acked)
	})
	return res, err
}

// applyFindingsTx writes a findings record into the findings table: a full
// record resolves every open finding it does not name.
func applyFindingsTx(tx *sql.Tx, host string, f wire.Findings, now int64) (FindingsChange, error) {
	open := map[string]bool{}
	for _, fd := range f.Open {
		open[fd.Key] = true
		data, _ := json.Marshal(fd)
		since := now
		if fd.Since != nil {
			since = fd.Since.UnixNano()
		}
		if _, err := tx.Exec(`INSERT INTO findings(host, key, state, severity, mode, summary, since, opened, updated, data)
			VALUES(?,?,'open',?,?,?,?,?,?,?)
			ON CONFLICT(host, key) DO UPDATE SET state='open', severity=excluded.severity, summary=excluded.summary,
				since=excluded.since, updated=excluded.updated, data=excluded.data, resolved=0,
				opened=CASE WHEN findings.state = 'open' THEN findings.opened ELSE excluded.opened END`,
			host, fd.Key, fd.Severity.String(), fd.Mode, fd.Summary, since, now, now, data); err != nil {
			return FindingsChange{}, err
		}
	}
	resolve := append([]string(nil), f.Resolved...)
	if f.Full {
		rows, err := tx.Query("SELECT key FROM findings WHERE host = ? AND state = 'open'", host)
		if err != nil {
			return FindingsChange{}, err
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err == nil && !open[k] {
				resolve = append(resolve, k)
			}
		}
		rows.Close()
	}
	for _, k := range resolve {
		if _, err := tx.Exec("UPDATE findings SET state='resolved', resolved=?, updated=? WHERE host=? AND key=?", now, now, host, k); err != nil {
			return FindingsChange{}, err
		}
	}
	return FindingsChange{Open: f.Open, Resolved: resolve}, nil
}

func (s *sqliteStore) RecordsBetween(ctx context.Context, host, kind string, from, to time.Time) ([]wire.Record, error) {
	return sqlQuery(ctx, s.db.DB, scanRecord(kind), `SELECT seq, time, data FROM records WHERE agent = ? AND kind = ? AND time BETWEEN ? AND ? ORDER BY time`,
		host, kind, from.UnixNano(), to.UnixNano())
}

func (s *sqliteStore) FindingsBetween(ctx context.Context, host string, from, to time.Time) ([]FindingSpan, error) {
	return sqlQuery(ctx, s.db.DB, scanSpan, `SELECT opened, resolved, summary, severity FROM findings WHERE host = ?
		AND ((opened BETWEEN ? AND ?) OR (resolved BETWEEN ? AND ?))`, host, from.UnixNano(), to.UnixNano(), from.UnixNano(), to.UnixNano())
}

func (s *sqliteStore) SaveAlerts(ctx context.Context, now time.Time, changes []AlertChange) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		for _, c := range changes {
			data, _ := json.Marshal(c.Alert)
			if _, err := tx.Exec(`INSERT INTO alerts(key, host, kind, title, severity, status, state, updated) VALUES(?,?,?,?,?,?,?,?)
				ON CONFLICT(key) DO UPDATE SET title=excluded.title, severity=excluded.severity, status=excluded.status, state=excluded.state, updated=excluded.updated`,
				c.Alert.Key, c.Alert.Host, c.Alert.Kind, c.Alert.Title, c.Alert.Severity, string(c.Alert.State.Status), data, now.UnixNano()); err != nil {
				return err
			}
			for _, m := range c.Messages {
				if err := enqueueTx(tx, m); err != nil {
					return err
				}
			}
			for _, ev := range c.Events {
				if err := addEventTx(tx, ev); err != nil {
					return err
				}
			}
			if c.Incident != nil {
				if err := saveIncidentTx(tx, c.Incident); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func addEventTx(tx *sql.Tx, ev AlertEvent) error {
	_, err := tx.Exec("INSERT INTO alert_events(time, key, host, incident, event, text) VALUES(?,?,?,?,?,?)",
		ev.At.UnixNano(), ev.Key, ev.Host, ev.Incident, ev.Event, ev.Text)
	return err
}

// enqueueTx writes one message's outbox rows, one per channel.
func enqueueTx(tx *sql.Tx, m Enqueue) error {
	msg, err := json.Marshal(m.Msg)
	if err != nil {
		return err
	}
	fallback := strings.Join(m.Fallback, ",")
	for _, ch := range m.Channels {
		if _, err := tx.Exec(`INSERT INTO outbox(channel, alert_key, created, message, next_attempt, fallback, group_key) VALUES(?,?,?,?,?,?,?)`,
			ch, m.AlertKey, m.Created.UnixNano(), msg, m.Due.UnixNano(), fallback, m.Group); err != nil {
			return err
		}
	}
	return nil
}

func saveIncidentTx(tx *sql.Tx, in *Incident) error {
	data, _ := json.Marshal(in)
	closed := int64(0)
	if !in.Closed.IsZero() {
		closed = in.Closed.UnixNano()
	}
	_, err := tx.Exec(`INSERT INTO incidents(id, opened, closed, data) VALUES(?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET closed=excluded.closed, data=excluded.data`, in.ID, in.Opened.UnixNano(), closed, data)
	return err
}

func (s *sqliteStore) SaveAck(ctx context.Context, a Alert, ev AlertEvent) error {
	data, _ := json.Marshal(a)
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec("UPDATE alerts SET state = ? WHERE key = ?", data, a.Key); err != nil {
			return err
		}
		return addEventTx(tx, ev)
	})
}

func (s *sqliteStore) IncidentEvents(ctx context.Context, incident int64) ([]AlertEvent, error) {
	return sqlQuery(ctx, s.db.DB, scanEvent(incident), "SELECT time, key, host, event, text FROM alert_events WHERE incident = ? ORDER BY time", incident)
}

func (s *sqliteStore) SaveIncident(ctx context.Context, in Incident) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error { return saveIncidentTx(tx, &in) })
}

func (s *sqliteStore) SaveSilence(ctx context.Context, sl Silence) error {
	data, _ := json.Marshal(sl)
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec("INSERT INTO silences(id, data, ends) VALUES(?,?,?) ON CONFLICT(id) DO UPDATE SET data=excluded.data, ends=excluded.ends",
			sl.ID, data, sl.Ends.UnixNano())
		return err
	})
}

func (s *sqliteStore) NextDue(ctx context.Context, channel string, now time.Time) (OutboxRow, bool, error) {
	var row OutboxRow
	var raw []byte
	var fallback string
	var created int64
	// Per alert, in order: a row waits while an earlier one of its alert
	// is undelivered (retrying), so a RESOLVED never overtakes its FIRING.
	err := s.db.DB.QueryRowContext(ctx, `SELECT o.id, o.attempts, o.message, o.fallback, o.fallback_sent, o.group_key, o.created FROM outbox o
		WHERE o.channel = ? AND o.state = 'due' AND o.next_attempt <= ?
		AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel = o.channel AND p.alert_key = o.alert_key AND p.state = 'due' AND p.id < o.id)
		ORDER BY o.id LIMIT 1`, channel, now.UnixNano()).
		Scan(&row.ID, &row.Attempts, &raw, &fallback, &row.FallbackSent, &row.Group, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return row, false, nil
	}
	if err != nil {
		return row, false, err
	}
	decodeDue(&row, raw, fallback, created)
	return row, true, nil
}

func (s *sqliteStore) DueInGroup(ctx context.Context, channel, group string, except int64, upTo time.Time) ([]OutboxMessage, error) {
	ms, err := s.outboxMessages(ctx, `SELECT id, message FROM outbox WHERE channel = ? AND state = 'due'
		AND group_key = ? AND attempts = 0 AND id != ? AND created <= ? ORDER BY id`, channel, group, except, upTo.UnixNano())
	return slices.DeleteFunc(ms, func(m OutboxMessage) bool { return m.Msg == nil }), err
}

func (s *sqliteStore) DueAfter(ctx context.Context, channel string, id int64) ([]OutboxMessage, error) {
	return s.outboxMessages(ctx, `SELECT id, message FROM outbox WHERE channel = ? AND state = 'due'
		AND alert_key = (SELECT alert_key FROM outbox WHERE id = ?) AND id > ? ORDER BY id`, channel, id, id)
}

func (s *sqliteStore) outboxMessages(ctx context.Context, query string, args ...any) ([]OutboxMessage, error) {
	return sqlQuery(ctx, s.db.DB, scanOutboxMessage, query, args...)
}

func (s *sqliteStore) MergeGroup(ctx context.Context, into int64, msg notify.Message, ids []int64) error {
	merged, _ := json.Marshal(msg)
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec("UPDATE outbox SET message = ? WHERE id = ?", merged, into); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.Exec("UPDATE outbox SET state = 'merged', delivered = ? WHERE id = ?", into, id); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *sqliteStore) RecordOutbox(ctx context.Context, ops []OutboxOp) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		for _, op := range ops {
			if err := outboxOpTx(tx, op); err != nil {
				return err
			}
		}
		return nil
	})
}

func outboxOpTx(tx *sql.Tx, op OutboxOp) error {
	switch op := op.(type) {
	case CloseRows:
		// The rows folded into the send point at the one sent (the last);
		// that one's delivered column holds when it was closed.
		sent := op.IDs[len(op.IDs)-1]
		for _, id := range op.IDs[:len(op.IDs)-1] {
			if _, err := tx.Exec("UPDATE outbox SET state = ?, attempts = ?, delivered = ?, last_error = ? WHERE id = ?",
				"merged", op.Attempts, sent, op.Error, id); err != nil {
				return err
			}
		}
		_, err := tx.Exec("UPDATE outbox SET state = ?, attempts = ?, delivered = ?, last_error = ? WHERE id = ?",
			op.State, op.Attempts, op.At.UnixNano(), op.Error, sent)
		return err
	case RetryRow:
		_, err := tx.Exec("UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?", op.Next.UnixNano(), op.Error, op.ID)
		return err
	case QueueFallback:
		if _, err := tx.Exec("UPDATE outbox SET fallback_sent = 1 WHERE id = ?", op.ID); err != nil {
			return err
		}
		return enqueueTx(tx, op.Msg)
	}
	return errors.New("unknown outbox operation")
}

func (s *sqliteStore) CountDue(ctx context.Context) (int, error) {
	var n int
	err := s.db.DB.QueryRowContext(ctx, "SELECT count(*) FROM outbox WHERE state = 'due'").Scan(&n)
	return n, err
}

func (s *sqliteStore) SaveProbeHistory(ctx context.Context, rows []serviceRow) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		svc, err := tx.Prepare(`INSERT INTO probe_services(name, grp, public, status, since, first, last, message, reason, recent)
			VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET grp=excluded.grp, public=excluded.public,
			status=excluded.status, since=excluded.since, first=excluded.first, last=excluded.last,
			message=excluded.message, reason=excluded.reason, recent=excluded.recent`)
		if err != nil {
			return err
		}
		defer svc.Close()
		day, err := tx.Prepare(`INSERT INTO probe_days(name, day, up, degraded, n, worst) VALUES(?,?,?,?,?,?)
			ON CONFLICT(name, day) DO UPDATE SET up=excluded.up, degraded=excluded.degraded, n=excluded.n, worst=excluded.worst`)
		if err != nil {
			return err
		}
		defer day.Close()
		lat, err := tx.Prepare(`INSERT INTO probe_latency(name, bucket, sum, n) VALUES(?,?,?,?)
			ON CONFLICT(name, bucket) DO UPDATE SET sum=excluded.sum, n=excluded.n`)
		if err != nil {
			return err
		}
		defer lat.Close()
		for _, r := range rows {
			if _, err := svc.Exec(r.name, r.group, r.public, r.status, r.since.UnixNano(), r.first.UnixNano(), r.last.UnixNano(),
				r.message, r.reason, r.recent); err != nil {
				return err
			}
			for _, d := range r.days {
				if _, err := day.Exec(r.name, d.date.Unix(), d.up, d.degraded, d.n, d.worst); err != nil {
					return err
				}
			}
			for _, b := range r.lat {
				if _, err := lat.Exec(r.name, b.start.Unix(), b.sum, b.n); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (s *sqliteStore) LoadProbeHistory(ctx context.Context, latencyAfter time.Time) ([]serviceRow, error) {
	svcs, err := sqlQuery(ctx, s.db.DB, scanService, "SELECT "+serviceColumns+" FROM probe_services")
	if err != nil {
		return nil, err
	}
	days, err := sqlQuery(ctx, s.db.DB, scanDay, "SELECT name, day, up, degraded, n, worst FROM probe_days ORDER BY name, day")
	if err != nil {
		return nil, err
	}
	lat, err := sqlQuery(ctx, s.db.DB, scanLatency, "SELECT name, bucket, sum, n FROM probe_latency WHERE bucket > ? ORDER BY name, bucket", latencyAfter.Unix())
	if err != nil {
		return nil, err
	}
	return joinHistory(svcs, days, lat), nil
}

func (s *sqliteStore) PruneProbeHistory(ctx context.Context, day, bucket, last time.Time) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec("DELETE FROM probe_days WHERE day < ?", day.Unix()); err != nil {
			return err
		}
		if _, err := tx.Exec("DELETE FROM probe_latency WHERE bucket <= ?", bucket.Unix()); err != nil {
			return err
		}
		if _, err := tx.Exec("DELETE FROM probe_services WHERE last < ?", last.UnixNano()); err != nil {
			return err
		}
		_, err := tx.Exec("DELETE FROM probe_days WHERE name NOT IN (SELECT name FROM probe_services)")
		return err
	})
}

var _ Store = (*sqliteStore)(nil)
