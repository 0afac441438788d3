package tower

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
)

func postgresImpl() storeImpl {
	return storeImpl{
		name: "postgres",
		open: func(t *testing.T) Store {
			s, err := openPostgres(context.Background(), testload.PostgresSchema(t), "")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			// The outbox is claimed under a lease: the contract's store holds it.
			if _, held, err := s.Lease(context.Background(), "contract", time.Hour); err != nil || !held {
				t.Fatalf("Lease = %v, %v; want held", held, err)
			}
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

// testStoreEnv set to "postgres" runs the package's tower tests against
// the PostgreSQL store (scripts/test runs the package a second time so);
// each data directory gets its own schema, so a test that reopens a
// tower on the same directory finds its state.
const testStoreEnv = "HINOMI_TEST_TOWER_STORE"

func onPostgres() bool { return os.Getenv(testStoreEnv) == "postgres" }

// sqliteOnly skips a test that looks inside SQLite itself when the tower
// tests run against PostgreSQL.
func sqliteOnly(t testing.TB, why string) {
	t.Helper()
	if onPostgres() {
		t.Skipf("SQLite's own behaviour (%s); %s=postgres", why, testStoreEnv)
	}
}

var testSchemas sync.Map // data_dir → schema URL

// newTestTower is New, on PostgreSQL when testStoreEnv says so: the tower
// then holds the lease at once, as a lone tower's engine would take it on
// its first tick.
func newTestTower(t testing.TB, cfg *Config, o Options) (*Tower, error) {
	t.Helper()
	if !onPostgres() || cfg.Store != "sqlite" {
		return New(cfg, o)
	}
	u, ok := testSchemas.Load(cfg.DataDir)
	if !ok {
		u, _ = testSchemas.LoadOrStore(cfg.DataDir, testload.PostgresSchema(t))
	}
	cfg.Store = u.(string)
	cfg.Lease = Duration(time.Hour)
	tw, err := New(cfg, o)
	if err != nil {
		return nil, err
	}
	// A tower this test opened before on the directory held the lease.
	if _, err := tw.store.(*pgStore).pool.Exec(context.Background(), "UPDATE tower_lease SET expires = clock_timestamp()"); err != nil {
		tw.store.Close()
		return nil, err
	}
	if !tw.keepLease(context.Background()) {
		tw.store.Close()
		return nil, errors.New("the test tower did not take the lease")
	}
	return tw, nil
}

// testDB is the tower's database for a test's own queries, written with
// ? placeholders, on either store.
type testDB struct{ tw *Tower }

func dbOf(tw *Tower) testDB { return testDB{tw} }

type scanner interface{ Scan(dest ...any) error }

func (d testDB) QueryRow(q string, args ...any) scanner {
	if s, ok := d.tw.store.(*pgStore); ok {
		return s.pool.QueryRow(context.Background(), dollarPlaceholders(q), args...)
	}
	return sqlDB(d.tw).QueryRow(q, args...)
}

func (d testDB) Exec(q string, args ...any) error {
	if s, ok := d.tw.store.(*pgStore); ok {
		_, err := s.pool.Exec(context.Background(), dollarPlaceholders(q), args...)
		return err
	}
	_, err := sqlDB(d.tw).Exec(q, args...)
	return err
}

// dollarPlaceholders turns SQLite's ? placeholders into PostgreSQL's $n.
func dollarPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
