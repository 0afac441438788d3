package tower

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/wire"
)

// pgStore is the Store on PostgreSQL, which several towers share: each
// write method is one transaction; readers and writers use one pool.
// Times are Unix nanoseconds as in the SQLite store, so that the two hold
// the same values and `tower migrate` copies them as they are.
type pgStore struct {
	pool *pgxpool.Pool
	// fence is the lease this tower holds (nil: none), under which alone
	// NextDue claims rows.
	fence atomic.Pointer[pgFence]
	// writing counts the writes in progress (Queued).
	writing atomic.Int64

	healthMu  sync.Mutex
	failErr   error
	failSince time.Time
}

// pgMigrations bring a database from version i to i+1 (table
// hinomi_schema), each in one transaction, under an advisory lock so that
// towers starting together migrate one at a time. Append to the list;
// never edit an entry that has shipped.
var pgMigrations = []string{
	// 1: what the SQLite store holds after its migration 3.
	`CREATE TABLE records (
		agent TEXT NOT NULL, spool TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL,
		time BIGINT NOT NULL, received BIGINT NOT NULL, data BYTEA NOT NULL,
		PRIMARY KEY (agent, spool, seq));
	CREATE INDEX records_received ON records(received);
	CREATE INDEX records_agent_kind_time ON records(agent, kind, time);
	CREATE TABLE hosts (
		name TEXT PRIMARY KEY, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL,
		boot_id TEXT NOT NULL DEFAULT '', version TEXT NOT NULL DEFAULT '', addr TEXT NOT NULL DEFAULT '',
		interval_ns BIGINT NOT NULL DEFAULT 0, dropped BIGINT NOT NULL DEFAULT 0,
		lost BIGINT NOT NULL DEFAULT 0, lost_reason TEXT NOT NULL DEFAULT '',
		spool TEXT NOT NULL DEFAULT '', acked BIGINT NOT NULL DEFAULT 0);
	CREATE TABLE findings (
		host TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, severity TEXT NOT NULL,
		mode TEXT NOT NULL, summary TEXT NOT NULL, since BIGINT NOT NULL, opened BIGINT NOT NULL,
		updated BIGINT NOT NULL, resolved BIGINT NOT NULL DEFAULT 0, data BYTEA NOT NULL,
		PRIMARY KEY (host, key));
	CREATE TABLE alerts (
		key TEXT PRIMARY KEY, host TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
		severity TEXT NOT NULL, status TEXT NOT NULL, state BYTEA NOT NULL, updated BIGINT NOT NULL);
	CREATE TABLE outbox (
		id BIGSERIAL PRIMARY KEY, channel TEXT NOT NULL, alert_key TEXT NOT NULL,
		created BIGINT NOT NULL, message BYTEA NOT NULL, state TEXT NOT NULL DEFAULT 'due',
		attempts INTEGER NOT NULL DEFAULT 0, next_attempt BIGINT NOT NULL, last_error TEXT NOT NULL DEFAULT '',
		delivered BIGINT NOT NULL DEFAULT 0, fallback TEXT NOT NULL DEFAULT '', fallback_sent BOOLEAN NOT NULL DEFAULT false,
		group_key TEXT NOT NULL DEFAULT '');
	CREATE INDEX outbox_due ON outbox(channel, state, next_attempt, id);
	CREATE INDEX outbox_alert ON outbox(channel, alert_key, state, id);
	CREATE TABLE silences (id TEXT PRIMARY KEY, data BYTEA NOT NULL, ends BIGINT NOT NULL);
	CREATE TABLE incidents (id BIGINT PRIMARY KEY, opened BIGINT NOT NULL, closed BIGINT NOT NULL DEFAULT 0, data BYTEA NOT NULL);
	CREATE TABLE alert_events (time BIGINT NOT NULL, key TEXT NOT NULL, host TEXT NOT NULL,
		incident BIGINT NOT NULL DEFAULT 0, event TEXT NOT NULL, text TEXT NOT NULL);
	CREATE INDEX alert_events_incident ON alert_events(incident, time);
	CREATE TABLE probe_services (
		name TEXT PRIMARY KEY, grp TEXT NOT NULL, public BOOLEAN NOT NULL, status TEXT NOT NULL,
		since BIGINT NOT NULL, first BIGINT NOT NULL, last BIGINT NOT NULL,
		message TEXT NOT NULL, reason TEXT NOT NULL, recent BYTEA NOT NULL);
	CREATE TABLE probe_days (
		name TEXT NOT NULL, day BIGINT NOT NULL, up INTEGER NOT NULL, degraded INTEGER NOT NULL,
		n INTEGER NOT NULL, worst TEXT NOT NULL, PRIMARY KEY (name, day));
	CREATE INDEX probe_days_day ON probe_days(day);
	CREATE TABLE probe_latency (
		name TEXT NOT NULL, bucket BIGINT NOT NULL, sum DOUBLE PRECISION NOT NULL, n INTEGER NOT NULL,
		PRIMARY KEY (name, bucket));
	CREATE INDEX probe_latency_bucket ON probe_latency(bucket);
	CREATE TABLE write_check (id INTEGER PRIMARY KEY CHECK (id = 1), at BIGINT NOT NULL);`,
	// 2: the leader's lease and its fencing token; which lease's holder
	// claimed an outbox row, and when (database time, ns); the
	// acknowledgements any tower saved, for the leader to read.
	`CREATE TABLE tower_lease (id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL,
		token BIGINT NOT NULL, expires TIMESTAMPTZ NOT NULL);
	ALTER TABLE outbox ADD COLUMN claim_token BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE outbox ADD COLUMN claimed_at BIGINT NOT NULL DEFAULT 0;
	CREATE TABLE acks (key TEXT PRIMARY KEY, at BIGINT NOT NULL, data BYTEA NOT NULL);`,
	// 3: the incident updates people write (SQLite's migration 4).
	`CREATE TABLE incident_updates (
		id BIGSERIAL PRIMARY KEY, thread BIGINT NOT NULL, incident BIGINT NOT NULL DEFAULT 0,
		at BIGINT NOT NULL, status TEXT NOT NULL, title TEXT NOT NULL, message TEXT NOT NULL,
		services TEXT NOT NULL, author TEXT NOT NULL);
	CREATE INDEX incident_updates_thread ON incident_updates(thread, id);
	CREATE INDEX incident_updates_incident ON incident_updates(incident);`,
	// 4: the push monitors' states (SQLite's migration 5).
	`CREATE TABLE push_states (name TEXT PRIMARY KEY, at BIGINT NOT NULL, data BYTEA NOT NULL);`,
}

