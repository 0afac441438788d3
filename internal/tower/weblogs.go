package tower

import (
	"context"

	"github.com/hinomi/hinomi/internal/logstore"
)

// SearchLogs searches the central log store for the console's log pages
// (web.LogSearcher).
func (b webBackend) SearchLogs(ctx context.Context, q logstore.Query, fn func(logstore.Entry) bool) error {
	st, err := b.a.logs(ctx)
	if err != nil {
		return err
	}
	return st.Search(ctx, q, fn)
}

// KeepsLogs: the tower keeps log lines (logs.store is not off).
func (b webBackend) KeepsLogs() bool { return b.a.cfg.Load().Logs.Store != "off" }
