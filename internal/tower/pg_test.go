package tower

import (
	"context"
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