// pgMigrateLock is the advisory lock key towers migrate under ("hinomi" in
// ASCII), so that two starting together do not both migrate.
const pgMigrateLock = 0x68696e6f6d69

// openPostgres connects to url (password, when not empty, replacing the
// URL's) and brings the schema to this build's version.
func openPostgres(ctx context.Context, url, password string) (*pgStore, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if password != "" {
		cfg.ConnConfig.Password = password
	}
	// Ingest, the dispatcher's channels, the engine and the lease each
	// want a connection at once; pgxpool's default (4 on small machines)
	// makes the lease wait behind ingest. pool_max_conns in the URL wins.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 20
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &pgStore{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// pgSchemaVersion is the schema version this build writes.
func pgSchemaVersion() int { return len(pgMigrations) }

// migrate brings the schema to pgSchemaVersion under the advisory lock,
// and refuses a database written by a newer build.
func (s *pgStore) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("store: connecting to PostgreSQL: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(pgMigrateLock)); err != nil {
		return fmt.Errorf("store: taking the migration lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", int64(pgMigrateLock)) }()
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS hinomi_schema (version INTEGER NOT NULL)"); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var v int
	err = conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM hinomi_schema").Scan(&v)
	if err != nil {
		return fmt.Errorf("store: reading the schema version: %w", err)
	}
	if v > len(pgMigrations) {
		return fmt.Errorf("the PostgreSQL database has schema version %d, newer than this hinomi knows (%d): run the hinomi that wrote it, or a newer one", v, len(pgMigrations))
	}
	for ; v < len(pgMigrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, pgMigrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "DELETE FROM hinomi_schema; INSERT INTO hinomi_schema(version) VALUES ("+fmt.Sprint(v+1)+")")
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migrating the schema to version %d: %w", v+1, err)
		}
	}
	return nil
}

func (s *pgStore) Close() error {
	s.pool.Close()
	return nil
}

func (s *pgStore) Queued() int { return int(s.writing.Load()) }

func (s *pgStore) Unwritable() (time.Time, error) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	return s.failSince, s.failErr
}

// write runs fn in one transaction and notes whether the database could
// be reached.
func (s *pgStore) write(ctx context.Context, fn func(pgx.Tx) error) error {
	s.writing.Add(1)
	defer s.writing.Add(-1)
	err := pgx.BeginFunc(ctx, s.pool, fn)
	s.noteHealth(err)
	return err
}

// noteHealth notes whether a write reached the database.
func (s *pgStore) noteHealth(err error) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	switch {
	case err == nil || errors.Is(err, pgx.ErrNoRows):
		s.failErr, s.failSince = nil, time.Time{}
	case s.StorageError(err):
		if s.failErr == nil {
			s.failSince = time.Now()
		}
		s.failErr = err
	}
}

func (s *pgStore) Check(ctx context.Context) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO write_check(id, at) VALUES(1, $1) ON CONFLICT(id) DO UPDATE SET at = excluded.at", time.Now().UnixNano())
		return err
	})
}

// StorageError: the database cannot be reached or cannot write (a
// connection refused or lost, the server shutting down, its disk full, a
// read-only standby), as opposed to a statement it refused.
func (s *pgStore) StorageError(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "57P"),
			strings.HasPrefix(pe.Code, "58"), pe.Code == "25006", pe.Code == "XX001", pe.Code == "XX002":
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	// A connection cut in the middle of a pipeline ends in an unexpected
	// EOF: whether its transaction committed is unknown, and a batch
	// written again is written once (records by sequence, findings only
	// with a new record).
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "connection refused")
}

func (s *pgStore) Reason(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "53100":
			return "PostgreSQL's disk full"
		case pe.Code == "25006":
			return "PostgreSQL read-only"
		case strings.HasPrefix(pe.Code, "57P"):
			return "PostgreSQL shutting down"
		}
		return "PostgreSQL: " + pe.Message
	}
	if s.StorageError(err) {
		return "PostgreSQL unreachable"
	}
	return err.Error()
}

