package tower

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Both stores' incident updates: one table, each update a row, a thread
// the rows sharing the id of its first.

const updateColumns = "id, thread, incident, at, status, title, message, services, author"

func scanUpdate(r rowIter) (IncidentUpdate, bool, error) {
	var u IncidentUpdate
	var at int64
	var services string
	if err := r.Scan(&u.ID, &u.Thread, &u.Incident, &at, &u.Status, &u.Title, &u.Message, &services, &u.By); err != nil {
		return u, false, err
	}
	u.At = ns(at)
	_ = json.Unmarshal([]byte(services), &u.Services)
	return u, true, nil
}

func servicesJSON(s []string) string {
	if s == nil {
		s = []string{}
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// updatesSince is the threads LoadIncidentUpdates returns: those whose
// latest update is not "resolved", or that were updated at or after $1.
const updatesSince = `SELECT ` + updateColumns + ` FROM incident_updates WHERE thread IN (
	SELECT u.thread FROM incident_updates u WHERE u.id IN (SELECT max(id) FROM incident_updates GROUP BY thread)
	AND (u.status <> 'resolved' OR u.at >= $1)) ORDER BY id`

func (s *sqliteStore) SaveIncidentUpdate(ctx context.Context, u IncidentUpdate) (IncidentUpdate, error) {
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		if u.Thread == 0 && u.Incident != 0 {
			err := tx.QueryRow("SELECT thread FROM incident_updates WHERE incident = ? ORDER BY id LIMIT 1", u.Incident).Scan(&u.Thread)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if u.Thread != 0 {
			var title string
			err := tx.QueryRow("SELECT incident, title FROM incident_updates WHERE id = ? AND thread = id", u.Thread).Scan(&u.Incident, &title)
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			if u.Title == "" {
				u.Title = title
			}
		}
		res, err := tx.Exec("INSERT INTO incident_updates(thread, incident, at, status, title, message, services, author) VALUES(?,?,?,?,?,?,?,?)",
			u.Thread, u.Incident, u.At.UnixNano(), u.Status, u.Title, u.Message, servicesJSON(u.Services), u.By)
		if err != nil {
			return err
		}
		if u.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		if u.Thread == 0 {
			u.Thread = u.ID
			_, err = tx.Exec("UPDATE incident_updates SET thread = id WHERE id = ?", u.ID)
		}
		return err
	})
	if err != nil {
		return IncidentUpdate{}, err
	}
	return u, nil
}

func (s *sqliteStore) LoadIncidentUpdates(ctx context.Context, since time.Time) ([]IncidentUpdate, error) {
	return sqlQuery(ctx, s.db.DB, scanUpdate, updatesSince, since.UnixNano())
}

func (s *pgStore) SaveIncidentUpdate(ctx context.Context, u IncidentUpdate) (IncidentUpdate, error) {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if u.Thread == 0 && u.Incident != 0 {
			// Two towers starting the thread of one incident at once:
			// the second waits for the first and joins its thread.
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", int32(pgMigrateLock&0x7fffffff), int32(u.Incident)); err != nil {
				return err
			}
			err := tx.QueryRow(ctx, "SELECT thread FROM incident_updates WHERE incident = $1 ORDER BY id LIMIT 1", u.Incident).Scan(&u.Thread)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		if u.Thread != 0 {
			var title string
			err := tx.QueryRow(ctx, "SELECT incident, title FROM incident_updates WHERE id = $1 AND thread = id", u.Thread).Scan(&u.Incident, &title)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			if u.Title == "" {
				u.Title = title
			}
		}
		err := tx.QueryRow(ctx, `INSERT INTO incident_updates(thread, incident, at, status, title, message, services, author)
			VALUES($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id`,
			u.Thread, u.Incident, u.At.UnixNano(), u.Status, u.Title, u.Message, servicesJSON(u.Services), u.By).Scan(&u.ID)
		if err != nil {
			return err
		}
		if u.Thread == 0 {
			u.Thread = u.ID
			_, err = tx.Exec(ctx, "UPDATE incident_updates SET thread = id WHERE id = $1", u.ID)
		}
		return err
	})
	if err != nil {
		return IncidentUpdate{}, err
	}
	return u, nil
}

func (s *pgStore) LoadIncidentUpdates(ctx context.Context, since time.Time) ([]IncidentUpdate, error) {
	return pgQuery(ctx, s, scanUpdate, updatesSince, since.UnixNano())
}
