// Package store is the tower's embedded SQLite database: what agents sent
// (each record once, by agent and sequence number), hosts, findings, alert
// states and the notification outbox. One writer goroutine batches writes
// into transactions (group commit), each synced to disk before Write
// returns; readers use the pool in parallel (WAL). The tower reaches it
// only through its Store interface, whose SQLite implementation
// (internal/tower/store_sqlite.go) holds the queries; this package holds the
// file, the schema, its migrations, retention and the writer.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"modernc.org/sqlite" // the pure-Go SQLite driver: CGO_ENABLED=0 builds
	sqlite3 "modernc.org/sqlite/lib"
)

const schema = `
CREATE TABLE IF NOT EXISTS records (
	agent TEXT NOT NULL, spool TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
	time INTEGER NOT NULL, received INTEGER NOT NULL, data BLOB NOT NULL,
	PRIMARY KEY (agent, spool, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_received ON records(received);
CREATE TABLE IF NOT EXISTS hosts (
	name TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
	boot_id TEXT NOT NULL DEFAULT '', version TEXT NOT NULL DEFAULT '', addr TEXT NOT NULL DEFAULT '',
	interval_ns INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0,
	spool TEXT NOT NULL DEFAULT '', acked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS findings (
	host TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, severity TEXT NOT NULL,
	mode TEXT NOT NULL, summary TEXT NOT NULL, since INTEGER NOT NULL, opened INTEGER NOT NULL,
	updated INTEGER NOT NULL, resolved INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL,
	PRIMARY KEY (host, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
	key TEXT PRIMARY KEY, host TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
	severity TEXT NOT NULL, status TEXT NOT NULL, state BLOB NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
	id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, alert_key TEXT NOT NULL,
	created INTEGER NOT NULL, message BLOB NOT NULL, state TEXT NOT NULL DEFAULT 'due',
	attempts INTEGER NOT NULL DEFAULT 0, next_attempt INTEGER NOT NULL, last_error TEXT NOT NULL DEFAULT '',
	delivered INTEGER NOT NULL DEFAULT 0, fallback TEXT NOT NULL DEFAULT '', fallback_sent INTEGER NOT NULL DEFAULT 0,
	group_key TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, data BLOB NOT NULL, ends INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (id INTEGER PRIMARY KEY, opened INTEGER NOT NULL, closed INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS alert_events (time INTEGER NOT NULL, key TEXT NOT NULL, host TEXT NOT NULL,
	incident INTEGER NOT NULL DEFAULT 0, event TEXT NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alert_events_incident ON alert_events(incident, time);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(channel, state, next_attempt, id);
`