func (s *pgStore) Prune(ctx context.Context, maxAge time.Duration, maxBytes int64, now time.Time) (int64, error) {
	var deleted int64
	if maxAge > 0 {
		cut := now.Add(-maxAge).UnixNano()
		err := s.write(ctx, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, "DELETE FROM records WHERE received < $1", cut)
			if err != nil {
				return err
			}
			deleted = tag.RowsAffected()
			_, err = tx.Exec(ctx, "DELETE FROM outbox WHERE state IN ('delivered','failed') AND created < $1", cut)
			return err
		})
		if err != nil {
			return deleted, err
		}
	}
	for maxBytes > 0 {
		// The records' own size: the database's would count what other
		// towers' tables and PostgreSQL itself keep.
		var size int64
		if err := s.pool.QueryRow(ctx, "SELECT coalesce(sum(octet_length(data) + 64), 0)::bigint FROM records").Scan(&size); err != nil || size <= maxBytes {
			return deleted, err
		}
		var n int64
		err := s.write(ctx, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `DELETE FROM records WHERE (agent, spool, seq) IN (SELECT agent, spool, seq FROM records ORDER BY received LIMIT 200)`)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return deleted, err
		}
		deleted += n
		if n == 0 {
			return deleted, nil
		}
	}
	return deleted, nil
}

func (s *pgStore) LoadHosts(ctx context.Context) ([]Host, error) {
	return pgQuery(ctx, s, scanHost, "SELECT "+hostColumns+" FROM hosts")
}

func (s *pgStore) LoadOpenFindings(ctx context.Context) ([]Finding, error) {
	return pgQuery(ctx, s, scanOpenFinding, "SELECT host, opened, updated, data FROM findings WHERE state = 'open'")
}

// pgQuery is every row of a query, scanned.
func pgQuery[T any](ctx context.Context, s *pgStore, scan func(rowIter) (T, bool, error), query string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collect(rows, scan)
}

// pgJSON is every row of a one-column query whose values are JSON
// documents of T; rows that do not decode are skipped.
func pgJSON[T any](ctx context.Context, s *pgStore, query string, args ...any) ([]T, error) {
	return pgQuery(ctx, s, scanJSON[T], query, args...)
}

func (s *pgStore) LoadAlerts(ctx context.Context) ([]Alert, error) {
	return pgJSON[Alert](ctx, s, "SELECT state FROM alerts")
}

func (s *pgStore) LoadSilences(ctx context.Context, now time.Time) ([]Silence, error) {
	return pgJSON[Silence](ctx, s, "SELECT data FROM silences WHERE ends > $1", now.UnixNano())
}

func (s *pgStore) LoadOpenIncidents(ctx context.Context) ([]Incident, error) {
	return pgJSON[Incident](ctx, s, "SELECT data FROM incidents WHERE closed = 0")
}

func (s *pgStore) LoadIncidents(ctx context.Context, limit int) ([]Incident, error) {
	return pgJSON[Incident](ctx, s, "SELECT data FROM incidents ORDER BY id DESC LIMIT $1", limit)
}

func (s *pgStore) LastIncidentID(ctx context.Context) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM incidents").Scan(&id)
	return id, err
}

func (s *pgStore) LoadIncident(ctx context.Context, id int64) (Incident, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, "SELECT data FROM incidents WHERE id = $1", id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return Incident{}, ErrNotFound
	}
	if err != nil {
		return Incident{}, err
	}
	var in Incident
	err = json.Unmarshal(data, &in)
	return in, err
}

// SaveBatch writes a batch in one round trip: its statements go to
// PostgreSQL as one pipeline, which runs as one implicit transaction
// (committed, and flushed to disk, before the answer comes back). A
// batch took three round trips and more before (begin, a statement per
// record and per finding, the host, commit); on a busy machine each is a
// wait for the tower and the server to be scheduled, and those waits made
// ingest's tail (p99 53-420 ms against SQLite's 10-14 ms, see
// docs/benchmarks.md). A findings record is applied only if its record
// was new, in the same statement that inserts it.
func (s *pgStore) SaveBatch(ctx context.Context, b Batch) (BatchResult, error) {
	now := b.Received.UnixNano()
	var batch pgx.Batch
	var maxSeq uint64
	findings := make([]*wire.Findings, len(b.Records))
	for i, r := range b.Records {
		maxSeq = max(maxSeq, r.Seq)
		if r.Kind == wire.KindFindings {
			var f wire.Findings
			if json.Unmarshal(r.Data, &f) == nil {
				if !pgPipelinable(f) {
					return s.saveBatchInTx(ctx, b)
				}
				findings[i] = &f
				q, args := pgFindingsRecord(b.Agent, b.Spool, r, f, now)
				batch.Queue(q, args...)
				continue
			}
		}
		batch.Queue(`INSERT INTO records(agent, spool, seq, kind, time, received, data) VALUES($1,$2,$3,$4,$5,$6,$7)
			ON CONFLICT DO NOTHING`, b.Agent, b.Spool, int64(r.Seq), r.Kind, r.Time.UnixNano(), now, []byte(r.Data))
	}
	batch.Queue(pgHostUpsert, b.Agent, now, now, b.BootID, b.Version, b.Addr, int64(b.Interval), int64(b.Dropped), int64(b.Lost), b.LostReason, b.Spool, int64(maxSeq))
	s.writing.Add(1)
	defer s.writing.Add(-1)
	var res BatchResult
	br := s.pool.SendBatch(ctx, &batch)
	err := func() error {
		for i := range b.Records {
			f := findings[i]
			if f == nil {
				if _, err := br.Exec(); err != nil {
					return err
				}
				continue
			}
			var inserted int64
			var fullResolved []string
			if err := br.QueryRow().Scan(&inserted, &fullResolved); err != nil {
				return err
			}
			if inserted == 0 {
				continue // seen before: already applied
			}
			resolve := append([]string(nil), f.Resolved...)
			slices.Sort(fullResolved)
			for _, k := range fullResolved {
				if !slices.Contains(f.Resolved, k) {
					resolve = append(resolve, k)
				}
			}
			res.Findings = append(res.Findings, FindingsChange{Open: f.Open, Resolved: resolve})
		}
		var acked int64
		if err := br.QueryRow().Scan(&acked); err != nil {
			return err
		}
		res.Acked = uint64(acked)
		return nil
	}()
	// Close reads to the end of the pipeline: the commit's answer.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	s.noteHealth(err)
	if err != nil {
		return BatchResult{}, err
	}
	return res, nil
}

