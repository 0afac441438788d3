package tower

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hinomi/hinomi/internal/push"
)

// Both stores' push monitor states: a row per monitor holding its
// push.State as JSON, changed by applying each report in a transaction.

type pushRow struct {
	name string
	st   push.State
}

func scanPushRow(r rowIter) (pushRow, bool, error) {
	var row pushRow
	var data []byte
	if err := r.Scan(&row.name, &data); err != nil {
		return row, false, err
	}
	return row, json.Unmarshal(data, &row.st) == nil, nil
}

func pushMap(rows []pushRow) map[string]push.State {
	out := make(map[string]push.State, len(rows))
	for _, r := range rows {
		out[r.name] = r.st
	}
	return out
}

// applyStored applies p to a stored state (nil: none yet); a stored
// state that does not decode is started afresh.
func applyStored(data []byte, p push.Ping) (push.State, []byte, error) {
	var st push.State
	if data != nil && json.Unmarshal(data, &st) != nil {
		st = push.State{}
	}
	st.Apply(p)
	out, err := json.Marshal(st)
	if err != nil {
		return st, nil, fmt.Errorf("encoding the push state: %w", err)
	}
	return st, out, nil
}

func (s *sqliteStore) SavePushReport(ctx context.Context, name string, p push.Ping) (push.State, error) {
	var st push.State
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var data []byte
		if err := tx.QueryRow("SELECT data FROM push_states WHERE name = ?", name).Scan(&data); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var out []byte
		var err error
		if st, out, err = applyStored(data, p); err != nil {
			return err
		}
		_, err = tx.Exec("INSERT INTO push_states(name, at, data) VALUES(?,?,?) ON CONFLICT(name) DO UPDATE SET at=excluded.at, data=excluded.data",
			name, p.At.UnixNano(), out)
		return err
	})
	return st, err
}

func (s *sqliteStore) LoadPushStates(ctx context.Context) (map[string]push.State, error) {
	rows, err := sqlQuery(ctx, s.db.DB, scanPushRow, "SELECT name, data FROM push_states")
	return pushMap(rows), err
}

func (s *pgStore) SavePushReport(ctx context.Context, name string, p push.Ping) (push.State, error) {
	var st push.State
	err := s.write(ctx, func(tx pgx.Tx) error {
		// The row first, so that two towers' reports for one monitor
		// wait for each other on its lock, and each applies to the other's.
		if _, err := tx.Exec(ctx, "INSERT INTO push_states(name, at, data) VALUES($1, 0, '{}') ON CONFLICT(name) DO NOTHING", name); err != nil {
			return err
		}
		var data []byte
		if err := tx.QueryRow(ctx, "SELECT data FROM push_states WHERE name = $1 FOR UPDATE", name).Scan(&data); err != nil {
			return err
		}
		var out []byte
		var err error
		if st, out, err = applyStored(data, p); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE push_states SET at = $2, data = $3 WHERE name = $1", name, p.At.UnixNano(), out)
		return err
	})
	return st, err
}

func (s *pgStore) LoadPushStates(ctx context.Context) (map[string]push.State, error) {
	rows, err := pgQuery(ctx, s, scanPushRow, "SELECT name, data FROM push_states")
	return pushMap(rows), err
}

// pushWriteTimeout bounds a push report's write: the job waits for the
// answer, and sends the report again on a 503.
const pushWriteTimeout = 10 * time.Second

// loadPushes reads the push monitors' states at start.
func (t *Tower) loadPushes(ctx context.Context) error {
	states, err := t.store.LoadPushStates(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mergePushes(states)
	return nil
}

// mergePushes takes the stored states of the push monitors (what every
// tower sharing the store received), keeping a state in memory whose
// last report is newer (this tower took it after the reading). t.mu is
// held.
func (t *Tower) mergePushes(states map[string]push.State) {
	if t.pushes == nil {
		t.pushes = map[string]*push.State{}
	}
	for name, st := range states {
		if cur := t.pushes[name]; cur != nil && cur.Last != nil && (st.Last == nil || cur.Last.At.After(st.Last.At)) {
			continue
		}
		t.pushes[name] = &st
	}
}
