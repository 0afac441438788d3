package tower

import "database/sql"

// sqlDB is the tower's SQLite database, for tests that look at (or break)
// what it stored.
func sqlDB(tw *Tower) *sql.DB { return tw.store.(*sqliteStore).db.DB }
