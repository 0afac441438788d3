package tower

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hinomi/hinomi/internal/testload"
)

// Towers starting together on one database migrate it once, one at a
// time, and each then finds it at this build's version.
func TestPostgresMigratesUnderItsLock(t *testing.T) {
	u := testload.PostgresSchema(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			s, err := openPostgres(ctx, u, "")
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("tower %d: %v", i, err)
		}
	}
	s, err := openPostgres(ctx, u, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v, rows int
	if err := s.pool.QueryRow(ctx, "SELECT max(version), count(*) FROM hinomi_schema").Scan(&v, &rows); err != nil || v != pgSchemaVersion() || rows != 1 {
		t.Fatalf("hinomi_schema = version %d in %d rows, %v; want %d in 1", v, rows, err, pgSchemaVersion())
	}
}

// A database a newer hinomi wrote is refused rather than guessed at.
func TestPostgresRefusesANewerSchema(t *testing.T) {
	u := testload.PostgresSchema(t)
	ctx := context.Background()
	s, err := openPostgres(ctx, u, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "UPDATE hinomi_schema SET version = $1", pgSchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = openPostgres(ctx, u, "")
	if err == nil || !strings.Contains(err.Error(), "newer than this hinomi knows") {
		t.Fatalf("openPostgres on a newer schema: %v; want a refusal naming the versions", err)
	}
}

// The store key: sqlite by default, a postgres:// URL with its password
// from a file, and what is refused.
func TestConfigStore(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pg-password")
	if err := os.WriteFile(pw, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "data_dir: " + dir + "\nagents: [{name: a, token: " + tokenA + "}]\n"
	for _, tc := range []struct {
		yaml, store, password, err string
	}{
		{"", "sqlite", "", ""},
		{"store: sqlite\n", "sqlite", "", ""},
		{"store: postgres://hinomi@db1:5432/hinomi\nstore_password_file: " + pw + "\n", "postgres://hinomi@db1:5432/hinomi", "s3cret-from-file", ""},
		{"store: postgres://hinomi:pw@db1/hinomi\n", "", "", "store: holds a password"},
		{"store: mysql://db1/hinomi\n", "", "", `store: "sqlite" (the default) or a postgres:// URL`},
		{"store_password: x\n", "", "", "store_password: only with a postgres:// store"},
		{"store: postgres://db1/hinomi\nstore_password_file: " + filepath.Join(dir, "missing") + "\n", "", "", "store_password_file"},
	} {
		cfg, err := ParseConfig([]byte(base+tc.yaml), "tower.yaml")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v; want one with %q", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil || cfg.Store != tc.store || cfg.StorePassword != tc.password {
			t.Errorf("%q: store %q password %q, %v; want %q %q", tc.yaml, cfg.Store, cfg.StorePassword, err, tc.store, tc.password)
		}
	}
}