// migrations change the schema after schema, which only ever creates what is missing:
// migrations[i] brings a database from version i (PRAGMA user_version) to i+1, in one
// transaction. Append to the list; never edit an entry that has shipped.
var migrations = []string{
	// 1: the status page's history of probe results, as per-day and per-15-minute
	// aggregates and each service's current state (internal/tower/history.go).
	`CREATE TABLE probe_services (
		name TEXT PRIMARY KEY, grp TEXT NOT NULL, public INTEGER NOT NULL, status TEXT NOT NULL,
		since INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
		message TEXT NOT NULL, reason TEXT NOT NULL, recent BLOB NOT NULL) WITHOUT ROWID;
	CREATE TABLE probe_days (
		name TEXT NOT NULL, day INTEGER NOT NULL, up INTEGER NOT NULL, degraded INTEGER NOT NULL,
		n INTEGER NOT NULL, worst TEXT NOT NULL, PRIMARY KEY (name, day)) WITHOUT ROWID;
	CREATE INDEX probe_days_day ON probe_days(day);
	CREATE TABLE probe_latency (
		name TEXT NOT NULL, bucket INTEGER NOT NULL, sum REAL NOT NULL, n INTEGER NOT NULL,
		PRIMARY KEY (name, bucket)) WITHOUT ROWID;
	CREATE INDEX probe_latency_bucket ON probe_latency(bucket);`,
	// 2: the row Check writes to learn whether the database can be written, and the
	// index that keeps each alert's messages in order in the outbox (a row waits for
	// its alert's earlier ones).
	`CREATE TABLE IF NOT EXISTS write_check (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);
	CREATE INDEX IF NOT EXISTS outbox_alert ON outbox(channel, alert_key, state, id);`,
	// 3: records an agent could not spool (a full disk), and why, beside those its
	// spool dropped to its bound.
	`ALTER TABLE hosts ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE hosts ADD COLUMN lost_reason TEXT NOT NULL DEFAULT '';`,
	// 4: the incident updates people write for the status page (status, message,
	// affected services), each in a thread (the id of its first update), a thread
	// perhaps about one of the tower's incidents.
	`CREATE TABLE incident_updates (
		id INTEGER PRIMARY KEY AUTOINCREMENT, thread INTEGER NOT NULL, incident INTEGER NOT NULL DEFAULT 0,
		at INTEGER NOT NULL, status TEXT NOT NULL, title TEXT NOT NULL, message TEXT NOT NULL,
		services TEXT NOT NULL, author TEXT NOT NULL);
	CREATE INDEX incident_updates_thread ON incident_updates(thread, id);
	CREATE INDEX incident_updates_incident ON incident_updates(incident);`,
	// 5: each push monitor's reports as they add up (push.State), so that a job
	// that reported to one tower is seen by the others, and by this one after a
	// restart.
	`CREATE TABLE push_states (name TEXT PRIMARY KEY, at INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID;`,
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int { return len(migrations) }

// migrate brings the database to SchemaVersion, and refuses one written by a newer build
// rather than guess at its tables.
func migrate(db *sql.DB) error {
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("the database has schema version %d, newer than this hinomi knows (%d): run the hinomi that wrote it, or a newer one", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(migrations[v]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migrating the schema to version %d: %w", v+1, err)
		}
		if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			_ = tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrating the schema to version %d: %w", v+1, err)
		}
	}
	return nil
}

// Store is an open database.
type Store struct {
	DB     *sql.DB
	writes chan *write
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	// MaxBatch bounds the writes committed in one transaction.
	MaxBatch int

	healthMu  sync.Mutex
	failErr   error // the latest storage failure, nil once a write succeeds
	failSince time.Time
}

type write struct {
	fn   func(*sql.Tx) error
	done chan error
}

// Open opens (creating) the database in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "tower.db")
	if err := private(path); err != nil {
		return nil, err
	}
	// synchronous(FULL): in WAL mode each commit syncs the log before
	// Write returns, so what the tower acknowledged to an agent (which then
	// drops it from its spool) survives a power cut, not only a crash. The
	// writer's group commit makes that one fsync per batch of writes.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// SQLite creates the -wal and -shm files with the database's mode;
	// files an older version made world-readable are tightened too.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Chmod(path+suffix, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			db.Close()
			return nil, err
		}
	}
	s := &Store{DB: db, writes: make(chan *write, 4096), MaxBatch: 512}
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

// private creates the database file readable by its owner only (it holds
// every host's reports and the alert history, like the agent's spool), or
// tightens an existing one to that.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Chmod(0o600)
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("store is closed")