// pgHostUpsert writes a batch's host row and returns its acknowledged
// sequence, which only grows within a spool.
const pgHostUpsert = `INSERT INTO hosts(name, first_seen, last_seen, boot_id, version, addr, interval_ns, dropped, lost, lost_reason, spool, acked)
	VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
	ON CONFLICT(name) DO UPDATE SET last_seen=excluded.last_seen, boot_id=excluded.boot_id, version=excluded.version,
		addr=excluded.addr, interval_ns=excluded.interval_ns, dropped=excluded.dropped, lost=excluded.lost, lost_reason=excluded.lost_reason,
		acked=CASE WHEN hosts.spool = excluded.spool THEN greatest(hosts.acked, excluded.acked) ELSE excluded.acked END,
		spool=excluded.spool
	RETURNING acked`

// pgPipelinable reports whether a findings record can be applied in one
// statement: no key opened twice, none both opened and resolved (the
// statement's parts see the same snapshot; the transaction of one
// statement per finding applies those in order).
func pgPipelinable(f wire.Findings) bool {
	open := make(map[string]bool, len(f.Open))
	for _, fd := range f.Open {
		if open[fd.Key] {
			return false
		}
		open[fd.Key] = true
	}
	for _, k := range f.Resolved {
		if open[k] {
			return false
		}
	}
	return true
}

// pgFindingsRecord is the statement that inserts a findings record and,
// only if it was new, opens its findings and resolves those it resolves
// (a full record: every open finding it does not name). Each part of the
// statement runs whether or not the query reads it. It answers
// whether the record was new and which findings the full record resolved.
func pgFindingsRecord(agent, spool string, r wire.Record, f wire.Findings, now int64) (string, []any) {
	keys, sevs, modes, sums := make([]string, 0, len(f.Open)), make([]string, 0, len(f.Open)), make([]string, 0, len(f.Open)), make([]string, 0, len(f.Open))
	sinces, datas := make([]int64, 0, len(f.Open)), make([][]byte, 0, len(f.Open))
	for _, fd := range f.Open {
		data, _ := json.Marshal(fd)
		since := now
		if fd.Since != nil {
			since = fd.Since.UnixNano()
		}
		keys, sevs, modes, sums = append(keys, fd.Key), append(sevs, fd.Severity.String()), append(modes, fd.Mode), append(sums, fd.Summary)
		sinces, datas = append(sinces, since), append(datas, data)
	}
	resolved := append([]string{}, f.Resolved...)
	return `WITH rec AS (
			INSERT INTO records(agent, spool, seq, kind, time, received, data) VALUES($1,$2,$3,$4,$5,$6,$7)
			ON CONFLICT DO NOTHING RETURNING 1
		), opened AS (
			INSERT INTO findings(host, key, state, severity, mode, summary, since, opened, updated, data)
			SELECT $1, o.key, 'open', o.severity, o.mode, o.summary, o.since, $6, $6, o.data
			FROM rec, unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bytea[]) AS o(key, severity, mode, summary, since, data)
			ON CONFLICT(host, key) DO UPDATE SET state='open', severity=excluded.severity, summary=excluded.summary,
				since=excluded.since, updated=excluded.updated, data=excluded.data, resolved=0,
				opened=CASE WHEN findings.state = 'open' THEN findings.opened ELSE excluded.opened END
		), closed AS (
			UPDATE findings SET state='resolved', resolved=$6, updated=$6
			WHERE host = $1 AND EXISTS (SELECT 1 FROM rec)
				AND (key = ANY($14::text[]) OR ($15 AND state = 'open' AND NOT key = ANY($8::text[])))
			RETURNING key
		)
		SELECT (SELECT count(*) FROM rec),
			coalesce((SELECT array_agg(key) FROM closed WHERE NOT key = ANY($14::text[])), '{}'::text[])`,
		[]any{agent, spool, int64(r.Seq), r.Kind, r.Time.UnixNano(), now, []byte(r.Data), keys, sevs, modes, sums, sinces, datas, resolved, f.Full}
}

