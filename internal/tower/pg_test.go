package tower

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// postgresEnv names the URL of the PostgreSQL cluster the tests may use
// (scripts/test starts a throwaway one and sets it).
const postgresEnv = "HINOMI_TEST_POSTGRES"

// testPostgres is the cluster's URL: the test skips without one, and fails
// under CI=true, where scripts/test was to start it.
func testPostgres(t testing.TB) string {
	t.Helper()
	u := os.Getenv(postgresEnv)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: scripts/test starts a PostgreSQL cluster for the tests", postgresEnv)
		}
		t.Skipf("%s is not set: no PostgreSQL to test against (scripts/test starts one)", postgresEnv)
	}
	return u
}

// pgSchemaURL makes an empty schema of its own for the test on the
// cluster (dropped at the end) and is a URL whose connections use it, so
// that tests do not see each other's tables.
func pgSchemaURL(t testing.TB) string {
	t.Helper()
	base := testPostgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to %s: %v", base, err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
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

func postgresImpl() storeImpl {
	return storeImpl{
		name: "postgres",
		open: func(t *testing.T) Store {
			s, err := openPostgres(context.Background(), pgSchemaURL(t), "")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		failWrites: func(t *testing.T, s Store, what string) func() {
			ctx := context.Background()
			pool := s.(*pgStore).pool
			if _, err := pool.Exec(ctx, `CREATE FUNCTION contract_fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql`); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `CREATE TRIGGER contract_fail BEFORE INSERT ON `+what+` FOR EACH ROW EXECUTE FUNCTION contract_fail()`); err != nil {
				t.Fatal(err)
			}
			return func() {
				if _, err := pool.Exec(ctx, `DROP TRIGGER contract_fail ON `+what+`; DROP FUNCTION contract_fail()`); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
}
