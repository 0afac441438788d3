package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWriteBatchesAndIsolatesFailures(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	bad := errors.New("this write fails")
	errs := make(chan error, 3)
	for i, fail := range []bool{false, true, false} {
		go func() {
			errs <- s.Write(ctx, func(tx *sql.Tx) error {
				if _, err := tx.Exec("INSERT INTO records(agent, spool, seq, kind, time, received, data) VALUES('a','s',?,'status',0,0,'{}')", i+1); err != nil {
					return err
				}
				if fail {
					return bad
				}
				return nil
			})
		}()
	}
	var failed int
	for range 3 {
		if err := <-errs; errors.Is(err, bad) {
			failed++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.DB.QueryRow("SELECT count(*) FROM records").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if failed != 1 || n != 2 {
		t.Errorf("%d writes failed and %d records stored; want 1 and 2 (a failing write rolls back only itself)", failed, n)
	}
}

func TestPruneByAgeAndSize(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	payload := make([]byte, 1000)
	err = s.Write(ctx, func(tx *sql.Tx) error {
		for i := range 3000 {
			received := now.Add(-time.Duration(3000-i) * time.Hour) // oldest first
			if _, err := tx.Exec("INSERT INTO records(agent, spool, seq, kind, time, received, data) VALUES('a','s',?,'status',0,?,?)", i+1, received.UnixNano(), payload); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := s.Prune(ctx, Retention{MaxAge: 1000 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	if deleted != 2000 {
		t.Errorf("age: deleted %d, want the 2000 records older than 1000 h", deleted)
	}
	size, _ := s.Size(ctx)
	if _, err := s.Prune(ctx, Retention{MaxBytes: size / 2}, now); err != nil {
		t.Fatal(err)
	}
	var n, oldest int64
	if err := s.DB.QueryRow("SELECT count(*), min(seq) FROM records").Scan(&n, &oldest); err != nil {
		t.Fatal(err)
	}
	if after, _ := s.Size(ctx); after > size/2 || n == 0 || oldest <= 2001 {
		t.Errorf("size: %d records left from seq %d, %d bytes; want under %d bytes with the newest kept", n, oldest, after, size/2)
	}
}

// A database from before the versioned schema gets the new tables; a
// reopened one is left as it is; one from a newer build is refused with a
// clear error and not touched.
func TestMigrations(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Back to how a database of the previous release looks: version 0,
	// without the history tables nor the hosts' lost counts.
	for _, q := range []string{"DROP TABLE probe_services", "DROP TABLE probe_days", "DROP TABLE probe_latency", "DROP TABLE incident_updates", "DROP TABLE push_states",
		"ALTER TABLE hosts DROP COLUMN lost", "ALTER TABLE hosts DROP COLUMN lost_reason", "PRAGMA user_version = 0"} {
		if _, err := s.DB.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DB.Exec("INSERT INTO silences(id, data, ends) VALUES('kept', '{}', 1)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for range 2 {
		s, err = Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		var v, n int
		if err := s.DB.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion() {
			t.Errorf("user_version %d (%v); want %d", v, err, SchemaVersion())
		}
		if err := s.DB.QueryRow("SELECT count(*) FROM probe_days").Scan(&n); err != nil {
			t.Errorf("probe_days after migration: %v", err)
		}
		if err := s.DB.QueryRow("SELECT count(*) FROM hosts WHERE lost = 0 AND lost_reason = ''").Scan(&n); err != nil {
			t.Errorf("hosts' lost counts after migration: %v", err)
		}
		if err := s.DB.QueryRow("SELECT count(*) FROM silences WHERE id = 'kept'").Scan(&n); err != nil || n != 1 {
			t.Errorf("the old rows: %d (%v); want them kept", n, err)
		}
		s.Close()
	}

	s, _ = Open(dir)
	if _, err := s.DB.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "schema version 99, newer than this hinomi knows") {
		t.Errorf("opening a newer database: %v; want a clear refusal", err)
	}
}

// TestFilesArePrivate: the database and its journal files are readable by
// their owner only, and files made world-readable before are tightened.
func TestFilesArePrivate(t *testing.T) {
	check := func(dir string) {
		t.Helper()
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(context.Background(), func(tx *sql.Tx) error {
			_, err := tx.Exec("INSERT INTO silences(id, data, ends) VALUES('x', '{}', 0)")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"tower.db", "tower.db-wal", "tower.db-shm"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("%s has mode %o, want 600", name, m)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	check(t.TempDir())

	dir := t.TempDir()
	for _, name := range []string{"tower.db", "tower.db-wal", "tower.db-shm"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check(dir)
}

// TestOpenSyncsEveryCommit: every connection of the pool syncs the WAL at
// commit (synchronous=FULL, 2), so a write acknowledged after Write
// returned survives a power cut; NORMAL (1) syncs only at checkpoints.
func TestOpenSyncsEveryCommit(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 4 { // distinct connections: the setting is per connection
		c, err := s.DB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var mode string
		var sync int
		if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || sync != 2 {
			t.Fatalf("connection %d: journal_mode %s synchronous %d; want wal and 2 (FULL)", len(conns), mode, sync)
		}
	}
}