// saveBatchInTx writes a batch one statement at a time in a transaction:
// the way for findings records pgPipelinable refuses.
func (s *pgStore) saveBatchInTx(ctx context.Context, b Batch) (BatchResult, error) {
	var res BatchResult
	now := b.Received.UnixNano()
	err := s.write(ctx, func(tx pgx.Tx) error {
		res = BatchResult{}
		var maxSeq uint64
		for _, r := range b.Records {
			tag, err := tx.Exec(ctx, `INSERT INTO records(agent, spool, seq, kind, time, received, data) VALUES($1,$2,$3,$4,$5,$6,$7)
				ON CONFLICT DO NOTHING`, b.Agent, b.Spool, int64(r.Seq), r.Kind, r.Time.UnixNano(), now, []byte(r.Data))
			if err != nil {
				return err
			}
			maxSeq = max(maxSeq, r.Seq)
			if tag.RowsAffected() == 0 {
				continue // seen before: already applied
			}
			if r.Kind == wire.KindFindings {
				var f wire.Findings
				if err := json.Unmarshal(r.Data, &f); err != nil {
					continue // kept as a record; nothing to apply
				}
				ch, err := pgApplyFindings(ctx, tx, b.Agent, f, now)
				if err != nil {
					return err
				}
				res.Findings = append(res.Findings, ch)
			}
		}
		// The acknowledged sequence only grows within a spool.
		var acked int64
		err := tx.QueryRow(ctx, `INSERT INTO hosts(name, first_seen, last_seen, boot_id, version, addr, interval_ns, dropped, lost, lost_reason, spool, acked)
			VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
			ON CONFLICT(name) DO UPDATE SET last_seen=excluded.last_seen, boot_id=excluded.boot_id, version=excluded.version,
				addr=excluded.addr, interval_ns=excluded.interval_ns, dropped=excluded.dropped, lost=excluded.lost, lost_reason=excluded.lost_reason,
				acked=CASE WHEN hosts.spool = excluded.spool THEN greatest(hosts.acked, excluded.acked) ELSE excluded.acked END,
				spool=excluded.spool
			RETURNING acked`,
			b.Agent, now, now, b.BootID, b.Version, b.Addr, int64(b.Interval), int64(b.Dropped), int64(b.Lost), b.LostReason, b.Spool, int64(maxSeq)).Scan(&acked)
		res.Acked = uint64(acked)
		return err
	})
	return res, err
}

// pgApplyFindings writes a findings record into the findings table: a full
// record resolves every open finding it does not name.
func pgApplyFindings(ctx context.Context, tx pgx.Tx, host string, f wire.Findings, now int64) (FindingsChange, error) {
	open := map[string]bool{}
	for _, fd := range f.Open {
		open[fd.Key] = true
		data, _ := json.Marshal(fd)
		since := now
		if fd.Since != nil {
			since = fd.Since.UnixNano()
		}
		if _, err := tx.Exec(ctx, `INSERT INTO findings(host, key, state, severity, mode, summary, since, opened, updated, data)
			VALUES($1,$2,'open',$3,$4,$5,$6,$7,$8,$9)
			ON CONFLICT(host, key) DO UPDATE SET state='open', severity=excluded.severity, summary=excluded.summary,
				since=excluded.since, updated=excluded.updated, data=excluded.data, resolved=0,
				opened=CASE WHEN findings.state = 'open' THEN findings.opened ELSE excluded.opened END`,
			host, fd.Key, fd.Severity.String(), fd.Mode, fd.Summary, since, now, now, data); err != nil {
			return FindingsChange{}, err
		}
	}
	resolve := append([]string(nil), f.Resolved...)
	if f.Full {
		rows, err := tx.Query(ctx, "SELECT key FROM findings WHERE host = $1 AND state = 'open' ORDER BY key", host)
		if err != nil {
			return FindingsChange{}, err
		}
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return FindingsChange{}, err
		}
		for _, k := range keys {
			if !open[k] {
				resolve = append(resolve, k)
			}
		}
	}
	for _, k := range resolve {
		if _, err := tx.Exec(ctx, "UPDATE findings SET state='resolved', resolved=$1, updated=$2 WHERE host=$3 AND key=$4", now, now, host, k); err != nil {
			return FindingsChange{}, err
		}
	}
	return FindingsChange{Open: f.Open, Resolved: resolve}, nil
}

func (s *pgStore) RecordsBetween(ctx context.Context, host, kind string, from, to time.Time) ([]wire.Record, error) {
	return pgQuery(ctx, s, scanRecord(kind), `SELECT seq, time, data FROM records WHERE agent = $1 AND kind = $2 AND time BETWEEN $3 AND $4 ORDER BY time`,
		host, kind, from.UnixNano(), to.UnixNano())
}

func (s *pgStore) FindingsBetween(ctx context.Context, host string, from, to time.Time) ([]FindingSpan, error) {
	return pgQuery(ctx, s, scanSpan, `SELECT opened, resolved, summary, severity FROM findings WHERE host = $1
		AND ((opened BETWEEN $2 AND $3) OR (resolved BETWEEN $2 AND $3))`, host, from.UnixNano(), to.UnixNano())
}

