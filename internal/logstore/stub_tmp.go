package logstore

import (
	"context"
	"errors"
)

// OpenEmbedded opens (creating it if needed) the embedded store in dir.
func OpenEmbedded(dir string, opts Options) (Store, error) {
	return nil, errors.New("logstore: the embedded store is not built yet")
}

// OpenVictoriaLogs uses the VictoriaLogs server at baseURL.
func OpenVictoriaLogs(ctx context.Context, baseURL string, opts Options) (Store, error) {
	return nil, errors.New("logstore: the VictoriaLogs backend is not built yet")
}
