package tower

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// MigrateTable is one table copied by Migrate and its row count.
type MigrateTable struct {
	Name string
	Rows int64
}

// migrateTables is every table of the tower's state, in the order they are
// copied (none refers to another).
var migrateTables = []string{"hosts", "findings", "alerts", "silences", "incidents", "alert_events", "outbox",
	"probe_services", "probe_days", "probe_latency", "incident_updates", "push_states", "records"}

// Migrate copies an SQLite tower's state (the data directory holding
// tower.db, or the file itself) into an empty PostgreSQL database, in one
// transaction: either all of it is there afterwards or none. The tower
// must be stopped. It refuses a database that already holds a tower's
// state.
func Migrate(ctx context.Context, from, toURL, password string) ([]MigrateTable, error) {
	dir := from
	if fi, err := os.Stat(from); err == nil && !fi.IsDir() {
		dir = filepath.Dir(from)
	} else if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tower.db")); err != nil {
		return nil, fmt.Errorf("--from: no tower database in %s: %w", dir, err)
	}
	src, err := openSQLite(dir)
	if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	dst, err := openPostgres(ctx, toURL, password)
	if err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	var out []MigrateTable
	err = pgx.BeginFunc(ctx, dst.pool, func(tx pgx.Tx) error {
		for _, table := range []string{"hosts", "alerts", "records", "outbox"} {
			var has bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+")").Scan(&has); err != nil {
				return err
			}
			if has {
				return fmt.Errorf("--to: the database already holds a tower's state (table %s has rows): migrate into an empty one", table)
			}
		}
		for _, table := range migrateTables {
			n, err := copyTable(ctx, src.db.DB, tx, table)
			if err != nil {
				return fmt.Errorf("copying %s: %w", table, err)
			}
			out = append(out, MigrateTable{Name: table, Rows: n})
		}
		// New outbox rows and incident updates continue after the copied ones.
		for _, table := range []string{"outbox", "incident_updates"} {
			if _, err := tx.Exec(ctx, "SELECT setval(pg_get_serial_sequence('"+table+"', 'id'), coalesce((SELECT max(id) FROM "+table+"), 0) + 1, false)"); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// copyTable copies the columns both schemas have, converting SQLite's
// integers to PostgreSQL's booleans and its text to bytes where
// PostgreSQL's column wants them.
func copyTable(ctx context.Context, src *sql.DB, tx pgx.Tx, table string) (int64, error) {
	rows, err := tx.Query(ctx, "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position", table)
	if err != nil {
		return 0, err
	}
	pgTypes := map[string]string{}
	var pgCols []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return 0, err
		}
		pgTypes[name] = typ
		pgCols = append(pgCols, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	info, err := src.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		return 0, err
	}
	var cols []string
	for info.Next() {
		var name string
		if err := info.Scan(&name); err != nil {
			info.Close()
			return 0, err
		}
		if slices.Contains(pgCols, name) {
			cols = append(cols, name)
		}
	}
	info.Close()
	if len(cols) == 0 {
		return 0, errors.New("no columns in common")
	}
	srcRows, err := src.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+table)
	if err != nil {
		return 0, err
	}
	defer srcRows.Close()
	types := make([]string, len(cols))
	for i, c := range cols {
		types[i] = pgTypes[c]
	}
	return tx.CopyFrom(ctx, pgx.Identifier{table}, cols, &sqliteRows{rows: srcRows, types: types})
}

// sqliteRows feeds CopyFrom from an SQLite query.
type sqliteRows struct {
	rows  *sql.Rows
	types []string
	vals  []any
	err   error
}

func (r *sqliteRows) Next() bool {
	if !r.rows.Next() {
		return false
	}
	raw := make([]any, len(r.types))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if r.err = r.rows.Scan(ptrs...); r.err != nil {
		return false
	}
	for i, v := range raw {
		switch r.types[i] {
		case "boolean":
			n, _ := v.(int64)
			raw[i] = n != 0
		case "bytea":
			if s, ok := v.(string); ok {
				raw[i] = []byte(s)
			}
		case "integer":
			if n, ok := v.(int64); ok {
				raw[i] = int32(n)
			}
		}
	}
	r.vals = raw
	return true
}

func (r *sqliteRows) Values() ([]any, error) { return r.vals, nil }

func (r *sqliteRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}