func (s *pgStore) SaveAlerts(ctx context.Context, now time.Time, changes []AlertChange) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		for _, c := range changes {
			data, _ := json.Marshal(c.Alert)
			if _, err := tx.Exec(ctx, `INSERT INTO alerts(key, host, kind, title, severity, status, state, updated) VALUES($1,$2,$3,$4,$5,$6,$7,$8)
				ON CONFLICT(key) DO UPDATE SET title=excluded.title, severity=excluded.severity, status=excluded.status, state=excluded.state, updated=excluded.updated`,
				c.Alert.Key, c.Alert.Host, c.Alert.Kind, c.Alert.Title, c.Alert.Severity, string(c.Alert.State.Status), data, now.UnixNano()); err != nil {
				return err
			}
			for _, m := range c.Messages {
				if err := pgEnqueue(ctx, tx, m); err != nil {
					return err
				}
			}
			for _, ev := range c.Events {
				if err := pgAddEvent(ctx, tx, ev); err != nil {
					return err
				}
			}
			if c.Incident != nil {
				if err := pgSaveIncident(ctx, tx, c.Incident); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func pgAddEvent(ctx context.Context, tx pgx.Tx, ev AlertEvent) error {
	_, err := tx.Exec(ctx, "INSERT INTO alert_events(time, key, host, incident, event, text) VALUES($1,$2,$3,$4,$5,$6)",
		ev.At.UnixNano(), ev.Key, ev.Host, ev.Incident, ev.Event, ev.Text)
	return err
}

// pgEnqueue writes one message's outbox rows, one per channel.
func pgEnqueue(ctx context.Context, tx pgx.Tx, m Enqueue) error {
	msg, err := json.Marshal(m.Msg)
	if err != nil {
		return err
	}
	fallback := strings.Join(m.Fallback, ",")
	for _, ch := range m.Channels {
		if _, err := tx.Exec(ctx, `INSERT INTO outbox(channel, alert_key, created, message, next_attempt, fallback, group_key) VALUES($1,$2,$3,$4,$5,$6,$7)`,
			ch, m.AlertKey, m.Created.UnixNano(), msg, m.Due.UnixNano(), fallback, m.Group); err != nil {
			return err
		}
	}
	return nil
}

func pgSaveIncident(ctx context.Context, tx pgx.Tx, in *Incident) error {
	data, _ := json.Marshal(in)
	closed := int64(0)
	if !in.Closed.IsZero() {
		closed = in.Closed.UnixNano()
	}
	_, err := tx.Exec(ctx, `INSERT INTO incidents(id, opened, closed, data) VALUES($1,$2,$3,$4)
		ON CONFLICT(id) DO UPDATE SET closed=excluded.closed, data=excluded.data`, in.ID, in.Opened.UnixNano(), closed, data)
	return err
}

// SaveAck sets the acknowledgement alone on the saved alert: the tower
// that acknowledges may hold an older copy of the rest, which the leader
// writes. The acks table is what the leader reads it from.
func (s *pgStore) SaveAck(ctx context.Context, a Alert, ev AlertEvent) error {
	ack, _ := json.Marshal(a.Ack)
	return s.write(ctx, func(tx pgx.Tx) error {
		var raw []byte
		err := tx.QueryRow(ctx, "SELECT state FROM alerts WHERE key = $1 FOR UPDATE", a.Key).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // like SQLite's UPDATE of no row
		}
		if err != nil {
			return err
		}
		var saved Alert
		if err := json.Unmarshal(raw, &saved); err != nil {
			saved = a
		}
		saved.Ack = a.Ack
		data, _ := json.Marshal(saved)
		if _, err := tx.Exec(ctx, "UPDATE alerts SET state = $1 WHERE key = $2", data, a.Key); err != nil {
			return err
		}
		if a.Ack != nil {
			if _, err := tx.Exec(ctx, "INSERT INTO acks(key, at, data) VALUES($1,$2,$3) ON CONFLICT(key) DO UPDATE SET at=excluded.at, data=excluded.data",
				a.Key, a.Ack.At.UnixNano(), ack); err != nil {
				return err
			}
		}
		return pgAddEvent(ctx, tx, ev)
	})
}

// pgFence is a lease held: its holder and fencing token.
type pgFence struct {
	holder string
	token  int64
}

// dbNow is the database's clock in Unix ns: claims are compared across
// towers, so they are dated by one clock.
const dbNow = "(extract(epoch from clock_timestamp()) * 1e9)::bigint"

func (s *pgStore) Lease(ctx context.Context, holder string, d time.Duration) (int64, bool, error) {
	var token int64
	// Renewed by its holder while unexpired (same token); taken by anyone
	// once expired (the token grows, so the old holder's claims fail).
	err := s.pool.QueryRow(ctx, `INSERT INTO tower_lease(id, holder, token, expires) VALUES(1, $1, 1, clock_timestamp() + $2 * interval '1 microsecond')
		ON CONFLICT(id) DO UPDATE SET holder = excluded.holder, expires = excluded.expires,
			token = CASE WHEN tower_lease.holder = excluded.holder AND tower_lease.expires > clock_timestamp() THEN tower_lease.token ELSE tower_lease.token + 1 END
		WHERE tower_lease.holder = excluded.holder OR tower_lease.expires <= clock_timestamp()
		RETURNING token`, holder, d.Microseconds()).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		s.fence.Store(nil)
		return 0, false, nil
	}
	if err != nil {
		s.fence.Store(nil)
		return 0, false, err
	}
	s.fence.Store(&pgFence{holder: holder, token: token})
	return token, true, nil
}

