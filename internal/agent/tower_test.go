package agent

import (
	"context"
	"testing"

	towersrv "github.com/hinomi/hinomi/internal/tower"
)

// startTower runs a real tower from the YAML config body (listen,
// data_dir and api_token are filled in) until the test ends, and returns
// its base URL.
func startTower(t *testing.T, apiToken, body string) string {
	t.Helper()
	cfg, err := towersrv.ParseConfig([]byte(`
listen: 127.0.0.1:0
data_dir: `+t.TempDir()+`
api_token: `+apiToken+`
`+body), "tower.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tw, err := towersrv.New(cfg, towersrv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := tw.Listen()
	if err != nil {
		t.Fatal(err)
	}
	tctx, stopTower := context.WithCancel(context.Background())
	towerDone := make(chan error, 1)
	go func() { towerDone <- tw.Run(tctx) }()
	t.Cleanup(func() {
		stopTower()
		if err := <-towerDone; err != nil {
			t.Errorf("tower: %v", err)
		}
	})
	return "http://" + addr.String()
}
