package testload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the URL of the PostgreSQL cluster tests may use;
// scripts/test starts a throwaway one (scripts/pgcluster) and sets it.
const PostgresEnv = "HINOMI_TEST_POSTGRES"

// Postgres is the test cluster's URL: the test skips without one, and
// fails under CI=true, where scripts/test was to start it.
func Postgres(t testing.TB) string {
	t.Helper()
	u := os.Getenv(PostgresEnv)
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("testload: %s is not set: scripts/test starts a PostgreSQL cluster for the tests", PostgresEnv)
		}
		t.Skipf("testload: %s is not set: no PostgreSQL to test against (scripts/test starts one)", PostgresEnv)
	}
	return u
}

// PostgresSchema makes an empty schema of the test's own on the cluster
// (dropped at the end) and returns a URL whose connections use it, so
// that tests do not see each other's tables.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := Postgres(t)
	ctx := context.Background()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("testload: creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("testload: dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