func (s *pgStore) Release(ctx context.Context, holder string) error {
	s.fence.Store(nil)
	_, err := s.pool.Exec(ctx, "UPDATE tower_lease SET expires = clock_timestamp() WHERE holder = $1", holder)
	return err
}

func (s *pgStore) LoadAcks(ctx context.Context) (map[string]Ack, error) {
	rows, err := s.pool.Query(ctx, "SELECT key, data FROM acks")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Ack{}
	for rows.Next() {
		var key string
		var raw []byte
		if err := rows.Scan(&key, &raw); err != nil {
			return nil, err
		}
		var a Ack
		if json.Unmarshal(raw, &a) == nil {
			out[key] = a
		}
	}
	return out, rows.Err()
}

func (s *pgStore) IncidentEvents(ctx context.Context, incident int64) ([]AlertEvent, error) {
	return pgQuery(ctx, s, scanEvent(incident), "SELECT time, key, host, event, text FROM alert_events WHERE incident = $1 ORDER BY time", incident)
}

func (s *pgStore) SaveIncident(ctx context.Context, in Incident) error {
	return s.write(ctx, func(tx pgx.Tx) error { return pgSaveIncident(ctx, tx, &in) })
}

func (s *pgStore) SaveSilence(ctx context.Context, sl Silence) error {
	data, _ := json.Marshal(sl)
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO silences(id, data, ends) VALUES($1,$2,$3) ON CONFLICT(id) DO UPDATE SET data=excluded.data, ends=excluded.ends",
			sl.ID, data, sl.Ends.UnixNano())
		return err
	})
}

// NextDue claims the row under the lease this tower holds, in one
// transaction that first checks, in the database, that the lease is still
// this tower's and unexpired: a tower that lost its lease claims nothing.
// A row another lease claimed is left alone for sendTimeout after its
// claim (that tower may be sending it), then taken over.
func (s *pgStore) NextDue(ctx context.Context, channel string, now time.Time) (OutboxRow, bool, error) {
	var row OutboxRow
	f := s.fence.Load()
	if f == nil {
		return row, false, nil
	}
	var raw []byte
	var fallback string
	var created int64
	// One statement, so one round trip per message: the lease row is
	// locked (FOR SHARE) while the row is claimed, so a takeover waits for
	// the claim and a claim after a takeover finds no lease. Per alert, in
	// order: a row waits while an earlier one of its alert is undelivered
	// (retrying), so a RESOLVED never overtakes its FIRING.
	err := s.pool.QueryRow(ctx, `WITH lease AS MATERIALIZED (
			SELECT token FROM tower_lease WHERE id = 1 AND holder = $5 AND token = $3 AND expires > clock_timestamp() FOR SHARE),
		next AS (
			SELECT o.id FROM outbox o
			WHERE EXISTS (SELECT 1 FROM lease) AND o.channel = $1 AND o.state = 'due' AND o.next_attempt <= $2
			AND (o.claim_token IN (0, $3) OR o.claimed_at < `+dbNow+` - $4)
			AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel = o.channel AND p.alert_key = o.alert_key AND p.state = 'due' AND p.id < o.id)
			ORDER BY o.id LIMIT 1 FOR UPDATE OF o SKIP LOCKED)
		UPDATE outbox SET claim_token = $3, claimed_at = `+dbNow+` FROM next WHERE outbox.id = next.id
		RETURNING outbox.id, outbox.attempts, outbox.message, outbox.fallback, outbox.fallback_sent, outbox.group_key, outbox.created`,
		channel, now.UnixNano(), f.token, int64(sendTimeout), f.holder).
		Scan(&row.ID, &row.Attempts, &raw, &fallback, &row.FallbackSent, &row.Group, &created)
	s.noteHealth(err)
	if errors.Is(err, pgx.ErrNoRows) {
		return row, false, nil
	}
	if err != nil {
		return row, false, err
	}
	decodeDue(&row, raw, fallback, created)
	return row, true, nil
}

func (s *pgStore) DueInGroup(ctx context.Context, channel, group string, except int64, upTo time.Time) ([]OutboxMessage, error) {
	ms, err := s.outboxMessages(ctx, `SELECT id, message FROM outbox WHERE channel = $1 AND state = 'due'
		AND group_key = $2 AND attempts = 0 AND id != $3 AND created <= $4 ORDER BY id`, channel, group, except, upTo.UnixNano())
	return slices.DeleteFunc(ms, func(m OutboxMessage) bool { return m.Msg == nil }), err
}

func (s *pgStore) DueAfter(ctx context.Context, channel string, id int64) ([]OutboxMessage, error) {
	return s.outboxMessages(ctx, `SELECT id, message FROM outbox WHERE channel = $1 AND state = 'due'
		AND alert_key = (SELECT alert_key FROM outbox WHERE id = $2) AND id > $2 ORDER BY id`, channel, id)
}