// Write runs fn in a write transaction, batched with other writes, and
// returns when the transaction committed; ctx bounds only the wait for a
// place in the queue (fn's error fails only fn's own
// part: the batch uses a savepoint per write).
func (s *Store) Write(ctx context.Context, fn func(*sql.Tx) error) error {
	w := &write{fn: fn, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	select {
	case s.writes <- w:
	case <-ctx.Done():
		s.mu.Unlock()
		return ctx.Err()
	}
	s.mu.Unlock()
	// Once queued the write will be committed (or fail) whatever ctx says:
	// wait for it, so that a caller never believes a committed write lost.
	return <-w.done
}

func (s *Store) writer() {
	defer s.wg.Done()
	for first := range s.writes {
		batch := []*write{first}
	more:
		for len(batch) < s.MaxBatch {
			select {
			case w, ok := <-s.writes:
				if !ok {
					break more
				}
				batch = append(batch, w)
			default:
				break more
			}
		}
		s.commit(batch)
	}
}

func (s *Store) commit(batch []*write) {
	errs := make([]error, len(batch))
	tx, err := s.DB.Begin()
	if err != nil {
		s.noteWrite(err, nil)
		for _, w := range batch {
			w.done <- err
		}
		return
	}
	for i, w := range batch {
		if _, err := tx.Exec("SAVEPOINT w"); err != nil {
			errs[i] = err
			continue
		}
		if err := w.fn(tx); err != nil {
			errs[i] = err
			_, _ = tx.Exec("ROLLBACK TO w")
		}
		_, _ = tx.Exec("RELEASE w")
	}
	if err := tx.Commit(); err != nil {
		s.noteWrite(err, nil)
		for _, w := range batch {
			w.done <- err
		}
		return
	}
	s.noteWrite(nil, errs)
	for i, w := range batch {
		w.done <- errs[i]
	}
}

// Queued is how many writes wait for the writer.
func (s *Store) Queued() int { return len(s.writes) }

// noteWrite keeps the database's health: a storage failure (disk full, I/O
// error, read-only) marks it unwritable until a transaction commits
// without one.
func (s *Store) noteWrite(err error, errs []error) {
	if err == nil {
		for _, e := range errs {
			if StorageError(e) {
				err = e
				break
			}
		}
	} else if !StorageError(err) {
		return // not the storage's fault: says nothing of its health
	}
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if err == nil {
		s.failErr, s.failSince = nil, time.Time{}
		return
	}
	if s.failErr == nil {
		s.failSince = time.Now()
	}
	s.failErr = err
}

// Unwritable reports the storage failure the latest writes met and since
// when they have been failing; nil when the database can be written.
func (s *Store) Unwritable() (time.Time, error) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	return s.failSince, s.failErr
}

// Check writes a row, so that an unwritable database is noticed (and its
// recovery too) even when nothing else is being written.
func (s *Store) Check(ctx context.Context) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec("INSERT INTO write_check(id, at) VALUES(1, ?) ON CONFLICT(id) DO UPDATE SET at = excluded.at", time.Now().UnixNano())
		return err
	})
}

// StorageError reports whether err is the storage failing (as opposed to a
// bad statement or a constraint).
func StorageError(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// Reason is a storage failure in a few words for people: "disk full".
func Reason(err error) string {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		return "disk full"
	case sqlite3.SQLITE_READONLY:
		return "read-only"
	case sqlite3.SQLITE_IOERR:
		return "I/O error"
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return "database corrupt"
	}
	return err.Error()
}

// Close waits for pending writes and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.writes)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return s.DB.Close()
}

// Retention bounds what is kept.
type Retention struct {
	MaxAge   time.Duration
	MaxBytes int64
}

// Prune deletes records older than MaxAge and, while the database is over
// MaxBytes, the oldest records; delivered outbox rows go after MaxAge too.
// Alerts, findings and hosts are small and kept.
func (s *Store) Prune(ctx context.Context, r Retention, now time.Time) (deleted int64, err error) {
	if r.MaxAge > 0 {
		cut := now.Add(-r.MaxAge).UnixNano()
		err = s.Write(ctx, func(tx *sql.Tx) error {
			res, err := tx.Exec("DELETE FROM records WHERE received < ?", cut)
			if err != nil {
				return err
			}
			deleted, _ = res.RowsAffected()
			_, err = tx.Exec("DELETE FROM outbox WHERE state IN ('delivered','failed') AND created < ?", cut)
			return err
		})
		if err != nil {
			return deleted, err
		}
	}
	for r.MaxBytes > 0 {
		size, err := s.Size(ctx)
		if err != nil || size <= r.MaxBytes {
			return deleted, err
		}
		var n int64
		err = s.Write(ctx, func(tx *sql.Tx) error {
			res, err := tx.Exec(`DELETE FROM records WHERE (agent, spool, seq) IN (SELECT agent, spool, seq FROM records ORDER BY received LIMIT 200)`)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			return nil
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

// Size is the database's size in bytes (pages in use).
func (s *Store) Size(ctx context.Context) (int64, error) {
	var pages, free, size int64
	if err := s.DB.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return 0, err
	}
	if err := s.DB.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
		return 0, err
	}
	if err := s.DB.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size); err != nil {
		return 0, err
	}
	return (pages - free) * size, nil
}