func (s *pgStore) outboxMessages(ctx context.Context, query string, args ...any) ([]OutboxMessage, error) {
	return pgQuery(ctx, s, scanOutboxMessage, query, args...)
}

func (s *pgStore) MergeGroup(ctx context.Context, into int64, msg notify.Message, ids []int64) error {
	merged, _ := json.Marshal(msg)
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE outbox SET message = $1 WHERE id = $2", merged, into); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE outbox SET state = 'merged', delivered = $1 WHERE id = ANY($2)", into, ids)
		return err
	})
}

func (s *pgStore) RecordOutbox(ctx context.Context, ops []OutboxOp) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		for _, op := range ops {
			if err := pgOutboxOp(ctx, tx, op); err != nil {
				return err
			}
		}
		return nil
	})
}

func pgOutboxOp(ctx context.Context, tx pgx.Tx, op OutboxOp) error {
	switch op := op.(type) {
	case CloseRows:
		// The rows folded into the send point at the one sent (the last);
		// that one's delivered column holds when it was closed.
		sent := op.IDs[len(op.IDs)-1]
		if _, err := tx.Exec(ctx, "UPDATE outbox SET state = 'merged', attempts = $1, delivered = $2, last_error = $3 WHERE id = ANY($4)",
			op.Attempts, sent, op.Error, op.IDs[:len(op.IDs)-1]); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE outbox SET state = $1, attempts = $2, delivered = $3, last_error = $4 WHERE id = $5",
			op.State, op.Attempts, op.At.UnixNano(), op.Error, sent)
		return err
	case RetryRow:
		_, err := tx.Exec(ctx, "UPDATE outbox SET attempts = attempts + 1, next_attempt = $1, last_error = $2 WHERE id = $3", op.Next.UnixNano(), op.Error, op.ID)
		return err
	case QueueFallback:
		if _, err := tx.Exec(ctx, "UPDATE outbox SET fallback_sent = true WHERE id = $1", op.ID); err != nil {
			return err
		}
		return pgEnqueue(ctx, tx, op.Msg)
	}
	return errors.New("unknown outbox operation")
}

func (s *pgStore) CountDue(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE state = 'due'").Scan(&n)
	return n, err
}

func (s *pgStore) SaveProbeHistory(ctx context.Context, rows []serviceRow) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, r := range rows {
			b.Queue(`INSERT INTO probe_services(name, grp, public, status, since, first, last, message, reason, recent)
				VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT(name) DO UPDATE SET grp=excluded.grp, public=excluded.public,
				status=excluded.status, since=excluded.since, first=excluded.first, last=excluded.last,
				message=excluded.message, reason=excluded.reason, recent=excluded.recent`,
				r.name, r.group, r.public, r.status, r.since.UnixNano(), r.first.UnixNano(), r.last.UnixNano(), r.message, r.reason, r.recent)
			for _, d := range r.days {
				b.Queue(`INSERT INTO probe_days(name, day, up, degraded, n, worst) VALUES($1,$2,$3,$4,$5,$6)
					ON CONFLICT(name, day) DO UPDATE SET up=excluded.up, degraded=excluded.degraded, n=excluded.n, worst=excluded.worst`,
					r.name, d.date.Unix(), d.up, d.degraded, d.n, d.worst)
			}
			for _, l := range r.lat {
				b.Queue(`INSERT INTO probe_latency(name, bucket, sum, n) VALUES($1,$2,$3,$4)
					ON CONFLICT(name, bucket) DO UPDATE SET sum=excluded.sum, n=excluded.n`, r.name, l.start.Unix(), l.sum, l.n)
			}
		}
		return tx.SendBatch(ctx, &b).Close()
	})
}

func (s *pgStore) LoadProbeHistory(ctx context.Context, latencyAfter time.Time) ([]serviceRow, error) {
	svcs, err := pgQuery(ctx, s, scanService, "SELECT "+serviceColumns+" FROM probe_services")
	if err != nil {
		return nil, err
	}
	days, err := pgQuery(ctx, s, scanDay, "SELECT name, day, up, degraded, n, worst FROM probe_days ORDER BY name, day")
	if err != nil {
		return nil, err
	}
	lat, err := pgQuery(ctx, s, scanLatency, "SELECT name, bucket, sum, n FROM probe_latency WHERE bucket > $1 ORDER BY name, bucket", latencyAfter.Unix())
	if err != nil {
		return nil, err
	}
	return joinHistory(svcs, days, lat), nil
}

func (s *pgStore) PruneProbeHistory(ctx context.Context, day, bucket, last time.Time) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		b.Queue("DELETE FROM probe_days WHERE day < $1", day.Unix())
		b.Queue("DELETE FROM probe_latency WHERE bucket <= $1", bucket.Unix())
		b.Queue("DELETE FROM probe_services WHERE last < $1", last.UnixNano())
		b.Queue("DELETE FROM probe_days WHERE name NOT IN (SELECT name FROM probe_services)")
		return tx.SendBatch(ctx, &b).Close()
	})
}

var _ SharedStore = (*pgStore)(nil)
